"""Progress written to a log (not a terminal) is plain lines, not a carriage-return flood."""

import io

import pytest

from jtm import progress as progress_module


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.mark.check
def test_progress_in_a_log_is_a_few_plain_lines(monkeypatch):
    log = _Log()
    monkeypatch.setattr(progress_module.sys, "stderr", log)
    for _ in progress_module.progress(range(10_000), desc="resample", unit="tracks"):
        pass
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("resample: 10000/10000 tracks, 100%")


def test_a_stage_logged_to_a_file_writes_lines_not_carriage_returns(built, tmp_path):
    import subprocess
    import sys

    log = tmp_path / "resample.log"
    command = [sys.executable, "-m", "jtm.cli", "resample", "--set", f"paths.raw={built['paths']['raw']}"]
    command += ["--set", f"paths.audio16k={tmp_path / 'a16'}", "--set", "resample.workers=1"]
    command += ["--set", f"mlflow.tracking_uri={built['mlflow']['tracking_uri']}"]
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=handle, check=True)
    text = log.read_text()
    assert "\r" not in text
    assert any(line.startswith("resample: ") and "100%" in line for line in text.splitlines()), text
