"""Stage `downstream`: gather the study's cells (jtm/downstream/cell.py) into its tables, with a
bootstrap interval on every headline number and the paired comparisons (compare.py), for each
part of the test split: recordings under conditions seen in training and under unseen ones (or
all, where the corpus does not say), each part bootstrapped over its own units.

Only the cells that params name are read, in report order (task, then method), so a cell
folder left over from an earlier study never leaks in. Outputs::

    <downstream>/results.parquet     every model's scores, long (the cells' rows, concatenated,
                                     with the pretraining `run`; -1: a fixed-feature method)
    <downstream>/intervals.parquet   task, part, method, budget, metric, mean, lo, hi (95 %),
                                     val_score, seeds, runs, train_tracks, train_windows,
                                     train_frames, train_classes, train_strata (means over models)
    <downstream>/comparisons.parquet task, part, budget, a, rival, b, diff, lo, hi (95 %, paired)
    <downstream>/transfer.parquet    (seen and unseen parts) task, budget, kind, a, rival, b, seen,
                                     unseen, gap, lo, hi: unseen - seen of each method and each
                                     comparison, paired (compare.transfer)
    <downstream>/runs.parquet        task, part, budget, run, a, rival, b, diff: each comparison in
                                     each pretraining run alone (means over seeds)
    <downstream>/test_split.json     per task and part: test tracks, windows, bootstrap units,
                                     unit kind, resamples, runs
    <downstream>/confusion/<task>/<method>.json   classes, matrix (all labels, first run and seed)
    <downstream>/excerpt.npz         transcription: a test excerpt's true roll and every
                                     method's probabilities (all labels, first run and seed)
    <downstream>/plots/<task>.csv    (unseen conditions, or all; <task>-seen.csv: seen conditions)
                                     tracks_per_class, then each method's headline mean and
                                     its <method>_lo/<method>_hi: what `dvc plots show` draws
    <metrics>/<task>/<part>/<method>/<budget>.json  headline mean/lo/hi, every metric's mean and
                                     std over models, what the budget held (dvc metrics show)
    <metrics>/<task>/<part>/comparisons/<budget>.json  each paired comparison's diff, lo, hi and
                                     its diff in each run (run<r>)
    <metrics>/<task>/transfer/<budget>.json  unseen - seen of each method and comparison
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir, write_json
from jtm.config import DownstreamConfig
from jtm.downstream import bootstrap, compare
from jtm.downstream.design import ALL_METHODS, methods
from jtm.downstream.metrics import HEADLINE
from jtm.downstream.parts import PART_SEPARATOR
from jtm.errors import DataError

HELD = ("train_tracks", "train_windows", "train_frames", "train_classes", "train_strata")
FIXED = -1  # the `run` of a method no pretraining run changes (log-mel probes)


def collect(
    cells: str | Path,
    out_dir: str | Path,
    metrics_dir: str | Path,
    cfg: DownstreamConfig,
    runs: tuple[int, ...],
) -> dict:
    """Write the folders described above (atomically) from the cells params name, for the
    pretraining runs `runs`."""
    cells, runs = Path(cells), tuple(runs)
    tables, intervals, comparisons, per_run, transfers, split_info, summary = [], [], [], [], [], {}, {}
    with atomic_dir(out_dir) as out, atomic_dir(metrics_dir) as metrics_out:
        excerpt: dict[str, np.ndarray] = {}
        for position, task in enumerate(cfg.tasks):
            rows, stats, units = _read_task(cells, task, cfg, runs, out, excerpt)
            tables.append(rows)
            split_info[task] = {}
            parts = _parts(rows, stats, units, task, cfg, position)
            if set(parts) == {"seen", "unseen"} and _paired_parts(units):
                gaps = compare.transfer(
                    {part: found[0] for part, found in parts.items()},
                    {part: found[4] for part, found in parts.items()},
                    parts["unseen"][1],
                ).assign(task=task)
                transfers.append(gaps)
                _write_transfer(metrics_out / task / "transfer", gaps)
            for part, (table, paired, by_run, info, _) in parts.items():
                intervals.append(table)
                comparisons.append(paired)
                per_run.append(by_run)
                split_info[task][part] = info | {"runs": len(runs)}
                _write_metrics(metrics_out / task / part, rows[rows["part"] == part], table, paired, by_run)
                last = part == list(parts)[-1]  # unseen conditions (or all): the plot dvc.yaml names
                _write_plot(out / "plots" / (f"{task}.csv" if last else f"{task}-{part}.csv"), table)
                for r in table.itertuples():
                    summary[f"{task}_{part}_{r.method}_{r.budget}"] = r.mean
        results = pd.concat(tables, ignore_index=True)
        results.to_parquet(out / "results.parquet", index=False)
        pd.concat(intervals, ignore_index=True).to_parquet(out / "intervals.parquet", index=False)
        pd.concat(comparisons, ignore_index=True).to_parquet(out / "comparisons.parquet", index=False)
        pd.concat(per_run, ignore_index=True).to_parquet(out / "runs.parquet", index=False)
        if transfers:
            pd.concat(transfers, ignore_index=True).to_parquet(out / "transfer.parquet", index=False)
        (out / "test_split.json").write_text(json.dumps(split_info, indent=2))
        if excerpt:
            np.savez_compressed(out / "excerpt.npz", **excerpt)
    summary["models"] = len(results.groupby(["task", "method", "budget", "run", "seed"]))
    return summary


def _parts(
    rows: pd.DataFrame, stats: dict, units: np.ndarray, task: str, cfg: DownstreamConfig, position: int
):
    """{part: (intervals, comparisons, per-run comparisons, test split figures, resampled
    metrics)} of one task, each part (seen, unseen, or all) bootstrapped over its own units.
    Parts hold the same works (each test performance is heard under both), named alike after
    the part and drawn alike (one seed): the parts' resamples are paired."""
    found = {}
    for part in rows["part"].unique():
        mine = np.char.startswith(units.astype(str), part + PART_SEPARATOR)
        part_stats = {key: value[mine] for key, value in stats.items()}
        draws = bootstrap.unit_draws(int(mine.sum()), cfg.bootstrap_resamples, cfg.bootstrap_seed + position)
        headline = rows[(rows["metric"] == HEADLINE[task]) & (rows["part"] == part)]
        table, resampled = compare.method_intervals(
            bootstrap.KINDS[HEADLINE[task]], headline, part_stats, draws, cfg.bootstrap_seed
        )
        held = headline.groupby(["method", "budget"], sort=False)[list(HELD)].mean().reset_index()
        table = table.merge(held, on=["method", "budget"]).assign(task=task, part=part, metric=HEADLINE[task])
        paired = compare.paired_comparisons(table, resampled).assign(task=task, part=part)
        by_run = compare.per_run(headline, paired).assign(task=task, part=part)
        info = {"units": int(mine.sum()), "unit": cfg.bootstrap_unit, "resamples": cfg.bootstrap_resamples}
        found[part] = (table, paired, by_run, info | _test_size(headline), resampled)
    return found


