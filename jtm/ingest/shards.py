"""Fixed-size shards of decoded audio that later runs reuse file by file.

Work folder (params `paths.ingest_work`, not a DVC output, like the pretraining checkpoints)::

    target.json                        what the shards hold (rate, quality, dtype, shard size,
                                       the code): a change starts the work afresh
    shards/<corpus>/<NNNNN>.<f32|i16>  raw little-endian samples, files end to end
    shards/<corpus>/<NNNNN>.parquet    the shard's ledger: every file packed there (ingested or
                                       not), with its offset in the shard
    decoded/<k>.raw                    one file's samples between decoding and packing

A shard's ledger is written (atomically) only after its samples are on disk, so a ledger marks a
finished shard; a shard is never changed once finished. A file never spans two shards: windows
are read from one contiguous slice.

A file is known by its corpus, path, size and modification time (`KEY`): one already in a
finished shard is not decoded again, wherever it sorts among new files. A shard that holds a
file since removed or changed is repacked: its other files' samples are copied (not decoded)
into new shards, then it is deleted, so the shards hold exactly the files in use.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_file

EXTENSIONS = {"float32": ".f32", "int16": ".i16"}
KEY = ("corpus", "path", "bytes", "mtime_ns")


def shard_name(index: int, dtype: str) -> str:
    return f"{index:05d}{EXTENSIONS[dtype]}"


@dataclass(frozen=True)
class Slice:
    """Samples to append: `count` samples from `path`, `start` samples in."""

    path: Path
    start: int
    count: int


class ShardWriter:
    """Packs one corpus's files, in the order given, into new shards of at most `limit` bytes
    (a file larger than that gets a shard of its own), numbered from `first`."""

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

    def add(self, row: dict, source: Slice | None) -> None:
        """Record one file's ledger `row`; append its samples from `source` when it has any."""
        row = row | {"shard": -1, "offset": -1, "shard_folder": ""}
        if source is not None:
            size = source.count * self.itemsize
            if self.samples and (self.samples * self.itemsize + size) > self.limit:
                self.close()
            if self.handle is None:
                self.handle = open(self._data.with_name(self._data.name + ".partial"), "wb")
            with open(source.path, "rb") as data:
                data.seek(source.start * self.itemsize)
                _copy(data, self.handle, size)
            row |= {"shard": self.index, "offset": self.samples, "shard_folder": self.folder.name}
            self.samples += source.count
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


def _copy(source, target, size: int, chunk: int = 1 << 22) -> None:
    while size > 0:
        block = source.read(min(chunk, size))
        if not block:
            raise OSError(f"{source.name}: {size} bytes short")
        target.write(block)
        size -= len(block)


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


def finished(work: Path, dtype: str) -> pd.DataFrame:
    """Every row of every finished shard (ledger and data both whole), with `index` (the shard's
    number in its corpus); unfinished shards and anything else in the folders are deleted."""
    ledgers, itemsize = [], np.dtype(dtype).itemsize
    for folder in sorted(p for p in (work / "shards").iterdir() if p.is_dir()):
        kept = set()
        for ledger_path in sorted(folder.glob("[0-9][0-9][0-9][0-9][0-9].parquet")):
            data = folder / shard_name(int(ledger_path.stem), dtype)
            ledger = pd.read_parquet(ledger_path)
            held = int(ledger.loc[ledger["shard"] >= 0, "samples"].sum()) * itemsize
            if data.exists() and data.stat().st_size == held:
                ledgers.append(ledger.assign(index=int(ledger_path.stem)))
                kept.add(int(ledger_path.stem))
        for stray in folder.iterdir():
            if _number(stray) not in kept:
                stray.unlink()
    if not ledgers:
        return pd.DataFrame(columns=[*KEY, "index", "status", "sha256", "samples", "shard", "offset"])
    return pd.concat(ledgers, ignore_index=True)


def _number(path: Path) -> int:
    """A shard file's number, -1 for a name that is not one."""
    stem = path.name.split(".")[0]
    return int(stem) if len(stem) == 5 and stem.isdigit() and not path.name.endswith(".partial") else -1


def delete(work: Path, corpus: str, index: int, dtype: str) -> None:
    """Remove one shard: its ledger first (so an interrupted delete leaves no finished shard)."""
    folder = work / "shards" / corpus
    (folder / f"{index:05d}.parquet").unlink(missing_ok=True)
    (folder / shard_name(index, dtype)).unlink(missing_ok=True)
