"""What became of every file under the folders a user named: used (per format, files and hours),
rejected (per reason) and skipped as not audio (per extension). Logged at the end of `ingest`
and `jtm features`, and kept as a table (`account_table`)."""

from __future__ import annotations

import logging
from collections import Counter

import pandas as pd

log = logging.getLogger(__name__)

# The reasons' kinds, in the words decode_file and the ingest stage begin them with: a reason
# may quote the decoders, so the kind found earliest in it wins. Renamed in the account: a
# duplicate's reason ("same bytes as <path>") would read as a count.
REASONS = (
    "not an audio file", "damaged or cut off", "no audio stream", "decoder error", "truncated",
    "non-finite sample", "empty file", "zero-length audio", "shorter than one window", "same bytes as",
)  # fmt: skip
RENAMED = {"same bytes as": "duplicate of another file"}
LISTED = 20  # rejected files the log names one by one (all of them: the rejects table)


def reason_kind(reason: str) -> str:
    """A reason without its particulars ("decoder error at 1:23: ..." -> "decoder error")."""
    found = [(reason.find(words), words) for words in REASONS if words in reason]
    if not found:
        return reason.split(":")[0]
    words = min(found)[1]
    return RENAMED.get(words, words)


def link_kind(reason: str) -> str:
    """ "dangling link", "link loop" or "another path" (jtm/ingest/discover.py's link reasons)."""
    return reason.split(":")[0].split(" to ")[0]


def account_table(
    files: pd.DataFrame, skipped: Counter, rate: int, links: dict | None = None
) -> pd.DataFrame:
    """One row per outcome: fate (used | rejected | skipped), what (format/subtype, reason kind
    or extension), files, hours (used files: of audio at `rate` Hz). `files`: status, reason,
    format, subtype, samples, one row per candidate file; `links`: path -> why a link was
    skipped (`Survey.links`)."""
    rows = []
    used = files[files["status"] == "ok"]
    for (fmt, subtype), group in used.groupby(["format", "subtype"], sort=True):
        hours = float(group["samples"].sum()) / rate / 3600
        rows.append(("used", f"{fmt}/{subtype}" if subtype else fmt, len(group), hours))
    rejected = files[files["status"] != "ok"]
    for kind, n in Counter(reason_kind(r) for r in rejected["reason"]).most_common():
        rows.append(("rejected", kind, n, 0.0))
    for extension, n in sorted(skipped.items(), key=lambda item: (-item[1], item[0])):
        rows.append(("skipped: not audio", extension, n, 0.0))
    for kind, n in Counter(link_kind(r) for r in (links or {}).values()).most_common():
        rows.append(("skipped: link", kind, n, 0.0))
    return pd.DataFrame(rows, columns=["fate", "what", "files", "hours"])


def log_account(command: str, table: pd.DataFrame) -> None:
    """The table as log lines: a total, then one line per row."""
    log.info("%s: %d files under the folders named", command, int(table["files"].sum()))
    for row in table.itertuples():
        length = f", {duration(row.hours * 3600)}" if row.fate == "used" else ""
        plural = "" if row.files == 1 else "s"
        log.info("  %-18s %-28s %5d file%s%s", row.fate, row.what, row.files, plural, length)


def log_rejects(command: str, rejects: pd.DataFrame, table: str) -> None:
    """The rejected files by name with their reasons: all of them up to LISTED, else the first
    LISTED and where the whole table is (`table`). `rejects`: path, reason."""
    if not len(rejects):
        return
    shown = "" if len(rejects) <= LISTED else f" (the first {LISTED}; all of them: {table})"
    log.info("%s: %d file%s not used%s:", command, len(rejects), "" if len(rejects) == 1 else "s", shown)
    for row in rejects.head(LISTED).itertuples():
        log.info("  %s: %s", row.path, row.reason)


def duration(seconds: float) -> str:
    """For people: "2.05 h", "12.5 min" or "3.0 s"."""
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
