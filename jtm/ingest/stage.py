"""Stage `ingest`: every corpus of `ingest.corpora` -> 16 kHz shards, a manifest and a rejects table.

Output folder (params `paths.ingest`; read by pretraining)::

    shards/<corpus>/<NNNNN>.<f32|i16>  raw samples at `resample.sample_rate`, files end to end
    manifest.parquet   one row per ingested file: corpus, path, bytes, sha256, decoder
                       (libsndfile | ffmpeg), format, subtype, source_rate, channels,
                       source_frames (its header's), length_known (False: the header's
                       length is a guess), decoded_frames, samples (at 16 kHz), shard
                       (relative path), offset (samples into the shard), fingerprint
                       (Chromaprint items of the 16 kHz samples: jtm/leakage), notes (what
                       the decoders said: a retry through FFmpeg, skipped packets, ...)
    rejects.parquet    one row per file not ingested: corpus, path, sha256, kind (error: not
                       audio, damaged, no audio stream, decoder error, zero-length, truncated,
                       non-finite; short: under one window; duplicate: the same bytes as a
                       file before it, named), reason (positions in m:ss.s)
    windows.parquet    every full window of every ingested file: file (manifest row), start,
                       length (samples; `index.window` and `index.hop`, as MusicNet's)
    corpora.json       per corpus: weight, files, hours, shards, the files skipped as not audio
                       (by extension); and the samples' rate and dtype

At the end, a log line per format used (files, hours), per reject reason and per extension
skipped (jtm/ingest/account.py): every file under the folders is accounted for; then the
rejected files by name (the first 20) and the files used despite decoder notes.

A run decodes only the files no finished shard holds (same corpus, path, size, modification
time), wherever they sort; a removed or changed file's shard is repacked without it (copied,
not decoded): jtm/ingest/shards.py, jtm/ingest/reuse.py. The manifest and windows are in plan
order and the same as a fresh run's; only the shard numbers and offsets record the history.
New files are decoded in parallel and packed in path order, so the shards are the same whatever
the worker count. A killed run keeps its finished shards; the output folder is written beside
its place and renamed on success. The stage fails only when at least
`ingest.max_rejected` of the files are errors (default 1.0: all of them), naming the rejects.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir
from jtm.codedeps import code_digest
from jtm.corpus.index import window_starts
from jtm.errors import DataError
from jtm.ingest.account import account_table, log_account, log_rejects
from jtm.ingest.decode import Decoded, Target, decode_file
from jtm.ingest.discover import Candidate, Corpus, survey
from jtm.ingest.reuse import Sorted, key_of, resolve_duplicates, sort_out
from jtm.ingest.shards import ShardWriter, Slice, delete, finished, prepare, shard_name
from jtm.progress import progress

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "corpus", "path", "bytes", "sha256", "decoder", "format", "subtype", "source_rate",
    "channels", "source_frames", "length_known", "decoded_frames", "samples", "shard", "offset",
    "fingerprint", "notes",
]  # fmt: skip
REJECT_COLUMNS = ["corpus", "path", "sha256", "kind", "reason"]


def _decode(task: tuple[int, str, Path, Target]) -> tuple[int, Decoded]:
    position, path, work, target = task
    return position, decode_file(path, work / "decoded" / f"{position}.raw", target)


class _Writers(dict):
    """One ShardWriter per corpus, opened on first use at the corpus's first free number."""

    def __init__(self, work: Path, first: dict[str, int], limit: int, dtype: str):
        super().__init__()
        self.work, self.first, self.limit, self.dtype = work, first, limit, dtype

    def __missing__(self, corpus: str) -> ShardWriter:
        folder = self.work / "shards" / corpus
        self[corpus] = ShardWriter(folder, self.first.get(corpus, 0), self.limit, self.dtype)
        return self[corpus]


def _repack(found: Sorted, writers: _Writers, work: Path, dtype: str) -> int:
    """Copy the wanted rows of the stale shards (samples and all) into new shards: the count."""
    stale = set(found.stale)
    places = zip(found.known["corpus"], found.known["index"], strict=True)
    moving = found.known.loc[np.array([(corpus, int(index)) in stale for corpus, index in places], bool)]
    for row in moving.sort_values(["corpus", "index", "offset"], kind="stable").to_dict("records"):
        data = work / "shards" / row["corpus"] / shard_name(int(row.pop("index")), dtype)
        source = Slice(data, int(row["offset"]), int(row["samples"])) if row["shard"] >= 0 else None
        writers[row["corpus"]].add(row, source)
    return len(moving)


