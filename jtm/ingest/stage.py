"""Stage `ingest`: every corpus of `ingest.corpora` -> 16 kHz shards, a manifest and a rejects table.

Output folder (params `paths.ingest`; read by pretraining)::

    shards/<corpus>/<NNNNN>.<f32|i16>  raw samples at `resample.sample_rate`, files end to end
    manifest.parquet   one row per ingested file: corpus, path, bytes, sha256, decoder
                       (libsndfile | ffmpeg), format, subtype, source_rate, channels,
                       source_frames (its header's), decoded_frames, samples (at 16 kHz),
                       shard (relative path), offset (samples into the shard), fingerprint
                       (Chromaprint items of the 16 kHz samples: jtm/leakage)
    rejects.parquet    one row per file not ingested: corpus, path, sha256, kind (error: not
                       audio, no audio stream, decoder error, zero-length, truncated, non-finite;
                       short: under one window; duplicate: the same bytes as an earlier file), reason
    windows.parquet    every full window of every ingested file: file (manifest row), start,
                       length (samples; `index.window` and `index.hop`, as MusicNet's)
    corpora.json       per corpus: weight, files, hours, shards, the files skipped as not audio
                       (by extension); and the samples' rate and dtype

At the end, a log line per format used (files, hours), per reject reason and per extension
skipped (jtm/ingest/account.py): every file under the folders is accounted for.

Files are decoded in parallel and packed in path order, so the shards are the same whatever the
worker count. A killed run keeps its finished shards (jtm/ingest/shards.py); the output folder
is written beside its place and renamed on success. The stage fails only when at least
`ingest.max_rejected` of the files are errors (default 1.0: all of them), naming the rejects.
"""

from __future__ import annotations

import json
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
from jtm.ingest.account import account_table, log_account
from jtm.ingest.decode import Decoded, Target, decode_file
from jtm.ingest.discover import Candidate, Corpus, survey
from jtm.ingest.shards import ShardWriter, prepare, reuse, shard_name
from jtm.progress import progress

MANIFEST_COLUMNS = [
    "corpus", "path", "bytes", "sha256", "decoder", "format", "subtype", "source_rate",
    "channels", "source_frames", "decoded_frames", "samples", "shard", "offset", "fingerprint",
]  # fmt: skip
REJECT_COLUMNS = ["corpus", "path", "sha256", "kind", "reason"]


def _decode(task: tuple[int, str, Path, Target]) -> tuple[int, Decoded]:
    position, path, work, target = task
    return position, decode_file(path, work / "decoded" / f"{position}.raw", target)


def _pack(
    plan: list[Candidate], start: int, work: Path, target: Target, limit: int, first: dict, seen, workers
):
    """Decode plan[start:] (in parallel) and pack it, in order, into shards; returns nothing, the
    ledgers on disk say what was done."""
    tasks = [(i, plan[i].path, work, target) for i in range(start, len(plan))]
    writers: dict[str, ShardWriter] = {}
    pool = get_context("fork").Pool(workers) if workers > 1 and len(tasks) > 1 else None
    results = pool.imap(_decode, tasks) if pool else map(_decode, tasks)
    try:
        for position, decoded in progress(results, total=len(tasks), desc="ingest", unit="files"):
            candidate = plan[position]
            if candidate.corpus not in writers:
                for writer in writers.values():
                    writer.close()
                folder = work / "shards" / candidate.corpus
                writers[candidate.corpus] = ShardWriter(folder, first[candidate.corpus], limit, target.dtype)
            raw = work / "decoded" / f"{position}.raw"
            if decoded.status == "ok" and decoded.sha256 in seen:
                raw.unlink()
                decoded = replace(decoded, status="duplicate", reason=f"same bytes as {seen[decoded.sha256]}")
            if decoded.status == "ok":
                seen[decoded.sha256] = candidate.path
            writers[candidate.corpus].add(candidate, decoded, raw if decoded.status == "ok" else None)
        for writer in writers.values():
            writer.close()
    finally:
        if pool:
            pool.terminate()


def _tables(ledgers: list[pd.DataFrame], dtype: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, rejects) from every finished shard's ledger."""
    rows = (
        pd.concat(ledgers, ignore_index=True)
        if ledgers
        else pd.DataFrame(columns=MANIFEST_COLUMNS + ["status", "reason"])
    )
    ok = rows["status"] == "ok"
    manifest = rows[ok].copy()
    manifest["shard"] = [
        f"shards/{c}/{shard_name(int(i), dtype)}"
        for c, i in zip(manifest["corpus"], manifest["shard"], strict=True)
    ]
    rejects = rows[~ok].rename(columns={"status": "kind"})
    return manifest[MANIFEST_COLUMNS].reset_index(drop=True), rejects[REJECT_COLUMNS].reset_index(drop=True)


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
    ledgers, first = reuse(work, plan, target.dtype)
    reused = sum(len(ledger) for ledger in ledgers)
    seen = {r.sha256: r.path for ledger in ledgers for r in ledger.itertuples() if r.status == "ok"}
    _pack(plan, reused, work, target, limit, first, seen, max(1, workers))
    manifest, rejects = _tables(reuse(work, plan, target.dtype)[0], target.dtype)
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
    seconds = time.perf_counter() - began
    hours = float(manifest["samples"].sum()) / target.rate / 3600
    kinds = rejects["kind"].value_counts()
    return {
        "files": len(plan),
        "ingested": len(manifest),
        "reused_files": reused,
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
