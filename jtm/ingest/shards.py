"""Fixed-size shards of decoded audio that a killed ingest keeps.

Work folder (params `paths.ingest_work`, not a DVC output, like the pretraining checkpoints)::

    target.json                        what the shards hold (rate, quality, dtype, shard size):
                                       a change starts the work afresh
    shards/<corpus>/<NNNNN>.<f32|i16>  raw little-endian samples, files end to end
    shards/<corpus>/<NNNNN>.parquet    the shard's ledger: every file consumed since the previous
                                       shard (ingested or not), with its offset in the shard
    decoded/<k>.raw                    one file's samples between decoding and packing

A shard's ledger is written (atomically) only after its samples are on disk, so a ledger marks a
finished shard. A file never spans two shards: windows are read from one contiguous slice.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_file
from jtm.ingest.decode import Decoded
from jtm.ingest.discover import Candidate

EXTENSIONS = {"float32": ".f32", "int16": ".i16"}


def shard_name(index: int, dtype: str) -> str:
    return f"{index:05d}{EXTENSIONS[dtype]}"


class ShardWriter:
    """Packs one corpus's consumed files, in order, into shards of at most `limit` bytes (a
    file larger than that gets a shard of its own)."""

    def __init__(self, folder: Path, first: int, limit: int, dtype: str):
        self.folder, self.index, self.limit, self.dtype = folder, first, limit, dtype
        self.itemsize = np.dtype(dtype).itemsize
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.samples = 0
        self.handle = None

    @property
    def _data(self) -> Path:
        return self.folder / shard_name(self.index, self.dtype)

    def add(self, candidate: Candidate, decoded: Decoded, raw: Path | None) -> None:
        """Record one file; append its samples (from `raw`, then removed) when it is ingested."""
        row = asdict(candidate) | asdict(decoded) | {"shard": -1, "offset": -1}
        if raw is not None:
            size = decoded.samples * self.itemsize
            if self.samples and (self.samples * self.itemsize + size) > self.limit:
                self.close()
            if self.handle is None:
                self.handle = open(self._data.with_name(self._data.name + ".partial"), "wb")
            with open(raw, "rb") as source:
                shutil.copyfileobj(source, self.handle, 1 << 22)
            raw.unlink()
            row |= {"shard": self.index, "offset": self.samples}
            self.samples += decoded.samples
        self.rows.append(row)
        if self.samples * self.itemsize >= self.limit:
            self.close()

    def close(self) -> None:
        """Finish the current shard (data renamed into place, then its ledger) if it holds rows."""
        if not self.rows:
            return
        partial = self._data.with_name(self._data.name + ".partial")
        if self.handle is None:
            self.handle = open(partial, "wb")  # only rejected files: an empty shard, for the ledger
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(partial, self._data)
        with atomic_file(self.folder / f"{self.index:05d}.parquet") as tmp:
            pd.DataFrame(self.rows).to_parquet(tmp, index=False)
        self.index, self.rows, self.samples, self.handle = self.index + 1, [], 0, None


def prepare(work: Path, target: dict) -> None:
    """Start afresh unless the work folder holds shards made for exactly `target`."""
    stamp = work / "target.json"
    if stamp.exists() and json.loads(stamp.read_text()) == target:
        shutil.rmtree(work / "decoded", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        stamp.write_text(json.dumps(target, indent=2))
    (work / "decoded").mkdir()
    (work / "shards").mkdir(exist_ok=True)


def _matches(ledger: pd.DataFrame, expected: list[Candidate], data: Path, itemsize: int) -> bool:
    """A finished shard still describes these files (same paths, sizes, times), whole on disk."""
    if len(ledger) != len(expected) or not data.exists():
        return False
    same = all(
        (row.path, row.bytes, row.mtime_ns) == (c.path, c.bytes, c.mtime_ns)
        for row, c in zip(ledger.itertuples(), expected, strict=True)
    )
    return same and data.stat().st_size == int(ledger["samples"][ledger["shard"] >= 0].sum()) * itemsize


def reuse(work: Path, plan: list[Candidate], dtype: str) -> tuple[list[pd.DataFrame], dict[str, int]]:
    """The finished shards that still describe a prefix of `plan` (corpora in order): their
    ledgers, and each corpus's next shard number. Everything after the first mismatch (or in an
    unfinished shard) is deleted: a later corpus's duplicates refer to the files before it."""
    ledgers, next_index, position, valid = [], {}, 0, True
    itemsize = np.dtype(dtype).itemsize
    for corpus in dict.fromkeys(c.corpus for c in plan):
        end = position + sum(c.corpus == corpus for c in plan)
        folder, index = work / "shards" / corpus, 0
        while valid and (folder / f"{index:05d}.parquet").exists():
            ledger = pd.read_parquet(folder / f"{index:05d}.parquet")
            expected = plan[position : position + len(ledger)]
            if position + len(ledger) > end or not _matches(
                ledger, expected, folder / shard_name(index, dtype), itemsize
            ):
                break
            ledgers.append(ledger)
            position, index = position + len(ledger), index + 1
        valid = valid and position == end  # an unfinished corpus: later ones start afresh
        next_index[corpus] = index
        if folder.exists():
            for stale in folder.iterdir():
                if stale.suffix == ".partial" or not stale.name[:5].isdigit() or int(stale.name[:5]) >= index:
                    stale.unlink()
    for stale in (work / "shards").iterdir():
        if stale.name not in next_index:
            shutil.rmtree(stale)
    return ledgers, next_index
