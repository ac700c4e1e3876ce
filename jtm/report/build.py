"""Stage `report`: results/report.html (self-contained) and results/report.md from the stages'
output files. It trains nothing: it reads the index, every pretraining run's metrics (the first
run's curves and embeddings, for the figures) and the downstream results, and says plainly
which method wins, and whether the runs agree.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir, atomic_file
from jtm.config import ReportConfig
from jtm.downstream.metrics import HEADLINE
from jtm.features.rank import feature_ranks
from jtm.report import figures, glance
from jtm.tracking import git_commit


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """task, part, method, budget, metric -> mean over seeds, seeds (the spread: the intervals)."""
    grouped = results.groupby(["task", "part", "method", "budget", "metric"], sort=False)
    return grouped.agg(mean=("value", "mean"), seeds=("seed", "nunique")).reset_index()


def best_on_validation(rows: pd.DataFrame) -> str:
    """The method of `rows` (intervals' rows) with the best mean validation score; ties: the
    first listed. Every choice the report shows is made on validation, never on test."""
    order = rows.assign(order=range(len(rows))).sort_values(
        ["val_score", "order"], ascending=[False, True], na_position="last"
    )
    return str(order["method"].iloc[0])


def budget_label(budget: str) -> str:
    """ "1-per-class" -> "1 track/class", "all" -> "all labels"."""
    k = budget.split("-")[0]
    return "all labels" if budget == "all" else f"{k} track{'' if k == '1' else 's'}/class"


def largest_budget(intervals: pd.DataFrame, task: str) -> str:
    """The task's last (largest) budget, as params list them."""
    return str(intervals.loc[intervals["task"] == task, "budget"].iloc[-1])


def verdicts(intervals: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One sentence per (task, budget): the best CPC method (chosen on validation) against each
    rival, a winner named only where the paired 95 % interval excludes 0."""
    from jtm.downstream.compare import verdict

    lines = []
    for (part, task, budget), rows in comparisons.groupby(["part", "task", "budget"], sort=False):
        a = rows["a"].iloc[0]
        mine = intervals[
            (intervals["part"] == part) & (intervals["task"] == task) & (intervals["budget"] == budget)
        ].set_index("method")
        where = "" if part == "all" else f", {part} conditions"
        text = (
            f"**{task}, {budget_label(budget)}{where}** ({HEADLINE[task]}): the best CPC method on "
            f"validation, {a}, scores {mine.at[a, 'mean']:.3f} "
            f"[{mine.at[a, 'lo']:.3f}, {mine.at[a, 'hi']:.3f}]"
        )
        parts = [
            f"vs {c.rival} ({c.b}, {mine.at[c.b, 'mean']:.3f}): " + verdict(c.a, c.b, c.diff, c.lo, c.hi)
            for c in rows.itertuples()
        ]
        lines.append(text + "; " + "; ".join(parts) + ".")
    return lines


def headline_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Rows: task x method; columns: label budgets (each part: seen, unseen conditions); cells:
    mean [95 % interval]."""
    cells = intervals.assign(
        cell=[
            f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            for m, lo, hi in intervals[["mean", "lo", "hi"]].itertuples(index=False)
        ],
        column=intervals["budget"].map(budget_label)
        + intervals["part"].map(lambda part: "" if part == "all" else f" ({part})"),
    )
    table = cells.pivot_table(
        index=["task", "method"], columns="column", values="cell", aggfunc="first", sort=False
    )
    # The pivot names its column axis; left in, HTML shows it as an empty first column headed "column".
    table = table.fillna("–").reset_index().rename_axis(columns=None)
    table.insert(1, "metric", table["task"].map(HEADLINE))
    return table


def budget_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """What each budget held (mean over the probes' seeds): labelled tracks, windows or frames,
    classes covered (instruments for the multi-label tasks)."""
    probes = intervals[~intervals["method"].isin(["supervised", "finetune"])]
    probes = probes[probes["part"] == probes["part"].iloc[0]]  # what is trained on: every part's alike
    held = probes.groupby(["task", "budget"], sort=False)[
        ["train_tracks", "train_windows", "train_frames", "train_classes"]
    ].mean()
    held = held.reset_index()
    held["budget"] = held["budget"].map(budget_label)
    held["labelled"] = [
        f"{f:,.0f} frames" if task == "transcription" else f"{w:,.0f} windows"
        for task, w, f in held[["task", "train_windows", "train_frames"]].itertuples(index=False)
    ]
    held["classes covered"] = [
        f"{c:.0f} instruments" if task in ("instruments", "transcription") else f"{c:.0f} classes"
        for task, c in held[["task", "train_classes"]].itertuples(index=False)
    ]
    held["labelled tracks"] = held["train_tracks"].map(lambda t: f"{t:.1f}".removesuffix(".0"))
    return held[["task", "budget", "labelled tracks", "labelled", "classes covered"]]


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _projections(embeddings: Path, index: Path, cfg: ReportConfig, features: list[str]) -> dict[str, bytes]:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    keys = pd.read_parquet(embeddings / "keys.parquet")
    tracks = pd.read_parquet(index / "tracks.parquet")
    meta = keys.merge(tracks[["id", "ensemble", "composer"]], on="id", how="left")
    rows = np.flatnonzero(meta["split"].isin(["val", "test"]).to_numpy())
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.permutation(rows)[: cfg.projection_windows])
    colours = {c: meta[c].astype(str).to_numpy()[rows] for c in ("ensemble", "composer")}
    out = {}
    for name, project in (
        ("pca", lambda x: PCA(2, random_state=cfg.seed).fit_transform(x)),
        (
            "tsne",
            lambda x: TSNE(
                2, random_state=cfg.seed, init="pca", perplexity=min(30, len(x) - 1)
            ).fit_transform(x),
        ),
    ):
        points = {}
        for feature in features:
            pooled = np.load(embeddings / feature / "pooled.npy")[rows]
            pooled = (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)
            points[feature] = project(pooled)
        out[name] = _png(figures.projections(points, colours, name.upper()))
    return out


def build_report(
    index: str | Path,
    model_dir: str | Path,
    embeddings: str | Path,
    downstream: str | Path,
    html_path: str | Path,
    md_path: str | Path,
    figures_dir: str | Path,
    params: dict,
    cfg: ReportConfig,
) -> dict:
    """Write report.html, report.md and the figures folder (each atomically). `model_dir` and
    `embeddings` hold a folder per pretraining run (run<r>, r in `params["pretrain.runs"]`)."""
    runs = list(params["pretrain.runs"])
    index, downstream = Path(index), Path(downstream)
    run_metrics = {r: json.loads((Path(model_dir) / f"run{r}" / "metrics.json").read_text()) for r in runs}
    ranks = {r: _ranks(Path(embeddings) / f"run{r}") for r in runs}
    model_dir, embeddings = Path(model_dir) / f"run{runs[0]}", Path(embeddings) / f"run{runs[0]}"
    results = pd.read_parquet(downstream / "results.parquet")
    summary = summarize(results)
    intervals = pd.read_parquet(downstream / "intervals.parquet")
    comparisons = pd.read_parquet(downstream / "comparisons.parquet")
    test_split = json.loads((downstream / "test_split.json").read_text())
    tracks = pd.read_parquet(index / "tracks.parquet")
    headline_part = intervals["part"].iloc[-1]  # unseen conditions, or all: what the figures show
    pretrain_metrics = run_metrics[runs[0]]
    images: dict[str, tuple[str, bytes]] = {}  # name -> (caption, png)

    train_curves = pd.read_csv(model_dir / "curves_train.csv")
    val_curves = pd.read_csv(model_dir / "curves_val.csv")
    images["cpc_curves"] = (
        f"CPC pretraining (run {runs[0]}): accuracy of predicting k frames (10 ms each) ahead against "
        "the negatives, per k",
        _png(figures.cpc_curves(train_curves, val_curves, pretrain_metrics["chance_accuracy"])),
    )
    images["forest"] = (
        "Every paired comparison: the best CPC method on validation minus the best of each rival "
        "family on validation, test difference of the task's headline metric and 95 % interval, a row "
        "of panels per task (green: CPC wins, red: loses, grey: cannot be told apart)",
        _png(figures.forest(comparisons, budget_label, HEADLINE)),
    )
    images["label_efficiency"] = (
        f"Label efficiency ({glance.PARTS[headline_part].lower()}): each task's headline metric "
        "against the labelled train tracks per class "
        "(mean over seeds, bars: 95 % bootstrap interval over test works; solid: CPC, dotted: other "
        "frozen features, dashed: end-to-end)",
        _png(figures.label_efficiency(intervals[intervals["part"] == headline_part], HEADLINE)),
    )
    matrices = []
    for task in ("ensemble", "composer"):
        if task not in set(intervals["task"]):
            continue
        rows = intervals[
            (intervals["task"] == task)
            & (intervals["budget"] == largest_budget(intervals, task))
            & (intervals["part"] == headline_part)
        ]
        if rows.empty:
            continue
        picks = [best_on_validation(rows)]
        cpc = rows[rows["method"].str.startswith("cpc")]
        if len(cpc) and best_on_validation(cpc) not in picks:
            picks.append(best_on_validation(cpc))
        for method in picks:
            path = downstream / "confusion" / task / f"{method}.json"
            if path.is_file():
                data = json.loads(path.read_text())
                matrices.append((f"{task}: {method}", data["classes"], np.array(data["matrix"])))
    if matrices:
        images["confusion"] = (
            "Confusion matrices on the test split (largest budget, first run and seed): "
            "the best method and the best CPC probe, both chosen on validation",
            _png(figures.confusion(matrices)),
        )
    excerpt_path = downstream / "excerpt.npz"
    if excerpt_path.is_file():
        excerpt = np.load(excerpt_path)
        top = largest_budget(intervals, "transcription")
        rows = intervals[
            (intervals["task"] == "transcription")
            & (intervals["budget"] == top)
            & (intervals["part"] == headline_part)
        ]
        best = best_on_validation(rows)
        threshold = results[
            (results["task"] == "transcription")
            & (results["method"] == best)
            & (results["budget"] == top)
            & (results["metric"] == "threshold")
        ]["value"].iloc[0]
        images["piano_roll"] = (
            f"Transcription of a test excerpt (track {int(excerpt['track'])}, from "
            f"{int(excerpt['start']) / 16000:.2f} s) by the best method on validation, {best}",
            _png(figures.piano_roll(excerpt["truth"], excerpt[best].astype(np.float32), threshold, best)),
        )
    features = [f for f in ("cpc", "random") if (embeddings / f / "pooled.npy").is_file()]
    if features:
        for name, png in _projections(embeddings, index, cfg, features).items():
            images[f"projection_{name}"] = (
                f"{name.upper()} of pooled window embeddings (validation and test windows): "
                f"cpc vs random init, run {runs[0]}",
                png,
            )

    table, held = headline_table(intervals), budget_table(intervals)
    transfer_path = downstream / "transfer.parquet"
    transfer = transfer_tables(pd.read_parquet(transfer_path)) if transfer_path.is_file() else None
    by_run = run_table(run_metrics, pd.read_parquet(downstream / "runs.parquet"), intervals, params, ranks)
    largest = {task: largest_budget(intervals, task) for task in intervals["task"].unique()}
    everything = summary[summary["budget"] == summary["task"].map(largest)]
    full = {
        task + ("" if part == "all" else f", {part} conditions"): rows.pivot_table(
            index="method", columns="metric", values="mean", sort=False
        ).rename_axis(columns=None)
        for (task, part), rows in everything.groupby(["task", "part"], sort=False)
    }
    context = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "tracks": len(tracks),
        "hours": float(tracks["source_samples"].sum()) / 44_100 / 3600,
        "splits": tracks["split"].value_counts().to_dict(),
        "ensembles": tracks["ensemble"].nunique(),
        "composers": tracks["composer"].nunique(),
        "pretrain": pretrain_metrics,
        "runs": run_metrics,
        "models": int(results.groupby(["task", "method", "budget", "run", "seed"]).ngroups),
        "test_split": test_split,
        "transfer": transfer,
        "grids": [
            (part, glance.grid_markdown(mine, budget_label), glance.grid_html(mine, budget_label))
            for part, mine in glance.by_part(comparisons)
        ],
    }
    verdict = verdicts(intervals, comparisons)
    with atomic_dir(figures_dir) as tmp:
        for name, (_, png) in images.items():
            (tmp / f"{name}.png").write_bytes(png)
    md_dir = Path(md_path).parent
    relative = os.path.relpath(Path(figures_dir), md_dir)
    with atomic_file(md_path) as tmp:
        tmp.write_text(_markdown(context, (table, held, by_run), full, verdict, images, relative, params))
    with atomic_file(html_path) as tmp:
        tmp.write_text(_html(context, (table, held, by_run), full, verdict, images, params))
    return {"figures": len(images), "models": context["models"]}


