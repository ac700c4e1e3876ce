"""Debian's chromium, driven by Playwright (no browser download)."""

import shutil


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is needed for this test: apt-get install chromium (.ci/run does)"
    return path
