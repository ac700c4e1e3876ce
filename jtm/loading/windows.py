"""Windows of 16 kHz audio for training, read from the memory-mapped arrays via the index.

Every random choice here is a pure function of (seed, epoch, window), so any number of
DataLoader workers or DDP processes, and a resumed run, see exactly the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from jtm.corpus import pcm


class WindowRef(NamedTuple):
    """What a batch sampler yields per item: which window, in which epoch, for which stream.

    `stream` >= 0 only for sequential sampling (the context carried across steps); `reset`
    marks a stream's first window of a new track, `shift` a per-epoch offset in samples.
    """

    index: int
    shift: int
    stream: int = -1
    reset: bool = False


def load_windows(index_dir: str | Path, splits: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows of tracks in `splits` with their track's split/samples/path/metadata, tracks)."""
    index_dir = Path(index_dir)
    tracks = pd.read_parquet(index_dir / "tracks.parquet")
    tracks = tracks[tracks["split"].isin(splits)].reset_index(drop=True)
    windows = pd.read_parquet(index_dir / "windows.parquet")
    windows = windows.merge(tracks[["id", "split", "samples", "composer", "ensemble"]], on="id", how="inner")
    return windows.sort_values(["id", "start"], ignore_index=True), tracks


def non_overlapping(keys: pd.DataFrame) -> np.ndarray:
    """(windows,) bool: a greedy set of windows per track that never overlap (`keys`: id, start,
    length per window), so every frame of a frame-level task is trained on and scored once: the
    windows whose frames the embed stage stores."""
    keep = np.zeros(len(keys), dtype=bool)
    ids, starts, lengths = (keys[c].to_numpy() for c in ("id", "start", "length"))
    last_track, free_from = None, 0
    for row in np.lexsort((starts, ids)):
        if ids[row] != last_track:
            last_track, free_from = ids[row], 0
        if starts[row] >= free_from:
            keep[row] = True
            free_from = starts[row] + lengths[row]
    return keep


def load_unlabeled(ingest_dir: str | Path, excluded=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows, tracks) of the ingested corpora (jtm/ingest/stage.py) but the files whose path
    is `excluded`, shaped like `load_windows`'s: each file is a track with a negative id
    (MusicNet's are positive; -1 - its manifest row), its shard as `path` and its place in it
    as `offset` (samples); split "unlabeled", `source` its corpus, no composer or ensemble."""
    ingest_dir = Path(ingest_dir)
    manifest = pd.read_parquet(
        ingest_dir / "manifest.parquet", columns=["corpus", "path", "shard", "offset", "samples"]
    )
    dtype = json.loads((ingest_dir / "corpora.json").read_text())["dtype"]
    tracks = pd.DataFrame(
        {
            "id": -1 - np.arange(len(manifest)),
            "path": [str(ingest_dir / shard) for shard in manifest["shard"]],
            "offset": manifest["offset"].to_numpy(),
            "samples": manifest["samples"].to_numpy(),
            "dtype": dtype,
            "source": manifest["corpus"].to_numpy(),
            "split": "unlabeled",
        }
    )
    windows = pd.read_parquet(ingest_dir / "windows.parquet")
    windows = pd.DataFrame(
        {"id": -1 - windows["file"].to_numpy(), "start": windows["start"], "length": windows["length"]}
    ).merge(tracks[["id", "split", "samples", "source"]], on="id")
    kept = ~manifest["path"].isin(set(excluded)).to_numpy()
    tracks = tracks[kept].reset_index(drop=True)
    windows = windows[windows["id"].isin(tracks["id"])].reset_index(drop=True)
    return windows.assign(composer=None, ensemble=None), tracks


def as_batch(batch):
    """The DataLoader collate function for `WindowDataset.__getitems__`: already a batch."""
    return batch


def random_shift(seed: int, epoch: int, key: int, limit: int) -> int:
    """A seeded offset in [-limit, limit] samples: the same for the same (seed, epoch, key)."""
    if limit <= 0:
        return 0
    return int(np.random.default_rng([seed, epoch, key]).integers(-limit, limit + 1))


class WindowDataset(Dataset):
    """Items are `WindowRef`s -> (audio float32 (length,), stream, reset).

    The array of each track is memory-mapped on first use in each worker process (an ingested
    file: its slice of a shard, `tracks`' offset and dtype columns); the window is moved by
    `ref.shift` and clamped inside its track, so no window ever crosses a track end.
    """

    def __init__(self, windows: pd.DataFrame, tracks: pd.DataFrame):
        self.ids = windows["id"].to_numpy()
        self.starts = windows["start"].to_numpy()
        self.lengths = windows["length"].to_numpy()
        self.samples = windows["samples"].to_numpy()
        self.paths = dict(zip(tracks["id"], tracks["path"], strict=True))
        self.slices = {}
        if "offset" in tracks:
            sliced = tracks.dropna(subset=["offset"])
            self.slices = {
                int(r.id): (int(r.offset), int(r.samples), str(r.dtype)) for r in sliced.itertuples()
            }
        self._arrays: dict[int, np.ndarray] = {}
        self._shards: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _array(self, track_id: int) -> np.ndarray:
        if track_id not in self._arrays:
            path = self.paths[track_id]
            if track_id in self.slices:  # one memory map per shard, a view per file
                offset, samples, dtype = self.slices[track_id]
                if path not in self._shards:
                    self._shards[path] = np.memmap(path, dtype=dtype, mode="r")
                self._arrays[track_id] = self._shards[path][offset : offset + samples]
            else:
                self._arrays[track_id] = np.load(path, mmap_mode="r")
        return self._arrays[track_id]

    def _window(self, ref: WindowRef) -> np.ndarray:
        """The window's samples, a view of the memory map (moved by the shift, kept in its track)."""
        i = ref.index
        length = int(self.lengths[i])
        start = int(np.clip(self.starts[i] + ref.shift, 0, self.samples[i] - length))
        return self._array(int(self.ids[i]))[start : start + length]

    def __getitems__(self, refs: list[WindowRef]):
        """A whole batch at once (what a DataLoader with a batch sampler asks for): (audio (B, L)
        float32, streams (B,) int64, resets (B,) bool), each window copied once into one array;
        the same values as collating `__getitem__`'s, without a tensor per window (see
        benchmarks/bench_loader.py). Use with `collate_fn=as_batch`."""
        views = [self._window(ref) for ref in refs]
        audio = np.empty((len(refs), len(views[0])), dtype=np.float32)
        for row, view in enumerate(views):
            audio[row] = view
            if view.dtype == np.int16:
                audio[row] /= pcm.SCALE
        streams = torch.tensor([ref.stream for ref in refs], dtype=torch.int64)
        resets = torch.tensor([ref.reset for ref in refs], dtype=torch.bool)
        return torch.from_numpy(audio), streams, resets

    def __getitem__(self, ref: WindowRef):
        # A copy out of the read-only memory map into a tensor-owned buffer.
        return torch.from_numpy(pcm.to_float32(self._window(ref))), ref.stream, ref.reset
