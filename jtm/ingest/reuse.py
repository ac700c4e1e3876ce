"""What an ingest run can take from the finished shards, and what it must decode.

`sort_out(stored, plan)`: each file of the plan is either known (a finished shard's ledger
holds a row with its corpus, path, size and modification time) or to decode. A known duplicate
(no samples of its own) whose twin holding the samples is gone is decoded again. A shard holding
any row no longer wanted (its file removed or changed, or a row another shard supersedes) is
stale: its wanted rows are repacked, then it is deleted (jtm/ingest/shards.py).

`resolve_duplicates(rows)`: the same bytes under several paths are one recording. In plan order
the first path is the one ingested, whichever run stored the samples; the others are duplicates
naming it. So the manifest is the same whether a library was ingested at once or grew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jtm.ingest.discover import Candidate
from jtm.ingest.shards import KEY

PLACE = ["shard", "offset", "shard_folder"]  # where a file's samples are
HOLDS = ("ok", "duplicate")  # statuses of a readable file (the duplicate's samples are its twin's)


@dataclass
class Sorted:
    """`known`: the wanted ledger rows, one per known file of the plan (with `index`, their
    shard's number); `todo`: the plan's files to decode, in plan order; `stale`: (corpus,
    index) of the shards holding wanted and unwanted rows (repack, then delete); `dead`: the
    shards holding no wanted row (delete first); `next_index`: per corpus, the first number
    after the shards in use (a dead shard's number is free again: a library whose every file
    changed, or a work folder copied with other file times, is packed as a fresh run packs it)."""

    known: pd.DataFrame
    todo: list[Candidate]
    stale: list[tuple[str, int]]
    dead: list[tuple[str, int]]
    next_index: dict[str, int]


def key_of(item) -> tuple:
    """(corpus, path, bytes, mtime_ns) of a Candidate or a ledger row (itertuples)."""
    return tuple(getattr(item, name) for name in KEY)


def sort_out(stored: pd.DataFrame, plan: list[Candidate]) -> Sorted:
    """Which of `plan` the `stored` rows (jtm/ingest/shards.py's `finished`) already hold."""
    if stored.empty:
        return Sorted(stored, list(plan), [], [], {})
    wanted = {key_of(c) for c in plan}
    stored = stored.sort_values(["corpus", "index"], kind="stable")
    latest = stored.drop_duplicates(list(KEY), keep="last")  # a repack interrupted: the newer copy
    keys = latest[list(KEY)].itertuples(index=False, name=None)
    latest = latest.loc[np.array([key in wanted for key in keys], bool)]
    held = set(latest.loc[latest["status"] == "ok", "sha256"])
    orphaned = (latest["status"] == "duplicate") & ~latest["sha256"].isin(held)
    known = latest[~orphaned]
    have = set(known[list(KEY)].itertuples(index=False, name=None))
    todo = [c for c in plan if key_of(c) not in have]
    kept = set(known.index)
    changed = {(r.corpus, int(r.index)) for r in stored.itertuples() if r.Index not in kept}
    busy = {(corpus, int(index)) for corpus, index in zip(known["corpus"], known["index"], strict=True)}
    next_index = {c: int(i) + 1 for c, i in known.groupby("corpus")["index"].max().items()}
    known = known.reset_index(drop=True)
    return Sorted(known, todo, sorted(changed & busy), sorted(changed - busy), next_index)


def resolve_duplicates(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (one per plan file, in plan order) with each set of equal bytes settled: the first
    path `ok`, holding the samples of whichever row stored them; the rest `duplicate`."""
    rows = rows.reset_index(drop=True).copy()
    readable = rows[rows["status"].isin(HOLDS)]
    for _, group in readable.groupby("sha256", sort=False):
        holder = group[group["shard"] >= 0]
        if holder.empty:
            raise RuntimeError(f"no stored samples for {group['path'].iloc[0]} (a bug: report it)")
        first, rest = group.index[0], group.index[1:]
        rows.loc[first, PLACE] = rows.loc[holder.index[0], PLACE].to_list()  # same bytes: same samples
        rows.loc[first, ["status", "reason"]] = ["ok", ""]
        rows.loc[rest, ["status", "reason"]] = ["duplicate", f"same bytes as {rows.at[first, 'path']}"]
        rows.loc[rest, PLACE] = [-1, -1, ""]
    return rows
