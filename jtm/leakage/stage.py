"""Stage `leakage`: which ingested files are recordings the evaluation tests on.

A user's library may hold the very recording of a MusicNet test track (another rip of the same
Beethoven sonata performance). Each ingested file's fingerprint (computed at ingest) is
searched among the fingerprints of the index's `leakage.splits` tracks (test and validation);
a file whose best alignment shares at least `leakage.threshold` of its bits over at least
`leakage.min_seconds` is excluded from pretraining.

Output folder (params `paths.leakage`)::

    matches.parquet    one row per excluded file: corpus, path, sha256, matched_id,
                       matched_split, similarity, offset_seconds (where in the matched track
                       the file starts), overlap_seconds
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir
from jtm.config import LeakageConfig
from jtm.ingest.fingerprint import ITEMS_PER_SECOND, of_array
from jtm.leakage.match import References
from jtm.progress import progress

COLUMNS = [
    "corpus", "path", "sha256", "matched_id", "matched_split", "similarity", "offset_seconds",
    "overlap_seconds",
]  # fmt: skip


def reference_fingerprints(index_dir: Path, splits: tuple[str, ...], rate: int) -> tuple[dict, dict]:
    """(track id -> fingerprint, track id -> split) of the index's tracks in `splits`."""
    tracks = pd.read_parquet(index_dir / "tracks.parquet")
    tracks = tracks[tracks["split"].isin(splits)]
    prints = {
        int(t.id): of_array(np.load(t.path, mmap_mode="r"), rate)
        for t in progress(list(tracks.itertuples()), desc="leakage: fingerprint", unit="tracks")
    }
    return prints, dict(zip(tracks["id"].astype(int), tracks["split"], strict=True))


def guard(index_dir: str | Path, ingest_dir: str | Path, out: str | Path, cfg: LeakageConfig) -> dict:
    """Write `out`/matches.parquet (atomically); figures for tracking."""
    index_dir, ingest_dir = Path(index_dir), Path(ingest_dir)
    manifest = pd.read_parquet(ingest_dir / "manifest.parquet")
    if manifest.empty:  # nothing ingested: nothing to compare (and no need for libchromaprint)
        prints, split_of = {}, {}
    else:
        prints, split_of = reference_fingerprints(index_dir, cfg.splits, 16_000)
    references = References(prints)
    min_overlap = max(1, round(cfg.min_seconds * ITEMS_PER_SECOND))
    rows = []
    for file in progress(list(manifest.itertuples()), desc="leakage: search", unit="files"):
        found = references.best(np.asarray(file.fingerprint, dtype=np.uint32), min_overlap)
        if found.reference is not None and found.similarity >= cfg.threshold:
            rows.append(
                (file.corpus, file.path, file.sha256, found.reference, split_of[found.reference],
                 found.similarity, found.offset / ITEMS_PER_SECOND, found.overlap / ITEMS_PER_SECOND)
            )  # fmt: skip
    matches = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_dir(out) as tmp:
        matches.to_parquet(tmp / "matches.parquet", index=False)
    return {"files": len(manifest), "references": len(prints), "matches": len(matches)}
