"""Windows of 16 kHz audio for training, read from the memory-mapped arrays via the index.

Every random choice here is a pure function of (seed, epoch, window), so any number of
DataLoader workers or DDP processes, and a resumed run, see exactly the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


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


def random_shift(seed: int, epoch: int, key: int, limit: int) -> int:
    """A seeded offset in [-limit, limit] samples: the same for the same (seed, epoch, key)."""
    if limit <= 0:
        return 0
    return int(np.random.default_rng([seed, epoch, key]).integers(-limit, limit + 1))


class WindowDataset(Dataset):
    """Items are `WindowRef`s -> (audio float32 (length,), stream, reset).

    The array of each track is memory-mapped on first use in each worker process; the window is
    moved by `ref.shift` and clamped inside its track, so no window ever crosses a track end.
    """

    def __init__(self, windows: pd.DataFrame, tracks: pd.DataFrame):
        self.ids = windows["id"].to_numpy()
        self.starts = windows["start"].to_numpy()
        self.lengths = windows["length"].to_numpy()
        self.samples = windows["samples"].to_numpy()
        self.paths = dict(zip(tracks["id"], tracks["path"], strict=True))
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _array(self, track_id: int) -> np.ndarray:
        if track_id not in self._arrays:
            self._arrays[track_id] = np.load(self.paths[track_id], mmap_mode="r")
        return self._arrays[track_id]

    def __getitem__(self, ref: WindowRef):
        i = ref.index
        length = int(self.lengths[i])
        start = int(np.clip(self.starts[i] + ref.shift, 0, self.samples[i] - length))
        audio = self._array(int(self.ids[i]))[start : start + length]
        # np.array copies out of the read-only memory map into a tensor-owned buffer.
        audio = np.array(audio, dtype=np.float32) / (32767 if audio.dtype == np.int16 else 1)
        return torch.from_numpy(audio), ref.stream, ref.reset
