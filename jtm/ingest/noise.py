"""What the decoders say while they read one file, kept with that file instead of on the terminal.

libsndfile's MP3 decoder (mpg123) prints its complaints ("Note: Illegal Audio-MPEG-Header ...",
"error: Giving up resync ...") straight to file descriptor 2, naming no file; FFmpeg logs
through its own callback (PyAV silences it by default, which hides why a file failed). Within
`captured()` both go to the file's record: fd 2 into a temporary file, FFmpeg's warnings and
errors into a list. Ingest decodes one file at a time per process (workers are processes), so
redirecting the process's fd 2 catches exactly that file's lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

import av.logging


class Noise:
    """The lines one file's decoding printed (stderr) or logged (FFmpeg), in order, repeats once."""

    def __init__(self, logs: list) -> None:
        self.stderr: list[str] = []  # filled when the capture ends
        self._logs = logs  # PyAV's (level, name, message) tuples, live

    def lines(self) -> list[str]:
        said = [line.strip() for line in self.stderr + [message for _, _, message in self._logs]]
        return list(dict.fromkeys(line for line in said if line))

    def said(self, text: str) -> bool:
        """Whether any line said so far holds `text` (FFmpeg's "Estimating duration from bitrate", ...)."""
        return any(text in line for line in self.lines())

    def summary(self, most: int = 3) -> str:
        """The first `most` lines joined, and how many more: "" when the decoders said nothing."""
        lines = self.lines()
        more = f" (+{len(lines) - most} more)" if len(lines) > most else ""
        return "; ".join(lines[:most]) + more


@contextlib.contextmanager
def captured() -> Iterator[Noise]:
    """Capture fd 2 and FFmpeg's warnings while the block runs; the Noise fills on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    level = av.logging.get_level()
    repeats = av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    av.logging.set_skip_repeated(False)  # else a repeat is held back and logged with the next file
    with tempfile.TemporaryFile(mode="w+b") as sink, av.logging.Capture(local=True) as logs:
        noise = Noise(logs)
        os.dup2(sink.fileno(), 2)
        try:
            yield noise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            av.logging.set_level(level)
            av.logging.set_skip_repeated(repeats)
            sink.seek(0)
            noise.stderr = sink.read(1 << 16).decode("utf-8", "replace").splitlines()
