"""Batch plans over a mixture of sources: MusicNet's train split and each ingested corpus, each
with a weight, the probability that a batch's window comes from it.

Each source is read as a stream of passes; a pass visits each of the source's units once, in a
seeded order, and the next pass starts where it ends. A unit is what the strategy puts
together: one window (`uniform`), a batch-sized chunk of one file (`samesequence`) or of one
category (`samecategory`; an unlabeled file has no category, so its chunks are its own, as in
samesequence), or one track's consecutive windows (`sequential`). An epoch holds about as many
windows as all sources together; the source of each window (uniform) or unit (the others) is
drawn with the weights. A stream's position at an epoch's start comes from replaying the
earlier epochs' draws, so an epoch's plan depends on the seed and its number only, as
`plan_epoch`'s does, and a resumed run sees the same batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jtm.loading.sampling import chunks, walk_streams, window_refs
from jtm.loading.windows import WindowRef


class _Stream:
    """One source's units, pass after pass: `take(n)` the next n (window indices, or units)."""

    def __init__(self, units_of_pass, state: tuple[int, int] = (0, 0)):
        self.units_of_pass = units_of_pass
        self.pass_, self.position = state
        self.units = units_of_pass(self.pass_)

    @property
    def state(self) -> tuple[int, int]:
        return self.pass_, self.position

    def take(self, n: int) -> list:
        taken = []
        while n > 0:
            if self.position == len(self.units):
                self.pass_, self.position = self.pass_ + 1, 0
                self.units = self.units_of_pass(self.pass_)
            part = self.units[self.position : self.position + n]
            taken.append(part)
            self.position += len(part)
            n -= len(part)
        return taken


class MixturePlan:
    """`epoch(e)`: the batches of epoch e over `windows` (a `source` column names each window's
    source), drawn with `weights` (source -> weight; sources without weight or windows are left
    out)."""

    def __init__(self, windows: pd.DataFrame, weights: dict, strategy: str, batch_size: int, seed: int,
                 category: str = "ensemble", jitter: int = 0):  # fmt: skip
        self.windows, self.strategy, self.batch_size = windows, strategy, batch_size
        self.seed, self.category, self.jitter = seed, category, jitter
        present = set(windows["source"])
        self.sources = [s for s, w in weights.items() if w > 0 and s in present]
        if not self.sources:
            raise ValueError(f"no source with a positive weight holds windows: weights {weights}")
        weight = np.array([weights[s] for s in self.sources], dtype=np.float64)
        self.p = weight / weight.sum()
        self.members = [np.flatnonzero(windows["source"].to_numpy() == s) for s in self.sources]
        if strategy == "sequential":
            self.members = [
                m[(windows["start"].to_numpy()[m] % windows["length"].to_numpy()[m]) == 0]
                for m in self.members
            ]
        self.total = sum(len(m) for m in self.members)
        self.starts = [[(0, 0)] * len(self.sources)]  # each epoch's stream states

    def _units(self, source: int, pass_: int):
        """A pass of one source: a permutation of its windows (uniform) or a list of units."""
        rng = np.random.default_rng([self.seed, source, pass_, 23])
        members = self.members[source]
        if self.strategy == "uniform":
            return rng.permutation(members)
        w = self.windows.iloc[members]
        if self.strategy == "sequential":
            groups = [members[g] for g in w.groupby("id", sort=True).indices.values()]
            return [groups[i] for i in rng.permutation(len(groups))]
        key = w["id"].astype(str)
        if self.strategy == "samecategory":
            key = w[self.category].astype(object).where(w[self.category].notna(), "file " + key).astype(str)
        units = []
        for rows in w.groupby(key.to_numpy(), sort=True).indices.values():
            units += chunks(rng.permutation(members[rows]), self.batch_size)
        return [units[i] for i in rng.permutation(len(units))]

    def _run(self, epoch: int) -> tuple[list[list[WindowRef]], list[tuple[int, int]]]:
        """The epoch's batches and the streams' states after it."""
        streams = [
            _Stream(lambda k, s=s: self._units(s, k), state) for s, state in enumerate(self.starts[epoch])
        ]
        rng = np.random.default_rng([self.seed, epoch, 31])
        if self.strategy == "uniform":
            slots = rng.choice(len(self.sources), size=self.total, p=self.p)
            order = np.empty(self.total, dtype=np.int64)
            for s, stream in enumerate(streams):
                taken = stream.take(int((slots == s).sum()))
                order[slots == s] = np.concatenate(taken) if taken else []
            batches = [self._refs(epoch, chunk) for chunk in chunks(order, self.batch_size)]
        else:
            units, count = [], 0
            while count < self.total:
                unit = streams[rng.choice(len(self.sources), p=self.p)].take(1)[0][0]
                units.append(unit)
                count += len(unit)
            batches = (
                self._sequential(epoch, units)
                if self.strategy == "sequential"
                else [self._refs(epoch, u) for u in units]
            )
        return batches, [stream.state for stream in streams]

    def _refs(self, epoch: int, chunk) -> list[WindowRef]:
        return window_refs(chunk, self.seed, epoch, self.jitter)

    def _sequential(self, epoch: int, tracks: list[np.ndarray]) -> list[list[WindowRef]]:
        """`batch_size` streams walk the drawn tracks, each the next one when its own ends."""
        ids = self.windows["id"].to_numpy()
        track_ids = [ids[track[0]] for track in tracks]
        return walk_streams(tracks, track_ids, self.batch_size, self.seed, epoch, self.jitter)

    def epoch(self, epoch: int) -> list[list[WindowRef]]:
        while len(self.starts) <= epoch:
            self.starts.append(self._run(len(self.starts) - 1)[1])
        return self._run(epoch)[0]
