"""Progress written to a log (not a terminal) is plain lines, not a carriage-return flood."""

import io

from jtm import progress as progress_module


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_in_a_log_is_a_few_plain_lines(monkeypatch):
    log = _Log()
    monkeypatch.setattr(progress_module.sys, "stderr", log)
    for _ in progress_module.progress(range(10_000), desc="resample", unit="tracks"):
        pass
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("resample: 10000/10000 tracks, 100%")
