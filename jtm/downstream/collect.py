"""Stage `downstream`: gather the study's cells (jtm/downstream/cell.py) into its tables.

Only the cells that params name are read, in report order (task, then method), so a cell
folder left over from an earlier study never leaks in. Outputs::

    <downstream>/results.parquet     every model's scores, long (the cells' rows, concatenated)
    <downstream>/confusion/<task>/<method>.json   classes, matrix (all labels, first seed)
    <downstream>/excerpt.npz         transcription: a test excerpt's true roll and every
                                     method's probabilities (all labels, first seed)
    <downstream>/plots/<task>.csv    fraction, then the headline metric (mean over seeds) of
                                     each method: the label-efficiency curves `dvc plots show` draws
    <metrics>/<task>/<method>/<fraction>pct.json  mean and std over seeds (dvc metrics show)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir
from jtm.config import DownstreamConfig
from jtm.downstream.cell import write_json
from jtm.downstream.design import ALL_METHODS, fraction_name, methods
from jtm.downstream.metrics import HEADLINE
from jtm.errors import DataError


def collect(cells: str | Path, out_dir: str | Path, metrics_dir: str | Path, cfg: DownstreamConfig) -> dict:
    """Write the folders described above (atomically) from the cells params name."""
    cells = Path(cells)
    summary: dict[str, float] = {}
    tables, read = [], {}
    with atomic_dir(out_dir) as out, atomic_dir(metrics_dir) as metrics_out:
        excerpt: dict[str, np.ndarray] = {}
        for task in cfg.tasks:
            curves: dict[str, dict[float, float]] = {}
            for method in methods(cfg, task):
                folder = cells / task / method.cell
                if folder not in read:
                    if not (folder / "scores.parquet").is_file():
                        raise DataError(folder, f"cell {task}/{method.cell} not built: run its stage first")
                    read[folder] = pd.read_parquet(folder / "scores.parquet")
                rows = read[folder][read[folder]["method"] == method.name]
                if rows.empty:
                    raise DataError(folder, f"cell has no {method.name} models: rerun its stage")
                tables.append(rows)
                curves[method.name] = {}
                for fraction, at in rows.groupby("fraction", sort=True):
                    stats = _summarize(at)
                    write_json(metrics_out / task / method.name / f"{fraction_name(fraction)}.json", stats)
                    mean = stats["mean"][HEADLINE[task]]
                    curves[method.name][fraction] = mean
                    summary[f"{task}_{method.name}_{fraction_name(fraction)}"] = mean
                confusion = folder / "confusion" / f"{method.name}.json"
                if confusion.is_file():
                    target = out / "confusion" / task / f"{method.name}.json"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(confusion, target)
                if (folder / "excerpt.npz").is_file():
                    with np.load(folder / "excerpt.npz") as found:
                        for key in ("truth", "track", "start"):
                            excerpt.setdefault(key, found[key])
                        excerpt[method.name] = found[method.name]
            # One table per task, a column per known method (empty if not run): dvc.yaml's plots
            # name them all, and `dvc plots show` draws a line per column.
            (out / "plots").mkdir(exist_ok=True)
            table = pd.DataFrame(curves, columns=ALL_METHODS).rename_axis("fraction").sort_index()
            table.to_csv(out / "plots" / f"{task}.csv", float_format="%.6g")
        results = pd.concat(tables, ignore_index=True)
        results.to_parquet(out / "results.parquet", index=False)
        if excerpt:
            np.savez_compressed(out / "excerpt.npz", **excerpt)
    summary["models"] = len(results.groupby(["task", "method", "fraction", "seed"]))
    return summary


def _summarize(rows: pd.DataFrame) -> dict:
    """Mean and std over seeds of each metric of one cell at one label fraction."""
    by_metric = rows.groupby("metric", sort=False)["value"]
    return {
        "mean": {k: float(np.mean(v.to_numpy())) for k, v in by_metric},
        "std": {k: float(np.std(v.to_numpy())) for k, v in by_metric},
        "seeds": int(rows["seed"].nunique()),
        "train_windows": int(rows["train_windows"].iloc[-1]),
    }