def _paired_parts(units: np.ndarray) -> bool:
    """Whether the seen and unseen parts hold the same units (works, or performances), in one order."""
    names = np.char.partition(units.astype(str), PART_SEPARATOR)
    seen, unseen = (names[names[:, 0] == part, 2] for part in ("seen", "unseen"))
    return np.array_equal(seen, unseen)


def _write_transfer(folder: Path, gaps: pd.DataFrame) -> None:
    """One JSON per budget: each method's and each comparison's unseen - seen with its interval."""
    for budget, at in gaps.groupby("budget", sort=False):
        write_json(
            folder / f"{budget}.json",
            {
                (g.a if g.kind == "method" else f"{g.a} - {g.b}"): {
                    "seen": g.seen,
                    "unseen": g.unseen,
                    "gap": g.gap,
                    "lo": g.lo,
                    "hi": g.hi,
                }
                for g in at.itertuples()
            },
        )


def _read_task(
    cells: Path, task: str, cfg: DownstreamConfig, runs: tuple[int, ...], out: Path, excerpt: dict
):
    """(rows of every model, {model key: unit stats}, unit names) of a task's cells; copies
    their confusion matrices and excerpts (the first run's) into `out`. Rows gain a `run`
    column (`FIXED` for methods no run changes); model keys are "<method>|<budget>|<run>|<seed>"."""
    tables, stats, units, read = [], {}, None, set()
    for method in methods(cfg, task):
        for run in runs if method.per_run else (FIXED,):
            folder = cells / method.cell(task, run)
            if not (folder / "scores.parquet").is_file() or not (folder / "stats.npz").is_file():
                raise DataError(folder, f"cell {folder.relative_to(cells)} not built: run its stage first")
            if folder not in read:
                read.add(folder)
                tables.append(pd.read_parquet(folder / "scores.parquet").assign(run=run))
                units = _read_stats(folder, run, units, stats)
            if run in (FIXED, runs[0]):
                _copy_examples(folder, task, method.name, out, excerpt)
    rows = pd.concat(tables, ignore_index=True)
    names = [m.name for m in methods(cfg, task)]
    missing = sorted(set(names) - set(rows["method"]))
    if missing:
        raise DataError(cells, f"{task}: cells have no {missing} models: rerun their stages")
    rows = rows[rows["method"].isin(names)]
    rows = rows.iloc[np.argsort(rows["method"].map(names.index).to_numpy(), kind="stable")]
    return rows.reset_index(drop=True), stats, units


