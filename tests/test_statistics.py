"""The track bootstrap and the paired comparisons, on hand-made predictions with known answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score

from jtm.downstream import bootstrap, compare

pytestmark = pytest.mark.check  # the contributor tier: make check


def _accuracy_stats(correct_per_unit: list[np.ndarray]) -> np.ndarray:
    """(units, 2) from per-unit arrays of 0/1 correctness."""
    units = np.concatenate([np.full(len(c), u) for u, c in enumerate(correct_per_unit)])
    correct = np.concatenate(correct_per_unit).astype(int)
    probs = np.stack([1 - correct, correct], axis=1).astype(float)  # predicts class 1 when correct
    return bootstrap.accuracy_stats(np.ones(len(correct), dtype=int), probs, units, len(correct_per_unit))


def _one_seed(values: np.ndarray) -> np.ndarray:
    return values[None]


def test_one_more_right_window_per_track_is_a_paired_difference_of_exactly_that():
    """b is a with one more window right on each 20-window track: on every resample that draws
    the same tracks for both, b - a is exactly 1/20; drawn apart, it would scatter widely."""
    rng = np.random.default_rng(0)
    tracks = [rng.random(20) < p for p in rng.uniform(0.1, 0.8, 15)]
    better = [t.copy() for t in tracks]
    for track in better:
        track[np.flatnonzero(~track)[0]] = True  # its first wrong window, now right
    draws = bootstrap.unit_draws(15, 1000, seed=0)
    seeds = bootstrap.seed_draws(1, 1000, 0, 0)
    a = bootstrap.resampled("accuracy", _one_seed(_accuracy_stats(tracks)), draws, seeds)
    b = bootstrap.resampled("accuracy", _one_seed(_accuracy_stats(better)), draws, seeds)
    np.testing.assert_allclose(b - a, 1 / 20, atol=1e-12)
    low, high = bootstrap.interval(a)
    assert high - low > 0.1  # the tracks differ: each method alone is uncertain
    assert low < bootstrap.accuracy_from_stats(_accuracy_stats(tracks).sum(0)) < high


def test_right_on_every_track_beats_wrong_on_every_track():
    right = _accuracy_stats([np.ones(10, bool)] * 12)
    wrong = _accuracy_stats([np.zeros(10, bool)] * 12)
    draws = bootstrap.unit_draws(12, 500, seed=1)
    seeds = bootstrap.seed_draws(1, 500, 1, 0)
    diff = bootstrap.resampled("accuracy", _one_seed(right), draws, seeds) - bootstrap.resampled(
        "accuracy", _one_seed(wrong), draws, seeds
    )
    assert bootstrap.interval(diff) == (1.0, 1.0)
    table = pd.DataFrame(
        [
            {"method": "cpc-linear", "budget": "all", "mean": 1.0, "val_score": 0.9},
            {"method": "random-linear", "budget": "all", "mean": 0.0, "val_score": 0.1},
        ]
    )
    resampled = {("cpc-linear", "all"): diff, ("random-linear", "all"): np.zeros_like(diff)}
    paired = compare.paired_comparisons(table, resampled)
    assert paired.loc[0, "lo"] > 0 and compare.verdict(
        "cpc-linear", "random-linear", 1.0, 1.0, 1.0
    ).startswith("cpc-linear beats random-linear by +1.000")
    assert "cannot be told apart" in compare.verdict("a", "b", 0.01, -0.02, 0.04)
    assert compare.verdict("a", "b", -0.1, -0.2, -0.05).startswith("b beats a by +0.100")


def test_resampling_is_by_track_not_by_window():
    # One track holds most windows (all right); nine small tracks are all wrong. Per window the
    # accuracy looks certain (0.92); per track it depends on whether the big track is drawn.
    big, small = np.ones(1000, bool), np.zeros(10, bool)
    by_track = _accuracy_stats([big] + [small] * 9)
    by_window = _accuracy_stats([np.ones(1, bool)] * 1000 + [np.zeros(1, bool)] * 90)
    tracks = bootstrap.resampled(
        "accuracy",
        _one_seed(by_track),
        bootstrap.unit_draws(10, 2000, 0),
        bootstrap.seed_draws(1, 2000, 0, 0),
    )
    windows = bootstrap.resampled(
        "accuracy",
        _one_seed(by_window),
        bootstrap.unit_draws(1090, 2000, 0),
        bootstrap.seed_draws(1, 2000, 0, 0),
    )
    track_low, track_high = bootstrap.interval(tracks)
    window_low, window_high = bootstrap.interval(windows)
    assert track_low == 0  # some resamples miss the big track entirely
    assert (track_high - track_low) > 10 * (window_high - window_low)


def test_interval_matches_scipys_percentile_bootstrap_for_equal_tracks():
    rng = np.random.default_rng(3)
    per_track = [rng.random(20) < p for p in rng.uniform(0.2, 0.9, 25)]  # equal sizes: pooled = mean
    ours = bootstrap.interval(
        bootstrap.resampled(
            "accuracy",
            _one_seed(_accuracy_stats(per_track)),
            bootstrap.unit_draws(25, 4000, 0),
            bootstrap.seed_draws(1, 4000, 0, 0),
        )
    )
    means = np.array([t.mean() for t in per_track])
    theirs = stats.bootstrap(
        (means,), np.mean, n_resamples=4000, method="percentile", random_state=0
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.01)


def test_binned_micro_ap_matches_scikit_learn():
    rng = np.random.default_rng(4)
    truth = rng.random((300, 64, 40)) < 0.04  # windows x frames x pitches, sparse like transcription
    probs = np.clip(0.01 + 0.6 * truth * rng.random(truth.shape) + 0.3 * rng.random(truth.shape) ** 6, 0, 1)
    units = np.repeat(np.arange(10), 30)
    edges = bootstrap.ap_edges(truth, probs)
    unit_stats = bootstrap.ap_stats(truth, probs, units, 10, edges)
    exact = average_precision_score(truth.ravel(), probs.ravel())
    assert bootstrap.ap_from_stats(unit_stats.sum(0)) == pytest.approx(exact, abs=1e-3)
    # one unit's statistics alone give that unit's AP (the sums are exact per unit)
    first = units == 0
    assert bootstrap.ap_from_stats(unit_stats[0]) == pytest.approx(
        average_precision_score(truth[first].ravel(), probs[first].ravel()), abs=2e-3
    )


def test_seeds_are_resampled_too():
    wrong, right = _accuracy_stats([np.zeros(5, bool)] * 8), _accuracy_stats([np.ones(5, bool)] * 8)
    draws = bootstrap.unit_draws(8, 2000, 0)
    two = bootstrap.resampled(
        "accuracy", np.stack([wrong, right]), draws, bootstrap.seed_draws(2, 2000, 0, 0)
    )
    assert set(np.unique(two)) == {0.0, 0.5, 1.0}  # both seeds, one of them twice, or each once
    same = bootstrap.resampled(
        "accuracy", np.stack([right, right]), draws, bootstrap.seed_draws(2, 2000, 0, 0)
    )
    assert (same == 1).all()


def test_the_best_method_of_a_family_is_chosen_on_validation_not_test():
    table = pd.DataFrame(
        [
            {"method": "cpc-linear", "budget": "all", "mean": 0.9, "val_score": 0.5},
            {"method": "cpc-mlp", "budget": "all", "mean": 0.4, "val_score": 0.6},
        ]
    )
    assert compare.best_of(table, "cpc", "all") == "cpc-mlp"
    assert compare.best_of(table, "logmel", "all") is None
    no_cpc = table.assign(method=["random-linear", "random-mlp"])
    empty = compare.paired_comparisons(no_cpc, {})
    assert empty.empty and list(empty.columns) == ["budget", "a", "rival", "b", "diff", "lo", "hi"]


def test_verdicts_say_the_winner_and_the_interval_of_its_lead():
    assert compare.verdict("a", "b", 0.05, 0.01, 0.09) == "a beats b by +0.050 [+0.010, +0.090]"
    assert compare.verdict("a", "b", -0.05, -0.09, -0.01) == "b beats a by +0.050 [+0.010, +0.090]"
    assert compare.verdict("a", "b", 0.01, -0.02, 0.04) == (
        "a and b cannot be told apart on this test split (difference +0.010 [-0.020, +0.040])"
    )
    assert "cannot be told apart" in compare.verdict("a", "b", 0.0, 0.0, 0.02)  # an end at 0: a tie
    assert "cannot be told apart" in compare.verdict("a", "b", -0.01, -0.02, 0.0)


def test_ties_on_validation_go_to_the_familys_first_method():
    table = pd.DataFrame(
        [
            {"method": "cpc-mlp", "budget": "all", "mean": 0.9, "val_score": 0.5},
            {"method": "cpc-linear", "budget": "all", "mean": 0.4, "val_score": 0.5},
        ]
    )
    assert compare.best_of(table, "cpc", "all") == "cpc-linear"


def test_a_budget_or_rival_missing_leaves_the_others_compared():
    """No CPC method at the first budget, no log-mel at all: the second budget's comparisons
    with the other rivals are still made, each on its own paired resamples."""
    rows = [("random-linear", "1-per-class", 0.3), ("cpc-linear", "all", 0.8), ("random-linear", "all", 0.5)]
    rows += [("supervised", "all", 0.6)]
    table = pd.DataFrame([{"method": m, "budget": b, "mean": v, "val_score": v} for m, b, v in rows])
    resampled = {(m, b): np.full(100, v) + np.linspace(-0.01, 0.01, 100) for m, b, v in rows}
    paired = compare.paired_comparisons(table, resampled)
    assert list(zip(paired["budget"], paired["rival"], paired["b"], strict=True)) == [
        ("all", "random", "random-linear"),
        ("all", "supervised", "supervised"),
    ]
    assert paired["diff"].tolist() == pytest.approx([0.3, 0.2])
    assert paired["lo"].tolist() == pytest.approx([0.3, 0.2]) and paired["hi"].tolist() == pytest.approx(
        [0.3, 0.2]
    )


def test_micro_ap_from_binned_counts_in_small_exact_cases_and_in_batches():
    """Counts per score bin, lowest bin first (positives, then negatives), against AP by hand."""
    only_positive = np.array([0, 0, 0, 1, 0, 0, 0, 0], float)  # one positive, the top score
    below_a_negative = np.array([0, 0, 1, 0, 0, 0, 0, 1], float)  # a negative scores above it
    empty_top = np.array([0, 0, 1, 0, 0, 0, 0, 0], float)  # nothing in the top bin
    two_and_two = np.array([1, 0, 1, 0, 0, 1, 0, 1], float)
    expected = [1.0, 0.5, 1.0, (1 / 2 * 1 / 2) + (1 / 2 * 2 / 4)]
    for counts, ap in zip((only_positive, below_a_negative, empty_top, two_and_two), expected, strict=True):
        assert bootstrap.ap_from_stats(counts) == pytest.approx(ap)
    batch = np.stack([only_positive, below_a_negative, empty_top, two_and_two])
    np.testing.assert_allclose(bootstrap.ap_from_stats(batch), expected)  # one value per row
    truth = np.array([1, 0, 1, 0])
    scores = np.array([0.2, 0.4, 0.6, 0.8])  # the two_and_two case as scikit-learn sees it
    assert average_precision_score(truth, scores) == pytest.approx(expected[-1])


def test_resampled_micro_ap_is_the_ap_of_each_resamples_drawn_units():
    rng = np.random.default_rng(5)
    truth = rng.random((60, 8, 6)) < 0.2
    probs = np.clip(0.5 * truth + 0.6 * rng.random(truth.shape), 0, 1)
    units = np.repeat(np.arange(6), 10)
    unit_stats = bootstrap.ap_stats(truth, probs, units, 6, bootstrap.ap_edges(truth, probs))
    draws = bootstrap.unit_draws(6, 50, seed=2)
    got = bootstrap.resampled("ap", unit_stats[None], draws, bootstrap.seed_draws(1, 50, 2, 0))
    np.testing.assert_allclose(got, [bootstrap.ap_from_stats(d @ unit_stats) for d in draws])


def test_statistics_keep_every_unit_and_bin_even_when_empty():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    stats = bootstrap.accuracy_stats(np.array([0, 1, 1]), probs, np.array([0, 0, 1]), n_units=3)
    np.testing.assert_array_equal(stats, [[2, 2], [0, 1], [0, 0]])  # unit 2 holds no window
    assert bootstrap.accuracy_from_stats(stats[1:2].sum(0)) == 0.0
    assert bootstrap.accuracy_from_stats(np.array([1.0, 1.0])) == 1.0  # one window, right
    edges = bootstrap.ap_edges(np.array([[1, 0, 0]]), np.array([[0.9, 0.1, 0.1]]), bins=8)
    assert len(edges) == 7 and np.all(np.diff(edges) >= 0)  # few distinct scores: padded, sorted
    ap = bootstrap.ap_stats(np.array([[1, 0, 0]]), np.array([[0.9, 0.1, 0.1]]), np.array([0]), 2, edges)
    assert ap.shape == (2, 16) and ap[1].sum() == 0 and ap[0].sum() == 3  # unit 1: no cell at all


def test_draws_are_reproducible_from_their_seed():
    for draw in (lambda s: bootstrap.unit_draws(7, 20, s), lambda s: bootstrap.seed_draws(3, 20, s, 5)):
        np.testing.assert_array_equal(draw(4), draw(4))
        assert not np.array_equal(draw(4), draw(5))
    assert set(np.unique(bootstrap.seed_draws(3, 200, 0, 0))) == {0, 1, 2}
    assert (bootstrap.unit_draws(7, 20, 0).sum(1) == 7).all()


# Pretraining runs: hand-made (run, seed) models on 12 works of 30 windows each.
WORKS, WINDOWS, RESAMPLES = 12, 30, 2000


def _model(accuracy: float, rng, windows: int = WINDOWS) -> np.ndarray:
    """(works, 2): a model right on `accuracy` of each work's windows, +- a work's own ease."""
    ease = rng.uniform(-0.1, 0.1, WORKS)
    return _accuracy_stats([rng.random(windows) < np.clip(accuracy + e, 0, 1) for e in ease])


def _runs(accuracies: list[float], seeds: int = 3, seed: int = 0, windows=None) -> np.ndarray:
    """(runs, seeds, works, 2): each run's seeds at that run's accuracy."""
    rng = np.random.default_rng(seed)
    windows = windows or [WINDOWS] * len(accuracies)
    return np.stack(
        [
            np.stack([_model(a, rng, w) for _ in range(seeds)])
            for a, w in zip(accuracies, windows, strict=True)
        ]
    )


def _hierarchical(stats: np.ndarray, draws: np.ndarray, salt: int) -> np.ndarray:
    runs, seeds = stats.shape[:2]
    return bootstrap.resampled_runs(
        "accuracy", stats, draws, bootstrap.run_draws(runs, RESAMPLES, 0, salt),
        bootstrap.nested_seed_draws(runs, seeds, RESAMPLES, 0, salt),
    )  # fmt: skip


def test_a_method_better_in_every_pretraining_run_wins_with_runs_in_the_interval():
    cpc, control = _runs([0.75, 0.78, 0.72], seed=1), _runs([0.58, 0.61, 0.57], seed=2)
    draws = bootstrap.unit_draws(WORKS, RESAMPLES, 0)  # the same works for both: paired
    diff = _hierarchical(cpc, draws, salt=1) - _hierarchical(control, draws, salt=2)
    low, high = bootstrap.interval(diff)
    assert 0.05 < low < 0.16 < high < 0.3


def test_a_win_in_one_run_of_three_is_no_verdict_and_wider_than_one_runs_data():
    """CPC beats the control in run 0 by far and loses in runs 1 and 2: the interval covers 0.
    The same nine models treated as the seeds of one run (runs ignored) give a narrower one."""
    cpc, control = _runs([0.85, 0.55, 0.56], seed=3), _runs([0.62, 0.63, 0.61], seed=4)
    draws = bootstrap.unit_draws(WORKS, RESAMPLES, 0)
    diff = _hierarchical(cpc, draws, salt=1) - _hierarchical(control, draws, salt=2)
    low, high = bootstrap.interval(diff)
    assert low < 0 < high
    flat = _hierarchical(cpc.reshape(1, 9, WORKS, 2), draws, 1) - _hierarchical(
        control.reshape(1, 9, WORKS, 2), draws, 2
    )
    flat_low, flat_high = bootstrap.interval(flat)
    assert high - low > 1.4 * (flat_high - flat_low)  # here 0.32 against 0.19


def test_runs_works_and_seeds_are_each_resampled_whole_and_every_run_weighs_the_same():
    """Run 0 has ten times the windows at accuracy 0.9, runs 1 and 2 0.5: with every run, seed
    and work drawn once the value is the runs' mean (0.633), not the pooled windows' (0.83);
    a resample drawing run 0 three times is run 0's value; one run is the seeds x units bootstrap."""
    stats = _runs([0.9, 0.5, 0.5], seeds=2, windows=[300, 30, 30])
    per_run = [bootstrap.accuracy_from_stats(r.sum(1)).mean() for r in stats]  # each seed's, averaged
    once = np.ones((1, WORKS))
    identity = np.array([[[0, 1]] * 3])
    value = bootstrap.resampled_runs("accuracy", stats, once, np.array([[0, 1, 2]]), identity)
    np.testing.assert_allclose(value, np.mean(per_run))
    assert value[0] < 0.7 < bootstrap.accuracy_from_stats(stats.sum((0, 1, 2)) / 2)
    only_first = bootstrap.resampled_runs("accuracy", stats, once, np.array([[0, 0, 0]]), identity)
    np.testing.assert_allclose(only_first, per_run[0])
    draws = bootstrap.unit_draws(WORKS, RESAMPLES, 0)
    single = _hierarchical(stats[:1], draws, salt=5)
    np.testing.assert_array_equal(
        single, bootstrap.resampled("accuracy", stats[0], draws, bootstrap.seed_draws(2, RESAMPLES, 0, 5))
    )


