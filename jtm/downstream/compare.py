"""Intervals on every (task, method, budget) and the paired comparisons the report's verdicts use.

Each method's headline metric gets a 95 % interval from the bootstrap over test units,
pretraining runs and probe seeds (jtm/downstream/bootstrap.py). Per task and budget, the best
CPC method (`cpc-*` probes and `finetune`), chosen by its validation score, not its test score,
is compared with the best random-init control, the best log-mel (or log-CQT) probe and the supervised
baseline, each chosen the same way: the mean difference of the test metric and its 95 %
interval, both methods scored on the same resamples (of units, runs and seeds).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from jtm.downstream import bootstrap

# Families of methods a comparison picks its representative from (by validation score).
FAMILIES = {
    "cpc": ("cpc-linear", "cpc-mlp", "finetune"),
    "random": ("random-linear", "random-mlp"),
    "logmel": ("logmel-linear", "logmel-mlp"),
    "cqt": ("cqt-linear", "cqt-mlp"),
    "supervised": ("supervised",),
}
RIVALS = ("random", "logmel", "cqt", "supervised")  # what the best CPC method is compared with


def method_intervals(
    kind: str, values: pd.DataFrame, stats: dict[str, np.ndarray], draws: np.ndarray, seed: int
) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """(table, resampled) for one task.

    `values`: one row per model (method, budget, run, seed, value = the test headline,
    val_score); `stats`: `"<method>|<budget>|<run>|<seed>"` -> (units, k); `draws`: (resamples,
    units). Each method is resampled over runs, seeds within runs and units together
    (`bootstrap.resampled_runs`); every method with as many runs draws the same runs, so the
    comparisons are paired on runs as on units. Table rows: method, budget, mean (over models),
    lo, hi, val_score (mean over models), seeds (per run), runs.
    """
    rows, resampled = [], {}
    for (method, budget), models in values.groupby(["method", "budget"], sort=False):
        runs = sorted(models["run"].unique())
        seeds = sorted(models["seed"].unique())
        stacked = np.stack(
            [np.stack([stats[f"{method}|{budget}|{r}|{s}"] for s in seeds]) for r in runs]
        )  # (runs, seeds, units, k)
        salt = zlib.crc32(f"{method}|{budget}".encode())
        run_draws = bootstrap.run_draws(len(runs), len(draws), seed, 0)
        seed_draws = bootstrap.nested_seed_draws(len(runs), len(seeds), len(draws), seed, salt)
        resampled[(method, budget)] = bootstrap.resampled_runs(kind, stacked, draws, run_draws, seed_draws)
        low, high = bootstrap.interval(resampled[(method, budget)])
        rows.append(
            {
                "method": method,
                "budget": budget,
                "mean": float(models["value"].mean()),
                "lo": low,
                "hi": high,
                "val_score": float(models["val_score"].mean()),
                "seeds": len(seeds),
                "runs": len(runs),
            }
        )
    return pd.DataFrame(rows), resampled


def best_of(table: pd.DataFrame, family: str, budget: str) -> str | None:
    """The family's method with the best mean validation score at `budget` (None if absent)."""
    rows = table[(table["budget"] == budget) & table["method"].isin(FAMILIES[family])]
    if rows.empty:
        return None
    order = {m: i for i, m in enumerate(FAMILIES[family])}  # ties: the family's first method
    rows = rows.assign(order=rows["method"].map(order)).sort_values(
        ["val_score", "order"], ascending=[False, True]
    )
    return str(rows["method"].iloc[0])


