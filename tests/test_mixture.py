"""Batch plans over MusicNet and ingested corpora: draws follow the weights, every window of a
source is visited once per pass, strategies keep their meaning, and plans replay exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jtm.loading.mixture import MixturePlan

pytestmark = pytest.mark.check  # the contributor tier: make check


def windows_of(sources: dict[str, list[int]], labelled: str = "musicnet") -> pd.DataFrame:
    """Windows (hop = half a window) of files with these window counts, per source; ids unique."""
    rows, next_id = [], 1
    for source, files in sources.items():
        for count in files:
            for j in range(count):
                category = f"ens{next_id % 2}" if source == labelled else None
                rows.append((next_id, j * 50, 100, source, category))
            next_id += 1
    return pd.DataFrame(rows, columns=["id", "start", "length", "source", "ensemble"])


def drawn(plan: MixturePlan, epochs: int) -> list[int]:
    return [ref.index for e in range(epochs) for batch in plan.epoch(e) for ref in batch]


def test_uniform_draws_follow_the_weights():
    windows = windows_of({"musicnet": [40] * 5, "small": [30] * 2, "big": [100] * 6})
    weights = {"musicnet": 1.0, "small": 1.0, "big": 2.0}
    plan = MixturePlan(windows, weights, "uniform", 8, seed=0)
    sources = windows["source"].to_numpy()[drawn(plan, 3)]
    for source, weight in weights.items():
        share = (sources == source).mean()
        p = weight / 4
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / len(sources)), (source, share)


@pytest.mark.parametrize("strategy", ["uniform", "samesequence", "samecategory", "sequential"])
def test_each_source_is_visited_whole_before_any_window_repeats(strategy):
    windows = windows_of({"musicnet": [12] * 4, "small": [10, 14], "big": [20] * 5})
    plan = MixturePlan(windows, {"musicnet": 1.0, "small": 3.0, "big": 1.0}, strategy, 4, seed=1)
    order = drawn(plan, 4)
    for source in ("musicnet", "small", "big"):
        members = set(np.flatnonzero(windows["source"].to_numpy() == source))
        if strategy == "sequential":
            members = {i for i in members if windows["start"].iat[i] % 100 == 0}
        seen = [i for i in order if i in members]
        assert len(seen) > len(members)  # the small source is drawn more than once through
        first, second = seen[: len(members)], seen[len(members) : 2 * len(members)]
        assert sorted(first) == sorted(members), source  # a whole pass, no repeat
        # and the next pass whole too, from its first unit (sequential streams interleave passes)
        if strategy != "sequential" and len(seen) >= 2 * len(members):
            assert sorted(second) == sorted(members), source


def test_an_epoch_is_the_same_whether_replayed_or_planned_in_turn():
    windows = windows_of({"musicnet": [30] * 3, "corpus": [25] * 4})
    weights = {"musicnet": 1.0, "corpus": 2.0}
    in_turn = MixturePlan(windows, weights, "samesequence", 4, seed=3)
    batches = [in_turn.epoch(e) for e in range(3)]
    assert MixturePlan(windows, weights, "samesequence", 4, seed=3).epoch(2) == batches[2]
    assert MixturePlan(windows, weights, "samesequence", 4, seed=4).epoch(2) != batches[2]


@pytest.mark.parametrize("strategy", ["uniform", "samesequence", "samecategory", "sequential"])
def test_window_shifts_replay_from_the_seed_and_change_with_the_epoch(strategy):
    """With jitter, each window's shift is seeded by (seed, epoch, window or track): a replayed
    epoch has the same shifts, another epoch other ones, and a track's stream shares one."""
    windows = windows_of({"musicnet": [20] * 3, "corpus": [20] * 3})
    weights = {"musicnet": 1.0, "corpus": 1.0}

    def shifts(epoch: int, seed: int = 3) -> list[int]:
        plan = MixturePlan(windows, weights, strategy, 4, seed=seed, jitter=40)
        return [ref.shift for batch in plan.epoch(epoch) for ref in batch]

    assert not any(
        ref.shift for batch in MixturePlan(windows, weights, strategy, 4, seed=3).epoch(1) for ref in batch
    )
    first = shifts(1)
    assert first == shifts(1) and any(first) and max(map(abs, first)) <= 40
    assert first != shifts(2) and first != shifts(1, seed=4)


def test_strategies_keep_their_meaning_over_the_mixture():
    windows = windows_of({"musicnet": [16] * 4, "corpus": [16] * 4})
    weights = {"musicnet": 1.0, "corpus": 1.0}
    ids, ensembles = windows["id"].to_numpy(), windows["ensemble"].to_numpy()
    for batch in MixturePlan(windows, weights, "samesequence", 4, seed=0).epoch(0):
        assert len({ids[r.index] for r in batch}) == 1
    spans = []
    for batch in MixturePlan(windows, weights, "samecategory", 4, seed=0).epoch(0):
        rows = [r.index for r in batch]
        spans.append(len({ids[i] for i in rows}))
        if windows["source"].iat[rows[0]] == "musicnet":
            assert len({ensembles[i] for i in rows}) == 1
        else:  # an unlabeled file has no category: its batches are its own
            assert len({ids[i] for i in rows}) == 1
    assert max(spans) > 1  # a category's batch draws from its several files, not from one
    for j, batch in enumerate(plan := MixturePlan(windows, weights, "sequential", 3, seed=0).epoch(0)):
        for ref in batch:
            if not ref.reset:  # the stream's previous window is this one's predecessor in its track
                before = next(r for r in plan[j - 1] if r.stream == ref.stream)
                assert ids[before.index] == ids[ref.index]
                assert windows["start"].iat[ref.index] - windows["start"].iat[before.index] == 100


def test_sources_without_weight_are_left_out_and_none_left_is_an_error():
    windows = windows_of({"musicnet": [10] * 2, "corpus": [10] * 2})
    plan = MixturePlan(windows, {"musicnet": 0.0, "corpus": 1.0}, "uniform", 4, seed=0)
    assert set(windows["source"].to_numpy()[drawn(plan, 2)]) == {"corpus"}
    with pytest.raises(ValueError, match="no source with a positive weight"):
        MixturePlan(windows, {"musicnet": 0.0, "other": 1.0}, "uniform", 4, seed=0)


@pytest.mark.parametrize("strategy", ["uniform", "samesequence", "samecategory"])
def test_an_epoch_holds_as_many_windows_as_the_sources(strategy):
    """One-window units (batches of one): an epoch draws exactly as many windows as there are."""
    windows = windows_of({"musicnet": [5, 4], "corpus": [3]})
    plan = MixturePlan(windows, {"musicnet": 1.0, "corpus": 1.0}, strategy, 1, seed=0)
    for epoch in range(3):
        assert sum(len(batch) for batch in plan.epoch(epoch)) == len(windows) == plan.total


def test_a_source_that_no_window_of_an_epoch_draws_is_no_error():
    windows = windows_of({"musicnet": [20] * 2, "rare": [20]})
    plan = MixturePlan(windows, {"musicnet": 1.0, "rare": 1e-9}, "uniform", 4, seed=0)
    assert set(windows["source"].to_numpy()[drawn(plan, 2)]) == {"musicnet"}


def test_sequential_streams_walk_tracks_of_a_single_window():
    windows = windows_of({"musicnet": [1, 1, 3], "corpus": [1]})
    plan = MixturePlan(windows, {"musicnet": 1.0, "corpus": 1.0}, "sequential", 2, seed=0)
    starts = set(np.flatnonzero(windows["start"].to_numpy() % 100 == 0))
    assert set(drawn(plan, 3)) == starts
