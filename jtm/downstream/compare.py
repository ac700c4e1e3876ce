"""Intervals on every (task, method, budget) and the paired comparisons the report's verdicts use.

Each method's headline metric gets a 95 % interval from the bootstrap over test units (and
probe seeds; jtm/downstream/bootstrap.py). Per task and budget, the best CPC method (`cpc-*`
probes and `finetune`), chosen by its validation score, not its test score, is compared with
the best random-init control, the best log-mel probe and the supervised baseline, each chosen
the same way: the mean difference of the test metric and its 95 % interval, both methods
scored on the same resamples.
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
    "supervised": ("supervised",),
}
RIVALS = ("random", "logmel", "supervised")  # what the best CPC method is compared with


def method_intervals(
    kind: str, values: pd.DataFrame, stats: dict[str, np.ndarray], draws: np.ndarray, seed: int
) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """(table, resampled) for one task.

    `values`: one row per model (method, budget, seed, value = the test headline, val_score);
    `stats`: "<method>|<budget>|<seed>" -> (units, k); `draws`: (resamples, units).
    Table rows: method, budget, mean (over seeds), lo, hi, val_score (mean over seeds), seeds.
    """
    rows, resampled = [], {}
    for (method, budget), models in values.groupby(["method", "budget"], sort=False):
        models = models.sort_values("seed")
        stacked = np.stack([stats[f"{method}|{budget}|{s}"] for s in models["seed"]])
        salt = zlib.crc32(f"{method}|{budget}".encode())
        seeds = bootstrap.seed_draws(len(models), len(draws), seed, salt)
        resampled[(method, budget)] = bootstrap.resampled(kind, stacked, draws, seeds)
        low, high = bootstrap.interval(resampled[(method, budget)])
        rows.append(
            {
                "method": method,
                "budget": budget,
                "mean": float(models["value"].mean()),
                "lo": low,
                "hi": high,
                "val_score": float(models["val_score"].mean()),
                "seeds": len(models),
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


def verdict(a: str, b: str, diff: float, low: float, high: float) -> str:
    """One sentence: a winner only when the paired interval excludes 0."""
    interval = f"[{low:+.3f}, {high:+.3f}]"
    if low > 0:
        return f"{a} beats {b} by {diff:+.3f} {interval}"
    if high < 0:
        return f"{b} beats {a} by {-diff:+.3f} [{-high:+.3f}, {-low:+.3f}]"
    return f"{a} and {b} cannot be told apart on this test split (difference {diff:+.3f} {interval})"
