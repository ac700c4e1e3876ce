"""The report's figures (matplotlib, Agg): each function takes tables/arrays, returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jtm.downstream.compare import outcome  # noqa: E402
from jtm.report.glance import COLOURS  # noqa: E402

TASK_TITLES = {
    "ensemble": "Ensemble (window)",
    "composer": "Composer (window)",
    "instruments": "Instruments (window, multi-label)",
    "transcription": "Transcription (frame, 128 pitches)",
}


def cpc_curves(train: pd.DataFrame, val: pd.DataFrame, chance: float) -> plt.Figure:
    """Per-k accuracy (train, val) and mean loss against the training step."""
    ks = sorted(int(c.removeprefix("acc_k")) for c in train.columns if c.startswith("acc_k"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    cmap = plt.get_cmap("viridis", max(len(ks), 2))
    for ax, table, name in ((axes[0], train, "train"), (axes[1], val, "validation")):
        for i, k in enumerate(ks):
            if f"acc_k{k}" in table:
                ax.plot(table["step"], table[f"acc_k{k}"], color=cmap(i), label=f"k={k}", marker=".")
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
        ax.set(title=f"CPC {name} accuracy per k", xlabel="step", ylabel="accuracy", ylim=(0, 1))
    axes[1].legend(ncol=2, fontsize=7)
    for table, name in ((train, "train"), (val, "validation")):
        if "loss" in table and len(table):
            axes[2].plot(table["step"], table["loss"], marker=".", label=name)
    axes[2].set(title="InfoNCE loss (mean over k)", xlabel="step", ylabel="loss")
    axes[2].legend()
    return fig


def label_efficiency(intervals: pd.DataFrame, headline: dict[str, str]) -> plt.Figure:
    """One panel per task: the headline metric (mean over seeds, 95 % bootstrap interval) against
    the labelled train tracks per class."""
    tasks = list(dict.fromkeys(intervals["task"]))
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(4.5 * len(tasks), 4), constrained_layout=True, squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = intervals[intervals["task"] == task]
        for method, curve in rows.groupby("method", sort=False):
            x = curve["train_tracks"] / curve["train_strata"].clip(lower=1)
            curve = curve.assign(x=x).sort_values("x")
            style = "-" if method.startswith("cpc") else "--" if method in ("supervised", "finetune") else ":"
            ax.errorbar(
                curve["x"],
                curve["mean"],
                # the point estimate is exact, the interval from binned statistics: never below 0
                yerr=np.clip(
                    np.stack([curve["mean"] - curve["lo"], curve["hi"] - curve["mean"]]).astype(float),
                    0,
                    None,
                ),
                label=method,
                linestyle=style,
                marker="o",
                capsize=3,
            )
        ax.set(
            xscale="log",
            title=TASK_TITLES.get(task, task),
            xlabel="labelled tracks per class",
            ylabel=headline[task],
        )
    handles = {}
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8)
    return fig


def confusion(matrices: list[tuple[str, list[str], np.ndarray]]) -> plt.Figure:
    """Row-normalised confusion matrices, one panel per (title, classes, matrix)."""
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(6 * len(matrices), 5.5), constrained_layout=True, squeeze=False
    )
    for ax, (title, classes, matrix) in zip(axes[0], matrices, strict=True):
        rows = matrix.sum(1, keepdims=True)
        shown = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set(title=title, xlabel="predicted", ylabel="true")
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    j,
                    i,
                    int(count),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if shown[i, j] > 0.5 else "black",
                )
    return fig


def piano_roll(truth: np.ndarray, probs: np.ndarray, threshold: float, method: str) -> plt.Figure:
    """True notes, predicted probabilities, and the thresholded prediction of a test excerpt."""
    active = np.flatnonzero(truth.any(0) | (probs >= threshold).any(0))
    low, high = (
        (max(active.min() - 3, 0), min(active.max() + 4, truth.shape[1])) if len(active) else (21, 109)
    )
    seconds = truth.shape[0] / 100
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True, sharey=True)
    extent = (0, seconds, low - 0.5, high - 0.5)
    for ax, image, title in (
        (axes[0], truth, "true notes"),
        (axes[1], probs, f"{method}: probability"),
        (axes[2], (probs >= threshold) * 1.0 + truth * 0.5, f"{method}: > {threshold:.2f} (grey: missed)"),
    ):
        ax.imshow(
            image[:, low:high].T,
            aspect="auto",
            origin="lower",
            extent=extent,
            cmap="Greys",
            vmin=0,
            vmax=1 if image.max() <= 1 else image.max(),
        )
        ax.set(title=title, xlabel="seconds")
    axes[0].set_ylabel("MIDI pitch")
    return fig


def projections(points: dict[str, np.ndarray], colours: dict[str, np.ndarray], method: str) -> plt.Figure:
    """A grid: rows = feature sets (2-D points), columns = what the points are coloured by."""
    fig, axes = plt.subplots(
        len(points),
        len(colours),
        figsize=(6 * len(colours), 5 * len(points)),
        constrained_layout=True,
        squeeze=False,
    )
    for row, (feature, xy) in enumerate(points.items()):
        for col, (name, labels) in enumerate(colours.items()):
            ax = axes[row][col]
            for value in sorted(set(labels)):
                mask = labels == value
                ax.scatter(xy[mask, 0], xy[mask, 1], s=6, label=value, alpha=0.7)
            ax.set(title=f"{feature}: {method}, coloured by {name}", xticks=[], yticks=[])
            if row == 0:
                ax.legend(fontsize=6, markerscale=2, loc="best")
    return fig


METRIC_NAMES = {"accuracy": "accuracy", "micro_ap": "micro-averaged AP"}
RIVAL_NAMES = {
    "random": "vs control",
    "logmel": "vs log-mel",
    "cqt": "vs log-CQT",
    "supervised": "vs supervised",
}


def forest(comparisons: pd.DataFrame, label, metrics: dict[str, str] | None = None) -> plt.Figure:
    """Every paired difference (best CPC method minus each rival's best) with its 95 % interval:
    a row of panels per task, each with its own metric's axis (`metrics`: task -> its headline
    metric's name), a panel per rival, a line per label budget (and test part); green where
    the interval is above 0, red below, grey across."""
    tasks = list(dict.fromkeys(comparisons["task"]))
    rivals = [r for r in RIVAL_NAMES if r in set(comparisons["rival"])]
    part = comparisons["part"] if "part" in comparisons else pd.Series("all", index=comparisons.index)
    rows = comparisons.assign(part=part)
    lines = max(len(g) for _, g in rows.groupby(["task", "rival"]))
    fig, axes = plt.subplots(
        len(tasks), len(rivals), figsize=(3.4 * len(rivals) + 1.6, (0.24 * lines + 0.9) * len(tasks)),
        sharex="row", sharey="row", squeeze=False, constrained_layout=True,
    )  # fmt: skip
    edge = {"wins": "#1b7a2c", "ties": "#555555", "loses": "#b22222"}
    for i, task in enumerate(tasks):
        for j, rival in enumerate(rivals):
            ax = axes[i, j]
            mine = rows[(rows["task"] == task) & (rows["rival"] == rival)].iloc[::-1].reset_index(drop=True)
            for y, r in mine.iterrows():
                kind = outcome(r["lo"], r["hi"])
                ax.plot([r["lo"], r["hi"]], [y, y], color=edge[kind], linewidth=2.5, solid_capstyle="butt")
                ax.plot(r["diff"], y, "o", color=edge[kind], markerfacecolor=COLOURS[kind], markersize=5)
            ax.axvline(0, color="black", linewidth=0.8)
            names = [
                f"{label(r.budget)}{'' if r.part == 'all' else f', {r.part}'}" for r in mine.itertuples()
            ]
            ax.set_yticks(range(len(mine)), names, fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylim(-0.7, max(len(mine), 1) - 0.3)
            metric = (metrics or {}).get(task, "metric")
            ax.set_title(f"{task}: {RIVAL_NAMES[rival]}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"Δ {METRIC_NAMES.get(metric, metric)}", fontsize=8)
    fig.suptitle(
        "Best CPC minus each rival's best (95 % paired interval): right of 0, CPC is better", fontsize=9
    )
    return fig
