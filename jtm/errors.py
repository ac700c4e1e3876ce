"""The errors a stage raises for what a user can fix; the CLI turns each into exit status 2.

- `DataError`: input data that violates the MusicNet contract; names the file and the row.
- `ConfigError`: a params file or override that cannot be used; names the params file, the
  key, the value and what is allowed.
- `TrainingError`: training that cannot go on (a non-finite loss); names the step.
- `MissingLibraryError`: a system library a stage needs is not installed; says how to get it.
"""

from __future__ import annotations

from pathlib import Path


class JtmError(Exception):
    """Any error the CLI reports as `jtm <stage>: error: ...` with exit status 2."""


class DataError(JtmError):
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


class ConfigError(JtmError, ValueError):
    """A params file or override that cannot be used. `source`: the params file, where known
    (the CLI fills in the file it loaded when the raiser did not know it)."""

    def __init__(self, message: str, source: str | Path | None = None):
        self.message, self.source = message, source
        super().__init__(f"{source}: {message}" if source else message)

    def naming(self, source: str | Path) -> ConfigError:
        """This error, naming `source` as its params file unless it already names one."""
        return self if self.source else ConfigError(self.message, source)

    def __reduce__(self):
        return (ConfigError, (self.message, self.source))


class TrainingError(JtmError):
    """Training stopped: what happened, and at which step."""


class MissingLibraryError(JtmError):
    """A system library a stage needs is not installed: which, and how to install it."""