def transfer_tables(transfer: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(methods, comparisons): what unseen recording conditions cost each method, and whether
    the best CPC method loses less to them than each rival (unseen - seen, paired 95 %)."""
    from jtm.downstream.compare import outcome

    cells = transfer.assign(
        budget=transfer["budget"].map(budget_label),
        change=[
            f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for g, lo, hi in transfer[["gap", "lo", "hi"]].itertuples(index=False)
        ],
    )
    methods = cells[cells["kind"] == "method"].rename(columns={"a": "method", "change": "unseen − seen"})
    methods = methods.assign(
        seen=methods["seen"].map("{:.3f}".format), unseen=methods["unseen"].map("{:.3f}".format)
    )
    words = {"wins": "carries over better", "loses": "carries over worse", "ties": "cannot be told apart"}
    pairs = cells[cells["kind"] == "comparison"]
    pairs = pairs.assign(
        comparison=pairs["a"] + " − " + pairs["b"],
        seen=pairs["seen"].map("{:+.3f}".format),
        unseen=pairs["unseen"].map("{:+.3f}".format),
        verdict=[words[outcome(lo, hi)] for lo, hi in pairs[["lo", "hi"]].itertuples(index=False)],
    ).rename(columns={"change": "unseen − seen"})
    return (
        methods[["task", "budget", "method", "seen", "unseen", "unseen − seen"]],
        pairs[["task", "budget", "comparison", "seen", "unseen", "unseen − seen", "verdict"]],
    )


def _ranks(folder: Path) -> dict[str, dict]:
    """The effective rank of a run's CPC and control test frames (those it embedded)."""
    present = [f for f in ("cpc", "random") if (folder / f / "frames.npy").is_file()]
    return feature_ranks(folder, present) if present else {}


def run_table(
    run_metrics: dict, by_run: pd.DataFrame, intervals: pd.DataFrame, params: dict, ranks: dict | None = None
) -> pd.DataFrame:
    """One row per pretraining run: its seed, validation k=1, the effective rank of its CPC and
    control test frames (`ranks`: run -> jtm.features.rank.feature_ranks; fewer directions
    than the control's: a partly collapsed representation), and per task its best CPC method
    minus the best random-init control (largest budget, test means over its seeds): whether
    the runs agree."""
    rows = []
    for run, metrics in run_metrics.items():
        row = {"run": run, "seed": params["pretrain.seed"] + run, "val k=1": f"{metrics['val_acc_k1']:.3f}"}
        mine = (ranks or {}).get(run, {})
        if "cpc" in mine and "random" in mine:
            row["effective rank: CPC / control"] = f"{mine['cpc']['rank']:.1f} / {mine['random']['rank']:.1f}"
        for task in intervals["task"].unique():
            for part in by_run["part"].unique():
                mine = by_run[
                    (by_run["task"] == task)
                    & (by_run["part"] == part)
                    & (by_run["run"] == run)
                    & (by_run["rival"] == "random")
                    & (by_run["budget"] == largest_budget(intervals, task))
                ]
                name = f"{task}{'' if part == 'all' else f' ({part})'}: CPC − control"
                row[name] = f"{mine['diff'].iloc[0]:+.3f}" if len(mine) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _intro(context: dict) -> list[str]:
    p, runs = context["pretrain"], context["runs"]
    splits = ", ".join(f"{k} {v}" for k, v in sorted(context["splits"].items()))
    last = max(int(k.removeprefix("val_acc_k")) for k in p if k.startswith("val_acc_k"))
    k1 = [m["val_acc_k1"] for m in runs.values()]
    return [
        f"Generated {context['generated']} from commit `{context['commit']}`.",
        f"Data: {context['tracks']} tracks ({splits}), {context['hours']:.2f} hours, "
        f"{context['ensembles']} ensembles, {context['composers']} composers.",
        f"CPC: {len(runs)} pretraining run(s) of {p['steps']} steps; validation accuracy k=1 "
        f"{np.mean(k1):.3f} (runs {min(k1):.3f} to {max(k1):.3f}); first run k={last} "
        f"{p[f'val_acc_k{last}']:.3f} (chance {p['chance_accuracy']:.3f}).",
        "Pretrained on: " + _corpora(p.get("corpora", {})) + ".",
        f"Downstream: {context['models']} models trained; scores on the test split, model selection "
        "(L2 strength, the best CPC method and each rival) on the validation split.",
        "Test split per task: "
        + "; ".join(
            f"{task}{'' if part == 'all' else f' ({part} conditions)'} {t['tracks']} tracks "
            f"({t['windows']} windows), {t['units']} bootstrap {t['unit']}s"
            for task, parts in context["test_split"].items()
            for part, t in parts.items()
        )
        + f". Intervals: 95 %, {_first(context)['resamples']} resamples of whole test "
        f"{_first(context)['unit']}s, " + _run_sources(len(runs)),
    ]


def _run_sources(runs: int) -> str:
    """What the intervals resample besides test units, said plainly when it is not every source."""
    if runs > 1:
        return (
            f"of the {runs} pretraining runs (each method's runs, random-init controls and end-to-end "
            "inits) and of probe seeds within each run; differences paired on the same resamples."
        )
    return (
        "and of probe seeds; differences paired on the same resamples. **One pretraining run: these "
        "intervals leave out pretraining variance** (another run can move a verdict; set `pretrain.runs`)."
    )


def _corpora(corpora: dict) -> str:
    """Each pretraining source with its hours and weight (models trained before this was
    recorded: MusicNet's train split alone)."""
    if not corpora:
        return "MusicNet's train split"
    names = {"musicnet": "MusicNet's train split"}
    return ", ".join(
        f"{names.get(name, name)} ({c['hours']:.2f} h, weight {c['weight']:g})" for name, c in corpora.items()
    )


def _first(context: dict) -> dict:
    return next(iter(next(iter(context["test_split"].values())).values()))


def _markdown(context, table, full, verdict, images, figures_rel, params) -> str:
    lines = ["# jtm report", "", f"## {GLANCE_TITLE}", "", GLANCE_KEY, ""]
    for part, grid, _ in context["grids"]:
        lines += ([] if part == "all" else [f"### {glance.PARTS[part]}", ""]) + [grid, ""]
    lines += [_image_md("forest", images, figures_rel), ""]
    lines += [f"- {line}" for line in _intro(context)]
    table, held, by_run = table
    lines += ["", "## Does CPC win? (paired 95 % intervals)", ""] + [f"- {v}" for v in verdict]
    if context["transfer"] is not None:
        methods, pairs = context["transfer"]
        lines += ["", f"## {TRANSFER_TITLE}", "", TRANSFER_KEY, ""]
        lines += [pairs.to_markdown(index=False, disable_numparse=True), ""]
        lines += [methods.to_markdown(index=False, disable_numparse=True)]
    lines += ["", f"## {RUNS_TITLE}", "", by_run.to_markdown(index=False, disable_numparse=True)]
    lines += ["", "## Headline table (test split, mean [95 % interval])", "", table.to_markdown(index=False)]
    lines += ["", "## What each label budget held", "", held.to_markdown(index=False)]
    lines += ["", "## Every metric, largest budget (mean over seeds)"]
    for task, table_of_task in full.items():
        lines += ["", f"### {task}", "", table_of_task.round(3).to_markdown()]
    lines += ["", "## Figures", ""]
    for name in images:
        if name != "forest":
            lines += [_image_md(name, images, figures_rel)]
    lines += ["## Parameters", "", "```yaml", _params_yaml(params), "```", ""]
    return "\n".join(lines)


def _image_md(name: str, images: dict, figures_rel: str) -> str:
    caption = images[name][0]
    return f"![{caption}]({figures_rel}/{name}.png)\n\n*{caption}*\n"


def _figure_html(name: str, caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{name}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _params_yaml(params: dict) -> str:
    import yaml

    return yaml.safe_dump({k: v for k, v in params.items() if k != "paths"}, sort_keys=False).strip()


TRANSFER_TITLE = "What unseen recording conditions cost (unseen − seen, paired 95 % intervals)"
TRANSFER_KEY = (
    "The same test performances, heard under conditions seen in training and under unseen ones. "
    "First each comparison's change: a positive change means the best CPC method loses less "
    "to unseen conditions than the rival (its features carry over better); then each method's "
    "own change. Intervals resample works, runs and seeds, paired across the two parts."
)

RUNS_TITLE = (
    "Each pretraining run alone (largest budget; CPC − control: best of each, chosen on validation; "
    "effective rank: how many directions the test frames use, of their width)"
)

GLANCE_TITLE = "At a glance: the best CPC method against the random-init control and log-mel"
GLANCE_KEY = (
    "Rows: tasks; columns: label budgets. Each cell: the best CPC method on validation, and its "
    "paired test difference with the best control and the best log-mel probe (each chosen on "
    "validation), 95 % interval: ▲ wins (interval above 0), ● cannot be told apart, ▼ loses."
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
figure { margin: 1.5em 0; } figcaption { font-style: italic; color: #555; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def _inline_markdown(text: str) -> str:
    """The few Markdown marks the generated sentences use (**bold**, `code`) as HTML."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _html(context, table, full, verdict, images, params) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>jtm report</title>',
        f"<style>{_STYLE}{glance.GRID_STYLE}</style></head><body>",
        "<h1>jtm report</h1>",
        f"<h2>{GLANCE_TITLE}</h2><p>{html.escape(GLANCE_KEY)}</p>",
        *[
            ("" if part == "all" else f"<h3>{html.escape(glance.PARTS[part])}</h3>") + grid
            for part, _, grid in context["grids"]
        ],
        _figure_html("forest", *images["forest"]),
        "<ul>",
        *[f"<li>{_inline_markdown(line)}</li>" for line in _intro(context)],
        "</ul><h2>Does CPC win? (paired 95 % intervals)</h2><ul>",
        *[f"<li>{_inline_markdown(v)}</li>" for v in verdict],
        "</ul>",
        *(
            []
            if context["transfer"] is None
            else [
                f"<h2>{TRANSFER_TITLE}</h2><p>{html.escape(TRANSFER_KEY)}</p>",
                *[
                    t.to_html(index=False, classes="transfer", border=0, escape=True)
                    for t in context["transfer"][::-1]
                ],
            ]
        ),
        f"<h2>{RUNS_TITLE}</h2>",
        table[2].to_html(index=False, classes="runs", border=0, escape=True),
        "<h2>Headline table (test split, mean [95 % interval])</h2>",
        table[0].to_html(index=False, classes="headline", border=0, escape=True),
        "<h2>What each label budget held</h2>",
        table[1].to_html(index=False, classes="budgets", border=0, escape=True),
        "<h2>Every metric, largest budget (mean over seeds)</h2>",
        *[
            f"<h3>{html.escape(task)}</h3>" + t.round(3).to_html(classes="full", border=0)
            for task, t in full.items()
        ],
        "<h2>Figures</h2>",
    ]
    parts += [_figure_html(name, *image) for name, image in images.items() if name != "forest"]
    parts += ["<h2>Parameters</h2>", f"<pre>{html.escape(_params_yaml(params))}</pre>", "</body></html>"]
    return "\n".join(parts)
