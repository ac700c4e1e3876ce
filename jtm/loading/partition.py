"""Sharded loading for many GPUs: each epoch the storage files (an ingested shard, a MusicNet
track's array) are dealt to the DDP ranks, so a rank reads only its own files and no window is
read by two ranks.

Dealing is per source (MusicNet's train split, each ingested corpus), so every rank holds a
share of each source, in a seeded order that changes every epoch, each file to the rank holding
the fewest of that source's windows so far. A source with fewer files than ranks (a corpus in
one large shard) is split by windows instead, in contiguous runs, one per rank: a rank with
none of a source could not draw it, and the mixture's weights would not hold. A rank
then plans its own batches of `batch_size / world` windows over its files with the mixture's
weights (jtm/loading/mixture.py); batches short of that size are dropped and every rank keeps as
many batches as the poorest rank has, so all ranks step together. Unlike the global plan
(jtm/loading/sampling.py, every rank taking its share of the same global batches) the batches
depend on the number of ranks: that is what lets a node skip every file it was not dealt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jtm.loading.mixture import MixturePlan
from jtm.loading.windows import WindowRef


def deal_files(windows: pd.DataFrame, paths: dict, world: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Row indices of `windows` (with `id` and `source` columns) for each of `world` ranks: every
    row in exactly one rank's; all rows of one storage file (`paths`: track id -> file) in the
    same rank's, unless its source has fewer files than ranks; every source in every rank's
    (given as many windows as ranks)."""
    files = windows["id"].map(paths).to_numpy()
    owner = np.empty(len(windows), dtype=np.int64)
    rng = np.random.default_rng([seed, epoch, 43])
    for source in sorted(set(windows["source"])):
        rows = np.flatnonzero(windows["source"].to_numpy() == source)
        names, inverse, counts = np.unique(files[rows], return_inverse=True, return_counts=True)
        if len(names) < world:  # too few files: contiguous runs of windows, rotated every epoch
            runs = np.array_split(rows[np.argsort(inverse, kind="stable")], world)
            shift = int(rng.integers(world))
            for rank, run in enumerate(runs):
                owner[run] = (rank + shift) % world
            continue
        load = np.zeros(world, dtype=np.int64)
        rank_of = np.empty(len(names), dtype=np.int64)
        for f in rng.permutation(len(names)):
            rank_of[f] = int(np.argmin(load))
            load[rank_of[f]] += counts[f]
        owner[rows] = rank_of[inverse]
    return [np.flatnonzero(owner == rank) for rank in range(world)]


def sharded_epoch(windows: pd.DataFrame, paths: dict, weights: dict, strategy: str, batch_size: int,
                  seed: int, epoch: int, world: int, category: str = "ensemble",
                  jitter: int = 0) -> list[list[list[WindowRef]]]:  # fmt: skip
    """Each rank's batches of `epoch` (indices into `windows`): [rank][step] -> `batch_size /
    world` refs, the same number of steps for every rank."""
    if batch_size % world:
        raise ValueError(f"sharded loading splits pretrain.batch_size {batch_size} among {world} processes: "
                         "make it a multiple of the process count")  # fmt: skip
    local = batch_size // world
    plans = []
    for rank, rows in enumerate(deal_files(windows, paths, world, seed, epoch)):
        part = windows.iloc[rows].reset_index(drop=True)
        if part.empty:
            raise ValueError(
                f"sharded loading: rank {rank} of {world} was dealt no file in epoch {epoch}; "
                "use fewer processes, smaller shards (ingest.shard_mb) or the global loader"
            )
        rank_seed = int(np.random.default_rng([seed, epoch, rank, 47]).integers(2**31))
        plan = MixturePlan(part, weights, strategy, local, rank_seed, category, jitter).epoch(0)
        plans.append(
            [[ref._replace(index=int(rows[ref.index])) for ref in b] for b in plan if len(b) == local]
        )
    steps = min(len(plan) for plan in plans)
    if steps == 0:
        raise ValueError(
            f"sharded loading: some rank of {world} has no full batch of {local} windows of "
            f"{strategy!r} sampling in epoch {epoch}; use fewer processes or the global loader"
        )
    return [plan[:steps] for plan in plans]
