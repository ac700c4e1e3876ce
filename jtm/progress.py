"""Progress bars that stay readable in a log file.

On a terminal: tqdm's usual bar. Otherwise (Snakemake and SLURM log files, `dvc repro > log`)
tqdm would write one carriage-return "line" of thousands of updates; instead a plain line
("resample: 120/330 tracks, 36%, 00:41 elapsed") every `LOG_SECONDS`, and one at the end.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_SECONDS = 5.0


class _Lines:
    """A stream for tqdm that turns each refresh into one newline-terminated line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, *, desc: str, total: int | None = None, **kwargs) -> tqdm:
    """tqdm over `iterable` (or a manual bar with `total`), as the module docstring says."""
    stream = sys.stderr
    if stream.isatty():
        return tqdm(iterable, desc=desc, total=total, file=stream, **kwargs)
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        file=_Lines(stream),
        mininterval=LOG_SECONDS,
        maxinterval=LOG_SECONDS * 2,
        miniters=1,
        ascii=True,
        bar_format="{desc}: {n_fmt}/{total_fmt} {unit}, {percentage:.0f}%, {elapsed} elapsed, {rate_fmt}",
        **kwargs,
    )