def _read_stats(folder: Path, run: int, units, stats: dict):
    """Add a cell's per-model unit statistics to `stats` under keys with its run; its units
    (checked to be the task's other cells')."""
    with np.load(folder / "stats.npz") as found:
        if units is not None and not np.array_equal(units, found["units"]):
            raise DataError(folder, "its test units differ from the task's other cells: rerun the cells")
        for key in found.files:
            if key != "units":
                method, budget, seed = key.split("|")
                stats[f"{method}|{budget}|{run}|{seed}"] = found[key]
        return found["units"]


def _copy_examples(folder: Path, task: str, method: str, out: Path, excerpt: dict) -> None:
    confusion = folder / "confusion" / f"{method}.json"
    if confusion.is_file():
        target = out / "confusion" / task / f"{method}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(confusion, target)
    if (folder / "excerpt.npz").is_file():
        with np.load(folder / "excerpt.npz") as found:
            for key in ("truth", "track", "start"):
                excerpt.setdefault(key, found[key])
            excerpt[method] = found[method]


def _test_size(rows: pd.DataFrame) -> dict:
    first = rows.iloc[0]
    return {"tracks": int(first["test_tracks"]), "windows": int(first["test_windows"])}


def _write_metrics(
    folder: Path, rows: pd.DataFrame, table: pd.DataFrame, paired: pd.DataFrame, by_run: pd.DataFrame
) -> None:
    """One JSON per method and budget, and one of the comparisons (with each run's) per budget."""
    for r in table.itertuples():
        models = rows[(rows["method"] == r.method) & (rows["budget"] == r.budget)]
        by_metric = models.groupby("metric", sort=False)["value"]
        write_json(
            folder / r.method / f"{r.budget}.json",
            {
                "headline": {"mean": r.mean, "lo": r.lo, "hi": r.hi},
                "mean": {k: float(np.mean(v.to_numpy())) for k, v in by_metric},
                # the models' (runs x seeds) sample standard deviation (ddof 1); null for one model
                "std": {k: float(np.std(v.to_numpy(), ddof=1)) if len(v) > 1 else None for k, v in by_metric},
                "seeds": int(r.seeds),
                "runs": int(r.runs),
                "held": {k.removeprefix("train_"): float(getattr(r, k)) for k in HELD},
            },
        )
    for budget, at in paired.groupby("budget", sort=False):
        runs = by_run[by_run["budget"] == budget]
        write_json(
            folder / "comparisons" / f"{budget}.json",
            {
                f"{c.a} - {c.b}": {"diff": c.diff, "lo": c.lo, "hi": c.hi}
                | {f"run{r.run}": r.diff for r in runs[runs["b"] == c.b].itertuples()}
                for c in at.itertuples()
            },
        )


def _write_plot(path: Path, table: pd.DataFrame) -> None:
    """Label-efficiency curves: a row per budget (x: labelled tracks per class), a column per
    known method (empty if not run: dvc.yaml's plots name them all) and its interval."""
    per_class = table["train_tracks"] / table["train_strata"].clip(lower=1)
    table = table.assign(tracks_per_class=per_class.round(2))
    x = table.groupby("budget", sort=False)["tracks_per_class"].max()
    columns = {}
    for method in ALL_METHODS:
        mine = table[table["method"] == method].set_index("budget")
        for suffix, field in (("", "mean"), ("_lo", "lo"), ("_hi", "hi")):
            columns[method + suffix] = mine[field].reindex(x.index)
    frame = pd.DataFrame(columns, index=x.index).assign(tracks_per_class=x).set_index("tracks_per_class")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.sort_index().to_csv(path, float_format="%.6g")
