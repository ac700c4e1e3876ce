"""Stage `index`: the Parquet tables every later stage reads instead of walking folders.

Tables (written with pyarrow; schemas in docs/concepts/data.md, "Schemas"):
- tracks.parquet: id, split (train/val/test), metadata columns, samples (16 kHz), source_samples,
  subtype, path (the track's .npy, relative to the folder the pipeline runs in).
- windows.parquet: id, start (16 kHz sample), length; windows never cross a track's end.
- notes.parquet: id, start_time, end_time (16 kHz samples), instrument, note, start_beat,
  end_beat, note_value.

The validation split is carved from train by whole works (composer + catalog_name): movements
and repeated performances of a work share timbre and performers, so a split by recording leaks.
It covers every composer and ensemble that train holds in two or more works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jtm.atomic import atomic_dir
from jtm.config import IndexConfig
from jtm.errors import ConfigError, DataError
from jtm.musicnet import layout

WINDOW_SCHEMA = pa.schema([("id", pa.int64()), ("start", pa.int64()), ("length", pa.int64())])
NOTE_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("start_time", pa.int64()),
        ("end_time", pa.int64()),
        ("instrument", pa.int64()),
        ("note", pa.int64()),
        ("start_beat", pa.float64()),
        ("end_beat", pa.float64()),
        ("note_value", pa.string()),
    ]
)


def validation_split(tracks: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Split labels (train/val/test) with whole works of train moved to val.

    Works are taken in a seeded order: first, greedily, those that bring val a composer or an
    ensemble it lacks (only while another train work keeps it), then more until val holds
    about `fraction` of the train tracks. So val covers every class that has two or more train
    works, and train keeps every class it had.
    """
    split = tracks["split"].copy()
    if fraction <= 0:
        return split
    train = tracks[split == "train"]
    works = train["composer"].astype(str) + " / " + train["catalog_name"].astype(str)
    if works.nunique() < 2:
        raise ConfigError(f"index.val_fraction={fraction}: a val split needs 2+ train works")
    order = list(np.random.default_rng([seed, 7]).permutation(sorted(works.unique())))
    classes = {
        w: {("composer", c) for c in group["composer"]} | {("ensemble", e) for e in group["ensemble"]}
        for w, group in train.groupby(works)
    }
    left = pd.Series([c for w in order for c in classes[w]]).value_counts().to_dict()  # train works per class
    val: list[str] = []

    def movable(work: str) -> bool:
        return work not in val and all(left[c] >= 2 for c in classes[work])

    def take(work: str) -> None:
        val.append(work)
        for c in classes[work]:
            left[c] -= 1

    missing = {c for c, n in left.items() if n >= 2}
    while missing:
        gains = [(len(classes[w] & missing), -i, w) for i, w in enumerate(order) if movable(w)]
        gain, _, work = max(gains, default=(0, 0, None))
        if gain == 0:
            break
        take(work)
        missing -= classes[work]
    sizes = works.value_counts()
    for work in order:
        if val and sizes[val].sum() >= fraction * len(train):
            break
        if movable(work):
            take(work)
    if not val:  # one work per class: give val a work anyway
        take(order[0])
    split.loc[train.index[works.isin(val).to_numpy()]] = "val"
    return split