def _pack(found: Sorted, writers: _Writers, work: Path, target: Target, workers: int) -> None:
    """Decode `found.todo` (in parallel) and pack it, in plan order, into new shards; a file with
    the same bytes as one already stored is recorded without samples of its own."""
    stored = found.known[found.known["shard"] >= 0]
    holders = dict(zip(stored["sha256"], stored["path"], strict=True))
    tasks = [(i, c.path, work, target) for i, c in enumerate(found.todo)]
    pool = get_context("fork").Pool(workers) if workers > 1 and len(tasks) > 1 else None
    results = pool.imap(_decode, tasks) if pool else map(_decode, tasks)
    try:
        for position, decoded in progress(results, total=len(tasks), desc="ingest", unit="files"):
            candidate = found.todo[position]
            raw = work / "decoded" / f"{position}.raw"
            if decoded.status == "ok" and decoded.sha256 in holders:
                decoded = replace(
                    decoded, status="duplicate", reason=f"same bytes as {holders[decoded.sha256]}"
                )
                raw.unlink()
            source = Slice(raw, 0, decoded.samples) if decoded.status == "ok" else None
            if source is not None:
                holders[decoded.sha256] = candidate.path
            writers[candidate.corpus].add(asdict(candidate) | asdict(decoded), source)
            if source is not None:
                raw.unlink()
    finally:
        if pool:
            pool.terminate()


