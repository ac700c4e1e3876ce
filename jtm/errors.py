"""The one exception a stage raises for bad input: it names the file and, where known, the row."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Input data that violates the MusicNet contract.

    `row` is 1-based over data rows (the header is row 0), as a spreadsheet user counts them.
    """

    def __init__(self, path: str | Path, message: str, row: int | None = None):
        self.path = Path(path)
        self.row = row
        self.message = message
        where = f"{self.path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Keep the structured fields when the error crosses a process boundary (Pool workers).
        return (DataError, (self.path, self.message, self.row))
