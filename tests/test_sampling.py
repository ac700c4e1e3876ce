"""Batch plans: each strategy's batches hold what it says, and every window comes once an epoch."""

from collections import Counter

import pandas as pd
import pytest

from jtm.loading.sampling import STRATEGIES, plan_epoch, split_for_rank
from jtm.loading.windows import WindowDataset, WindowRef, load_windows


@pytest.fixture
def windows(built):
    return load_windows(built["paths"]["index"], ("train", "val", "test"))[0]


@pytest.mark.parametrize("strategy", ["uniform", "samesequence", "samecategory"])
def test_every_window_once_per_epoch(windows, strategy):
    plan = plan_epoch(windows, strategy, 4, seed=0, epoch=0)
    seen = Counter(ref.index for batch in plan for ref in batch)
    assert set(seen) == set(range(len(windows))) and max(seen.values()) == 1
    assert all(1 <= len(batch) <= 4 for batch in plan)


def test_samesequence_batches_come_from_one_track(windows):
    for batch in plan_epoch(windows, "samesequence", 4, seed=0, epoch=0):
        assert windows.loc[[r.index for r in batch], "id"].nunique() == 1


@pytest.mark.parametrize("category", ["ensemble", "composer"])
def test_samecategory_batches_share_the_category(windows, category):
    plan = plan_epoch(windows, "samecategory", 4, seed=0, epoch=0, category=category)
    for batch in plan:
        assert windows.loc[[r.index for r in batch], category].nunique() == 1
    assert len({windows.loc[b[0].index, category] for b in plan}) > 1


def test_sequential_streams_walk_consecutive_windows(windows):
    plan = plan_epoch(windows, "sequential", 3, seed=0, epoch=0)
    refs = [ref for batch in plan for ref in batch]
    consecutive = windows[windows["start"] % windows["length"] == 0]
    assert sorted(r.index for r in refs) == sorted(consecutive.index)
    for stream in range(3):
        mine = [r for r in refs if r.stream == stream]
        for before, after in zip(mine, mine[1:], strict=False):
            a, b = windows.loc[before.index], windows.loc[after.index]
            if after.reset:
                assert a["id"] != b["id"]
            else:
                assert a["id"] == b["id"] and b["start"] == a["start"] + a["length"]
                assert before.shift == after.shift  # one shift per track keeps windows consecutive
        assert mine[0].reset
    assert all(len({r.stream for r in batch}) == len(batch) for batch in plan)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_plans_are_seeded(windows, strategy):
    first = plan_epoch(windows, strategy, 4, seed=3, epoch=1, jitter=100)
    assert first == plan_epoch(windows, strategy, 4, seed=3, epoch=1, jitter=100)
    assert first != plan_epoch(windows, strategy, 4, seed=3, epoch=2, jitter=100)


def test_shifted_windows_stay_inside_their_track(windows, built):
    tracks = pd.read_parquet(f"{built['paths']['index']}/tracks.parquet")
    dataset = WindowDataset(windows, tracks)
    for i in (0, len(windows) - 1):
        for shift in (-(10**9), 10**9):
            audio, _, _ = dataset[WindowRef(i, shift)]
            assert audio.shape == (windows.loc[i, "length"],)


@pytest.mark.check
def test_split_for_rank_shares_a_batch_or_skips_it():
    batch = [WindowRef(i, 0) for i in range(4)]
    assert split_for_rank(batch, 1, 2) == (batch[2:], 2)
    assert split_for_rank(batch[:3], 0, 2) is None