def _tables(rows: pd.DataFrame, dtype: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, rejects) from one ledger row per file, in plan order."""
    ok = rows["status"] == "ok"
    manifest = rows[ok].copy()
    manifest["shard"] = [
        f"shards/{folder}/{shard_name(int(i), dtype)}"
        for folder, i in zip(manifest["shard_folder"], manifest["shard"], strict=True)
    ]
    rejects = rows[~ok].rename(columns={"status": "kind"})
    return manifest[MANIFEST_COLUMNS].reset_index(drop=True), rejects[REJECT_COLUMNS].reset_index(drop=True)


def _settle(work: Path, plan: list[Candidate], target: Target, limit: int, workers: int) -> dict:
    """Bring the work folder's shards to exactly `plan`'s files: reuse what they hold, decode
    the rest, repack shards holding files no longer wanted. Returns the rows (plan order) and
    counts."""
    found = sort_out(finished(work, target.dtype), plan)
    for corpus, index in found.dead:  # nothing to keep: their numbers are free again
        delete(work, corpus, index, target.dtype)
    writers = _Writers(work, found.next_index, limit, target.dtype)
    repacked = _repack(found, writers, work, target.dtype)
    _pack(found, writers, work, target, workers)
    for writer in writers.values():
        writer.close()
    for corpus, index in found.stale:
        delete(work, corpus, index, target.dtype)
    final = sort_out(finished(work, target.dtype), plan)
    assert not (final.todo or final.stale or final.dead), "the shards do not hold the plan after packing"
    by_key = {key_of(row): row for row in final.known.itertuples(index=False)}
    rows = pd.DataFrame([by_key[key_of(c)]._asdict() for c in plan])
    if rows.empty:
        rows = pd.DataFrame(columns=MANIFEST_COLUMNS + ["status", "reason", "shard_folder"])
    return {
        "rows": resolve_duplicates(rows),
        "reused_files": len(plan) - len(found.todo),
        "decoded_files": len(found.todo),
        "repacked_files": repacked,
        "removed_shards": len(found.stale) + len(found.dead),
    }


def _check_rejects(rejects: pd.DataFrame, files: int, max_rejected: float, work: Path) -> None:
    """Fail when errors reach `max_rejected` of the files; the rejects table is kept in `work`."""
    errors = rejects[rejects["kind"] == "error"]
    if files == 0 or len(errors) == 0 or len(errors) / files < max_rejected:
        return
    table = work / "rejects.parquet"
    rejects.to_parquet(table, index=False)
    first = "; ".join(f"{r.path}: {r.reason}" for r in errors.head(3).itertuples())
    raise DataError(
        table,
        f"{len(errors)} of {files} files could not be ingested "
        f"(ingest.max_rejected is {max_rejected}): {first}",
    )


def _log_notes(manifest: pd.DataFrame, most: int = 20) -> None:
    """Files ingested although a decoder complained (FFmpeg decoded what libsndfile could not,
    damaged packets skipped, a guessed length): named, with what was said (all: the manifest's
    `notes`)."""
    noted = manifest[manifest["notes"] != ""]
    if len(noted):
        log.info("ingest: %d file(s) used with decoder notes (column `notes` of the manifest):", len(noted))
    for row in noted.head(most).itertuples():
        log.info("  %s: %s", row.path, row.notes)


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy of a 1 GB shard); a copy where the work folder is another file system."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _code_digest() -> str:
    """SHA-256 of the code that decides what a shard holds (the decoder and the shard writer,
    with all they import: jtm/codedeps.py): a resumed run trusts shards made by the same code."""
    return code_digest("jtm.ingest.decode", "jtm.ingest.shards")


def ingest(
    corpora: list[Corpus],
    target: Target,
    shard_mb: float,
    max_rejected: float,
    out: str | Path,
    work: str | Path,
    workers: int,
) -> dict:
    """Ingest `corpora` into `out` (atomically), resuming from `work`. Returns figures for tracking."""
    out, work = Path(out), Path(work)
    began = time.perf_counter()
    surveys = {corpus.name: survey(corpus) for corpus in corpora}
    plan = [candidate for found in surveys.values() for candidate in found.candidates]
    limit = max(1, int(shard_mb * 2**20))
    stamp = {k: v for k, v in asdict(target).items() if k != "hop"}  # the hop only places windows
    prepare(work, stamp | {"shard_bytes": limit, "code": _code_digest()})
    settled = _settle(work, plan, target, limit, max(1, workers))
    log.info(
        "ingest: %d files: %d reused from %s, %d decoded, %d copied out of %d shard(s) holding removed files",
        len(plan), settled["reused_files"], work, settled["decoded_files"], settled["repacked_files"],
        settled["removed_shards"],
    )  # fmt: skip
    manifest, rejects = _tables(settled.pop("rows"), target.dtype)
    _check_rejects(rejects, len(plan), max_rejected, work)
    skipped = {name: dict(found.skipped) for name, found in surveys.items()}
    _write(out, work, corpora, manifest, rejects, target, skipped)
    outcomes = pd.concat(
        [manifest.assign(status="ok", reason=""), rejects.rename(columns={"kind": "status"})]
    )
    log_account(
        "ingest",
        account_table(
            outcomes,
            sum((s.skipped for s in surveys.values()), Counter()),
            target.rate,
            {path: reason for s in surveys.values() for path, reason in s.links.items()},
        ),
    )
    log_rejects("ingest", rejects, str(out / "rejects.parquet"))
    _log_notes(manifest)
    seconds = time.perf_counter() - began
    hours = float(manifest["samples"].sum()) / target.rate / 3600
    kinds = rejects["kind"].value_counts()
    return {
        "files": len(plan),
        "ingested": len(manifest),
        **settled,
        "errors": int(kinds.get("error", 0)),
        "short": int(kinds.get("short", 0)),
        "duplicates": int(kinds.get("duplicate", 0)),
        "skipped_not_audio": sum(sum(counts.values()) for counts in skipped.values()),
        "hours": hours,
        "seconds": seconds,
        "x_realtime": hours * 3600 / max(seconds, 1e-9),
    }


def _write(
    out: Path,
    work: Path,
    corpora,
    manifest: pd.DataFrame,
    rejects: pd.DataFrame,
    target: Target,
    skipped: dict,
) -> None:
    """The output folder: shards linked from the work folder, the tables, corpora.json (with
    `skipped`: per corpus, the files left out as not audio, by extension)."""
    summary = {"sample_rate": target.rate, "dtype": target.dtype, "corpora": {}}
    with atomic_dir(out) as tmp:
        for corpus in corpora:
            held = manifest[manifest["corpus"] == corpus.name]
            for shard in held["shard"].unique():
                _link(work / shard, tmp / shard)
            summary["corpora"][corpus.name] = {
                "weight": corpus.weight,
                "files": len(held),
                "hours": float(held["samples"].sum()) / target.rate / 3600,
                "shards": int(held["shard"].nunique()),
                "skipped_not_audio": skipped[corpus.name],
            }
        manifest.to_parquet(tmp / "manifest.parquet", index=False)
        samples = manifest["samples"].to_numpy(dtype=np.int64)
        file, starts = window_starts(samples, target.min_samples, target.hop)
        length = np.full(len(starts), target.min_samples, dtype=np.int64)
        pd.DataFrame({"file": file, "start": starts, "length": length}).to_parquet(
            tmp / "windows.parquet", index=False
        )
        rejects.to_parquet(tmp / "rejects.parquet", index=False)
        (tmp / "corpora.json").write_text(json.dumps(summary, indent=2))
