"""Batch plans for CPC's negative-sampling strategies: each batch holds what its strategy says.

Negatives are drawn from the batch, so the batch's make-up *is* the strategy:
- `uniform`: windows from anywhere, shuffled.
- `samesequence`: every batch from one track.
- `samecategory`: every batch from tracks of one category (ensemble or composer).
- `sequential`: `batch_size` streams walk their tracks' consecutive, non-overlapping windows;
  batch j holds each stream's j-th window, so the context network's state carries over.

Every window (for sequential: every non-overlapping window) is in exactly one batch per epoch.
Batches may be smaller than `batch_size` where a track or category runs out; under DDP, a
batch whose size the world size does not divide is dropped (see `split_for_rank`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jtm import choices
from jtm.loading.windows import WindowRef, random_shift

STRATEGIES = choices.SAMPLINGS


def chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def window_refs(chunk, seed: int, epoch: int, jitter: int) -> list[WindowRef]:
    """The windows of `chunk` (indices), each with its seeded per-epoch shift."""
    return [WindowRef(int(i), random_shift(seed, epoch, int(i), jitter)) for i in chunk]


def walk_streams(tracks, track_ids, batch_size: int, seed: int, epoch: int, jitter: int):
    """`batch_size` streams walk `tracks` (arrays of consecutive window indices, in order), each
    stream taking the next track when its own ends; batch j holds each stream's j-th window.
    A track's windows share one shift, seeded by its id (`track_ids`)."""
    streams: list[list[WindowRef]] = [[] for _ in range(batch_size)]
    for track, track_id in zip(tracks, track_ids, strict=True):
        stream = min(range(batch_size), key=lambda s: len(streams[s]))
        shift = random_shift(seed, epoch, int(track_id), jitter)
        streams[stream] += [WindowRef(int(i), shift, stream, j == 0) for j, i in enumerate(track)]
    steps = max(len(s) for s in streams)
    return [[s[j] for s in streams if j < len(s)] for j in range(steps)]


def plan_epoch(
    windows: pd.DataFrame,
    strategy: str,
    batch_size: int,
    seed: int,
    epoch: int,
    category: str = "ensemble",
    jitter: int = 0,
) -> list[list[WindowRef]]:
    """The epoch's batches, in order. `jitter`: random per-epoch window shift, in samples."""
    rng = np.random.default_rng([seed, epoch, 17])
    index = np.arange(len(windows))

    def refs(chunk) -> list[WindowRef]:
        return window_refs(chunk, seed, epoch, jitter)

    if strategy == "uniform":
        return [refs(c) for c in chunks(rng.permutation(index), batch_size)]
    if strategy in ("samesequence", "samecategory"):
        key = windows["id"] if strategy == "samesequence" else windows[category]
        batches = []
        for _, group in pd.Series(index).groupby(key.to_numpy(), sort=True):
            batches += chunks(rng.permutation(group.to_numpy()), batch_size)
        return [refs(batches[i]) for i in rng.permutation(len(batches))]
    if strategy == "sequential":
        return _sequential(windows, batch_size, seed, epoch, rng, jitter)
    raise ValueError(f"unknown sampling strategy {strategy!r}: use one of {STRATEGIES}")


def _sequential(windows, batch_size, seed, epoch, rng, jitter) -> list[list[WindowRef]]:
    # Consecutive, non-overlapping windows of each track: starts at multiples of the length.
    consecutive = windows[(windows["start"] % windows["length"]) == 0]
    tracks = [g.index.to_numpy() for _, g in consecutive.groupby("id", sort=True)]
    order = [tracks[t] for t in rng.permutation(len(tracks))]
    ids = [consecutive.loc[track[0], "id"] for track in order]
    return walk_streams(order, ids, batch_size, seed, epoch, jitter)


def split_for_rank(batch: list[WindowRef], rank: int, world: int) -> tuple[list[WindowRef], int] | None:
    """This rank's contiguous share of a global batch and its row offset, or None to skip it."""
    if len(batch) % world:
        return None
    share = len(batch) // world
    return batch[rank * share : (rank + 1) * share], rank * share