def paired_comparisons(table: pd.DataFrame, resampled: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Rows: budget, a (best CPC method), rival family, b, diff (a - b, test means), lo, hi."""
    rows = []
    for budget in table["budget"].unique():
        a = best_of(table, "cpc", budget)
        if a is None:
            continue
        for rival in RIVALS:
            b = best_of(table, rival, budget)
            if b is None:
                continue
            means = table[table["budget"] == budget].set_index("method")["mean"]
            low, high = bootstrap.interval(resampled[(a, budget)] - resampled[(b, budget)])
            rows.append(
                {
                    "budget": budget,
                    "a": a,
                    "rival": rival,
                    "b": b,
                    "diff": float(means[a] - means[b]),
                    "lo": low,
                    "hi": high,
                }
            )
    return pd.DataFrame(rows, columns=["budget", "a", "rival", "b", "diff", "lo", "hi"])


def outcome(low: float, high: float) -> str:
    """ "wins" when the paired interval of a - b is above 0, "loses" below, "ties" otherwise."""
    return "wins" if low > 0 else "loses" if high < 0 else "ties"


def verdict(a: str, b: str, diff: float, low: float, high: float) -> str:
    """One sentence: a winner only when the paired interval excludes 0."""
    interval, kind = f"[{low:+.3f}, {high:+.3f}]", outcome(low, high)
    if kind == "wins":
        return f"{a} beats {b} by {diff:+.3f} {interval}"
    if kind == "loses":
        return f"{b} beats {a} by {-diff:+.3f} [{-high:+.3f}, {-low:+.3f}]"
    return f"{a} and {b} cannot be told apart on this test split (difference {diff:+.3f} {interval})"


def per_run(values: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Each paired comparison within each pretraining run: rows budget, run, a, rival, b, diff
    (a's test mean over its seeds in that run minus b's in the same run, or b's only values
    when no run changes b). `values` as in `method_intervals`."""
    means = values.groupby(["method", "budget", "run"])["value"].mean()
    rows = []
    for c in paired.itertuples():
        a, b = means.loc[(c.a, c.budget)], means.loc[(c.b, c.budget)]
        for run, value in a.items():
            rival = b.loc[run] if run in b.index else b.iloc[0] if len(b) == 1 else np.nan
            rows.append(
                {
                    "budget": c.budget,
                    "run": int(run),
                    "a": c.a,
                    "rival": c.rival,
                    "b": c.b,
                    "diff": value - rival,
                }
            )
    return pd.DataFrame(rows, columns=["budget", "run", "a", "rival", "b", "diff"])


def transfer(
    tables: dict[str, pd.DataFrame],
    resampled: dict[str, dict[tuple[str, str], np.ndarray]],
    paired: pd.DataFrame,
) -> pd.DataFrame:
    """What unseen recording conditions cost, paired: the same test performances heard under
    unseen and under seen conditions, on the same resamples of works, runs and seeds.

    `tables`, `resampled`: each part's (seen, unseen) `method_intervals`; `paired`: the unseen
    part's comparisons. Rows: budget, kind ("method": a method's unseen - seen; "comparison":
    a comparison's unseen - seen, i.e. how much less a loses than b), a, rival, b (empty for a
    method), seen, unseen, gap (unseen - seen, means), lo, hi (95 %).
    """
    seen, unseen = (t.set_index(["method", "budget"])["mean"] for t in (tables["seen"], tables["unseen"]))
    rows = []
    for method, budget in tables["unseen"][["method", "budget"]].itertuples(index=False):
        gap = resampled["unseen"][(method, budget)] - resampled["seen"][(method, budget)]
        low, high = bootstrap.interval(gap)
        s, u = float(seen[(method, budget)]), float(unseen[(method, budget)])
        rows.append(
            {"budget": budget, "kind": "method", "a": method, "rival": "", "b": "", "seen": s, "unseen": u}
            | {"gap": u - s, "lo": low, "hi": high}
        )
    for c in paired.itertuples():
        diffs = {
            part: resampled[part][(c.a, c.budget)] - resampled[part][(c.b, c.budget)]
            for part in ("seen", "unseen")
        }
        low, high = bootstrap.interval(diffs["unseen"] - diffs["seen"])
        s = float(seen[(c.a, c.budget)] - seen[(c.b, c.budget)])
        u = float(unseen[(c.a, c.budget)] - unseen[(c.b, c.budget)])
        rows.append(
            {"budget": c.budget, "kind": "comparison", "a": c.a, "rival": c.rival, "b": c.b, "seen": s}
            | {"unseen": u, "gap": u - s, "lo": low, "hi": high}
        )
    return pd.DataFrame(
        rows, columns=["budget", "kind", "a", "rival", "b", "seen", "unseen", "gap", "lo", "hi"]
    )
