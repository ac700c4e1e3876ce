"""The study's statistics with power (#25): cells written by hand, gathered by `collect`.

The shared tiny corpus has one test work, so its bootstrap resamples a single unit and cannot
tell a paired comparison from an unpaired one. Here a task has 12 test works of very unequal
difficulty and 30 windows each, and every method is right on the same easy windows, better
methods on a few more: the per-work accuracies vary far more between works than between
methods. So the paired difference is precise while each method's own interval is wide, and a
comparison that drew each method's resamples independently would call the difference a tie.
Validation prefers other methods than the test split does, and the budgets differ.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from jtm.config import DownstreamConfig, load_params, section
from jtm.downstream import bootstrap
from jtm.downstream.collect import collect
from tests.conftest import REPO

pytestmark = pytest.mark.check  # the contributor tier: make check

WORKS, WINDOWS, SEEDS = 12, 30, (0, 1, 2)
# method: (skill on the test split, validation score); validation and test disagree on purpose
METHODS = {
    "cpc-linear": (0.10, 0.50),
    "cpc-mlp": (0.06, 0.60),  # the best CPC method by validation, not by test
    "random-linear": (0.00, 0.45),  # the best control by validation
    "random-mlp": (0.08, 0.40),
    "logmel-linear": (0.06, 0.55),
    "logmel-mlp": (0.02, 0.30),
}
BUDGETS = {"1-per-class": -0.15, "all": 0.0}  # a budget's shift of every method's skill


def _config(**changes) -> DownstreamConfig:
    params = load_params(REPO / "params.yaml")
    params["downstream"] |= {
        "tasks": ["ensemble"],
        "features": ["cpc", "random", "logmel"],
        "probes": ["linear", "mlp"],
        "end_to_end_tasks": [],
        "budgets": [1, "all"],
        "seeds": list(SEEDS),
        "bootstrap_resamples": 2000,
        "bootstrap_seed": 0,
    } | changes
    return section(params, "downstream", DownstreamConfig)


def _correct(skill: float, seed: int) -> np.ndarray:
    """(works, windows) bool: window w of work u is right when its shared difficulty is below
    the work's easiness plus the method's skill (a seed moves it by a hair)."""
    easiness = np.linspace(0.1, 0.85, WORKS)[:, None]
    difficulty = np.random.default_rng(7).random((WORKS, WINDOWS))  # the same windows for all
    return difficulty < easiness + skill + 0.004 * (seed - 1)


def write_cells(cells, parts: dict | None = None) -> dict[tuple[str, str], np.ndarray]:
    """The ensemble task's probe cells (one pretraining run's, run 0, and the fixed features');
    returns each (method, budget)'s per-work accuracy (mean over seeds). `parts`: test part ->
    {method: skill it loses there} (default: one part, "all", losing nothing)."""
    per_work = {}
    for folder, feature in (
        (cells / "run0" / "probes" / "ensemble", ("cpc", "random")),
        (cells / "fixed" / "probes" / "ensemble", ("logmel",)),
    ):
        chosen = {m: v for m, v in METHODS.items() if m.startswith(feature)}
        per_work |= _write_cell(folder, chosen, parts or {"all": {}})
    return per_work


def _write_cell(folder, methods: dict, parts: dict) -> dict[tuple[str, str], np.ndarray]:
    folder.mkdir(parents=True)
    units = np.array([f"{part}|work{u:02d}" for part in parts for u in range(WORKS)])
    rows, stats, per_work = [], {}, {}
    for method, (skill, val_score) in methods.items():
        for budget, shift in BUDGETS.items():
            accuracies = []
            for seed in SEEDS:
                unit_stats = []
                for position, (part, loses) in enumerate(parts.items()):
                    correct = _correct(skill + shift - loses.get(method, 0.0), seed)
                    truth = np.zeros(correct.size, dtype=int)
                    probs = np.stack([correct.ravel(), ~correct.ravel()], axis=1).astype(float)
                    windows_unit = np.repeat(np.arange(WORKS), WINDOWS) + position * WORKS
                    unit_stats.append(bootstrap.accuracy_stats(truth, probs, windows_unit, len(units)))
                    accuracies.append(correct.mean(1))
                    rows.append(_row(method, budget, seed, val_score + shift, float(correct.mean()), part))
                stats[f"{method}|{budget}|{seed}"] = np.sum(unit_stats, axis=0)
            per_work[(method, budget)] = np.mean(accuracies, axis=0)
    pd.DataFrame(rows).to_parquet(folder / "scores.parquet", index=False)
    np.savez(folder / "stats.npz", units=units, **stats)
    return per_work


def _row(method: str, budget: str, seed: int, val_score: float, value: float, part: str) -> dict:
    feature, head = method.split("-")
    return {
        "task": "ensemble",
        "method": method,
        "feature": feature,
        "head": head,
        "budget": budget,
        "seed": seed,
        "train_tracks": 4 if budget == "1-per-class" else 40,
        "train_windows": 400 if budget == "1-per-class" else 4000,
        "train_frames": 0,
        "train_classes": 4,
        "train_strata": 4,
        "test_tracks": WORKS,
        "test_windows": WORKS * WINDOWS,
        "l2": 1e-3,
        "val_score": val_score,
        "binning_error": 0.0,
        "part": part,
        "metric": "accuracy",
        "value": value,
    }


@pytest.fixture
def study(tmp_path):
    """Built for each test (a second), so a mutation tester sees which test runs which code."""
    root = tmp_path
    per_work = write_cells(root / "cells")
    collect(root / "cells", root / "downstream", root / "metrics", _config(), runs=(0,))
    return root, per_work


def _comparison(root, rival: str, budget: str = "all") -> pd.Series:
    table = pd.read_parquet(root / "downstream" / "comparisons.parquet")
    return table[(table["rival"] == rival) & (table["budget"] == budget)].iloc[0]


def test_the_best_of_each_family_is_chosen_on_validation_not_test(study):
    root, _ = study
    control = _comparison(root, "random")
    assert (control["a"], control["b"]) == ("cpc-mlp", "random-linear")
    assert _comparison(root, "logmel")["b"] == "logmel-linear"


def test_a_small_consistent_gain_is_a_win_because_the_comparison_is_paired(study):
    root, per_work = study
    control = _comparison(root, "random")
    diff = per_work[("cpc-mlp", "all")] - per_work[("random-linear", "all")]
    assert control["diff"] == pytest.approx(diff.mean(), abs=1e-9)  # equal works: pooled = mean
    assert control["lo"] > 0.02  # unpaired draws give lo = -0.10 here: a tie
    # the percentile bootstrap of the per-work differences (scipy), within resampling noise
    theirs = scipy_stats.bootstrap(
        (diff,), np.mean, n_resamples=4000, method="percentile", random_state=0
    ).confidence_interval
    assert (control["lo"], control["hi"]) == pytest.approx((theirs.low, theirs.high), abs=0.015)


def test_each_methods_own_interval_is_wide_and_covers_its_mean(study):
    root, per_work = study
    table = pd.read_parquet(root / "downstream" / "intervals.parquet").set_index(["method", "budget"])
    for (method, budget), accuracy in per_work.items():
        row = table.loc[(method, budget)]
        assert row["lo"] < accuracy.mean() < row["hi"]
        assert row["hi"] - row["lo"] > 0.2  # works differ a lot: one method alone is uncertain


def test_the_budgets_differ_and_each_has_its_own_verdicts(study):
    root, _ = study
    table = pd.read_parquet(root / "downstream" / "intervals.parquet")
    means = table.pivot(index="method", columns="budget", values="mean")
    assert (means["1-per-class"] < means["all"] - 0.1).all()
    comparisons = pd.read_parquet(root / "downstream" / "comparisons.parquet")
    assert set(comparisons["budget"]) == set(BUDGETS)
    saved = json.loads((root / "metrics" / "ensemble" / "all" / "comparisons" / "all.json").read_text())
    assert saved["cpc-mlp - random-linear"]["lo"] == pytest.approx(_comparison(root, "random")["lo"])


def test_what_unseen_conditions_cost_is_paired_across_the_two_parts(tmp_path):
    """The control loses a little skill on every work under unseen conditions, CPC none: the
    change of their difference is a win for CPC because seen and unseen draw the same works."""
    write_cells(tmp_path / "cells", {"seen": {}, "unseen": {"random-linear": 0.05}})
    collect(tmp_path / "cells", tmp_path / "downstream", tmp_path / "metrics", _config(), runs=(0,))
    transfer = pd.read_parquet(tmp_path / "downstream" / "transfer.parquet")
    intervals = pd.read_parquet(tmp_path / "downstream" / "intervals.parquet")
    means = intervals.set_index(["part", "method", "budget"])["mean"]
    for g in transfer[transfer["kind"] == "method"].itertuples():
        assert g.gap == pytest.approx(means[("unseen", g.a, g.budget)] - means[("seen", g.a, g.budget)])
        assert g.lo <= g.gap <= g.hi
    control = transfer[(transfer["kind"] == "method") & (transfer["a"] == "random-linear")]
    assert (
        control["hi"] < 0
    ).all()  # each work a little worse: a paired drop, though each part's own interval is wide
    untouched = transfer[(transfer["kind"] == "method") & (transfer["a"] == "cpc-mlp")]
    assert (untouched["gap"] == 0).all() and (untouched["lo"] == 0).all()
    pair = transfer[
        (transfer["kind"] == "comparison") & (transfer["rival"] == "random") & (transfer["budget"] == "all")
    ]
    assert pair["lo"].iloc[0] > 0.01  # CPC carries over better, paired on works, runs and seeds
    saved = json.loads((tmp_path / "metrics" / "ensemble" / "transfer" / "all.json").read_text())
    assert saved["cpc-mlp - random-linear"]["gap"] == pytest.approx(pair["gap"].iloc[0])