def _study(methods: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(values, stats) as the downstream stage gathers them, from (runs, seeds, works, 2) stats
    per method (a fixed method: one run, numbered -1)."""
    rows, stats = [], {}
    for method, models in methods.items():
        runs = [-1] if method.startswith("logmel") else range(len(models))
        for run, per_seed in zip(runs, models, strict=True):
            for seed, unit_stats in enumerate(per_seed):
                value = float(bootstrap.accuracy_from_stats(unit_stats.sum(0)))
                rows.append({"method": method, "budget": "all", "run": run, "seed": seed, "value": value})
                rows[-1]["val_score"] = value
                stats[f"{method}|all|{run}|{seed}"] = unit_stats
    return pd.DataFrame(rows), stats


def test_the_studys_comparisons_carry_the_runs_spread_and_are_paired_on_units():
    """Through the downstream stage's own functions: CPC winning in one run of three gets no
    verdict against the control, and its interval is wider than its one-run case; every per-run
    difference is listed; a fixed method (log-mel) has one run and is compared with each."""
    cpc, control = _runs([0.85, 0.55, 0.56], seed=3), _runs([0.62, 0.63, 0.61], seed=4)
    logmel = _runs([0.6], seed=5)
    values, stats = _study({"cpc-linear": cpc, "random-linear": control, "logmel-linear": logmel})
    draws = bootstrap.unit_draws(WORKS, RESAMPLES, 0)
    table, resampled = compare.method_intervals("accuracy", values, stats, draws, seed=0)
    assert table.set_index("method")["runs"].to_dict() == {
        "cpc-linear": 3,
        "random-linear": 3,
        "logmel-linear": 1,
    }
    paired = compare.paired_comparisons(table, resampled).set_index("rival")
    assert paired.at["random", "lo"] < 0 < paired.at["random", "hi"]
    one_run = values[values["run"].isin([0, -1])]
    table1, resampled1 = compare.method_intervals("accuracy", one_run, stats, draws, seed=0)
    paired1 = compare.paired_comparisons(table1, resampled1).set_index("rival")
    assert paired1.at["random", "lo"] > 0  # run 0 alone: a clear (and misleading) win
    width = (paired["hi"] - paired["lo"])["random"]
    assert width > 2 * (paired1["hi"] - paired1["lo"])["random"]
    by_run = compare.per_run(values, compare.paired_comparisons(table, resampled)).set_index(["rival", "run"])
    means = values.groupby(["method", "run"])["value"].mean()
    for run in range(3):
        want = means[("cpc-linear", run)] - means[("random-linear", run)]
        assert by_run.at[("random", run), "diff"] == pytest.approx(want)
        assert by_run.at[("logmel", run), "diff"] == pytest.approx(
            means[("cpc-linear", run)] - means[("logmel-linear", -1)]
        )
    assert by_run.loc["random"]["diff"].gt(0).tolist() == [True, False, False]
    assert by_run["budget"].eq("all").all() and by_run["a"].eq("cpc-linear").all()
    assert by_run["b"].tolist() == ["random-linear"] * 3 + ["logmel-linear"] * 3


def test_a_run_its_rival_lacks_has_no_per_run_difference():
    """A rival trained in runs 0 and 1 only: run 2's difference is missing, not run 0's reused."""
    values, stats = _study(
        {"cpc-linear": _runs([0.7, 0.6, 0.65], seed=7), "random-linear": _runs([0.5, 0.55], seed=8)}
    )
    table, resampled = compare.method_intervals(
        "accuracy", values, stats, bootstrap.unit_draws(WORKS, 50, 0), 0
    )
    by_run = compare.per_run(values, compare.paired_comparisons(table, resampled)).set_index("run")
    assert by_run["diff"].notna().tolist() == [True, True, False]


def test_no_comparison_gives_an_empty_per_run_table_with_its_columns():
    """A task without a CPC method has no comparison: runs.parquet still gets its columns."""
    values, _ = _study({"random-linear": _runs([0.5], seed=9)})
    empty = compare.per_run(values, compare.paired_comparisons(pd.DataFrame(columns=["budget"]), {}))
    assert empty.empty and list(empty.columns) == ["budget", "run", "a", "rival", "b", "diff"]


@pytest.mark.parametrize(
    ("lo", "hi", "kind"), [(0.01, 0.2, "wins"), (-0.2, -0.01, "loses"), (-0.1, 0.1, "ties")]
)
def test_a_verdict_is_a_win_or_a_loss_only_when_the_interval_leaves_out_zero(lo, hi, kind):
    assert compare.outcome(lo, hi) == kind
    assert ("cannot be told apart" in compare.verdict("a", "b", (lo + hi) / 2, lo, hi)) == (kind == "ties")


def test_one_run_gives_exactly_the_seeds_by_units_bootstrap():
    """With a single run the study's intervals are the two-level bootstrap's, draw for draw."""
    cpc = _runs([0.7], seed=6)
    values, stats = _study({"cpc-linear": cpc})
    draws = bootstrap.unit_draws(WORKS, RESAMPLES, 0)
    _, resampled = compare.method_intervals("accuracy", values, stats, draws, seed=7)
    salt = __import__("zlib").crc32(b"cpc-linear|all")
    want = bootstrap.resampled("accuracy", cpc[0], draws, bootstrap.seed_draws(3, RESAMPLES, 7, salt))
    np.testing.assert_array_equal(resampled[("cpc-linear", "all")], want)


def test_every_draw_is_a_function_of_its_seed_and_salt_with_its_documented_shape():
    """Unseeded or mis-stacked draws would give other intervals on every call."""
    make = {
        "units": lambda seed, salt: bootstrap.unit_draws(12, 40, seed),
        "seeds": lambda seed, salt: bootstrap.seed_draws(3, 40, seed, salt),
        "runs": lambda seed, salt: bootstrap.run_draws(3, 40, seed, salt),
        "nested": lambda seed, salt: bootstrap.nested_seed_draws(2, 3, 40, seed, salt),
    }
    for name, draw in make.items():
        np.testing.assert_array_equal(draw(0, 5), draw(0, 5), err_msg=name)
        assert not np.array_equal(draw(0, 5), draw(1, 5)), name
    nested = bootstrap.nested_seed_draws(2, 3, 40, 0, 5)
    assert nested.shape == (40, 2, 3)
    for run in range(2):  # run j's seed draws are the model's stream salted with j
        np.testing.assert_array_equal(nested[:, run], bootstrap.seed_draws(3, 40, 0, 5 + run))