def window_starts(samples: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """(track position, start sample) of every full window; shapes (n_windows,)."""
    counts = np.where(samples >= window, (samples - window) // hop + 1, 0)
    track = np.repeat(np.arange(len(samples)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    starts = (np.arange(counts.sum()) - first) * hop
    return track, starts


def _check_finite(array_file: Path, rate: int) -> None:
    """Every sample of a resampled array (`rate` Hz) is finite (scanned in blocks of the memory map)."""
    if not array_file.is_file():
        raise DataError(array_file, "16 kHz array missing: rerun the resample stage")
    samples = np.load(array_file, mmap_mode="r")
    if samples.dtype.kind == "f":
        step = layout.CHECK_BLOCK
        blocks = (samples[begin : begin + step] for begin in range(0, len(samples), step))
        layout.check_finite_blocks(array_file, blocks, rate)


def build_index(audio16k: str | Path, out: str | Path, cfg: IndexConfig) -> dict:
    """Write tracks/windows/notes tables for the resampled corpus at `audio16k` (atomically)."""
    audio16k, out = Path(audio16k), Path(out)
    if cfg.window <= 0 or cfg.hop <= 0:
        raise ConfigError(f"index.window={cfg.window}, index.hop={cfg.hop}: both must be positive")
    manifest_path = audio16k / "manifest.parquet"
    if not manifest_path.is_file():
        raise DataError(manifest_path, "no manifest: run the resample stage first")
    tracks = pd.read_parquet(manifest_path).sort_values("id", ignore_index=True)
    tracks["split"] = validation_split(tracks, cfg.val_fraction, cfg.seed)
    # Paths relative to the repository (the folder both engines run in), as params name them.
    tracks["path"] = [str(audio16k / f"{i}.npy") for i in tracks["id"]]
    for path, samples, source in tracks[["path", "samples", "source_samples"]].itertuples(index=False):
        _check_finite(Path(path), round(samples / source * layout.SAMPLE_RATE))
    position, starts = window_starts(tracks["samples"].to_numpy(), cfg.window, cfg.hop)
    windows = pa.table(
        {
            "id": tracks["id"].to_numpy()[position],
            "start": starts,
            "length": np.full(len(starts), cfg.window),
        },
        schema=WINDOW_SCHEMA,
    )
    notes = pd.concat(
        [pd.read_parquet(audio16k / "labels" / f"{i}.parquet").assign(id=i) for i in tracks["id"]],
        ignore_index=True,
    )
    notes_table = pa.Table.from_pandas(notes[NOTE_SCHEMA.names], schema=NOTE_SCHEMA, preserve_index=False)
    with atomic_dir(out) as tmp:
        pq.write_table(pa.Table.from_pandas(tracks, preserve_index=False), tmp / "tracks.parquet")
        pq.write_table(windows, tmp / "windows.parquet")
        pq.write_table(notes_table, tmp / "notes.parquet")
    counts = tracks["split"].value_counts()
    return {
        "tracks": len(tracks),
        "windows": windows.num_rows,
        "notes": notes_table.num_rows,
        **{f"tracks_{s}": int(counts.get(s, 0)) for s in ("train", "val", "test")},
        "hours": float(tracks["source_samples"].sum()) / layout.SAMPLE_RATE / 3600,
    }


def summarize(index_dir: str | Path) -> str:
    """A few lines for people: what the index holds and where."""
    index_dir = Path(index_dir)
    if not (index_dir / "tracks.parquet").is_file():
        raise DataError(index_dir, "no index here: run the pipeline first (make demo, or dvc repro)")
    tracks = pd.read_parquet(index_dir / "tracks.parquet")
    windows = pq.read_metadata(index_dir / "windows.parquet").num_rows
    notes = pq.read_metadata(index_dir / "notes.parquet").num_rows
    minutes = tracks.groupby("split")["source_samples"].sum() / layout.SAMPLE_RATE / 60
    lines = [
        f"index {index_dir}: {len(tracks)} tracks, {windows} windows, {notes} notes",
        "  minutes by split: " + ", ".join(f"{s} {m:.1f}" for s, m in minutes.items()),
        f"  composers: {', '.join(sorted(tracks['composer'].unique()))}",
        f"  ensembles: {tracks['ensemble'].nunique()} ({', '.join(sorted(tracks['ensemble'].unique()))})",
        f"  16 kHz arrays: {Path(tracks['path'].iloc[0]).parent}/<id>.npy",
    ]
    if "heard" in tracks:
        counts = tracks.groupby(["split", "heard"], sort=False).size()
        per_split = {
            split: " + ".join(f"{n} {heard}" for (s, heard), n in counts.items() if s == split)
            for split in ("train", "val", "test")
        }
        held = sorted(tracks.loc[tracks["heard"] == "unseen", "room"].unique())
        lines.insert(
            2,
            "  recordings: "
            + ", ".join(f"{s} {text}" for s, text in per_split.items() if text)
            + f" (held-out rooms: {', '.join(held) or 'none'})",
        )
    return "\n".join(lines)
