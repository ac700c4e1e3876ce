"""Stage `downstream`: what each representation is worth on labelled tasks, with few labels.

A cell is (task, method, label fraction); a method is a frozen feature set with a probe head
(`cpc-linear`, `logmel-mlp`, ...) or an end-to-end baseline (`supervised`, `finetune`). Each
cell trains one model per seed on a seeded, stratified, by-track subset of the labelled train
windows, selects on the validation split, and is scored on the test split once.

Outputs::

    <downstream>/results.parquet     task, method, feature, head, fraction, seed, train_windows,
                                     train_tracks, best_epoch, metric, value: every model, long
    <downstream>/confusion/<task>/<method>.json   classes, matrix (all labels, first seed)
    <downstream>/excerpt.npz         transcription: a test excerpt's true roll and every
                                     method's probabilities (all labels, first seed)
    <downstream>/plots/<task>.csv   fraction, then the headline metric (mean over seeds) of each
                                     method: the label-efficiency curves `dvc plots show` draws
    <metrics>/<task>/<method>/<fraction>pct.json  mean and std over seeds (dvc metrics show)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from jtm.atomic import atomic_dir
from jtm.config import ConfigError, DownstreamConfig
from jtm.data.windows import load_windows
from jtm.eval.embed import load_embeddings
from jtm.eval.labels import SAMPLE_RATE, TASKS, TaskLabels, non_overlapping, task_labels
from jtm.eval.metrics import (
    HEADLINE,
    best_threshold,
    classification_scores,
    multilabel_scores,
    transcription_scores,
)
from jtm.eval.subsets import label_subset
from jtm.models.encoder import DOWNSAMPLING
from jtm.train import end_to_end
from jtm.train.probe import fit_probe, predict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    name: str
    feature: str  # an embed feature set, or "audio" for end-to-end training
    head: str
    kind: str  # "probe", "supervised" or "finetune"


def _all_methods() -> list[str]:
    from jtm.eval.embed import FEATURES
    from jtm.train.probe import HEADS

    return [f"{f}-{h}" for f in FEATURES for h in HEADS] + list(end_to_end.INITS)


ALL_METHODS = _all_methods()


def methods(cfg: DownstreamConfig, task: str) -> list[Method]:
    """The methods a task is studied with, in report order."""
    found = [Method(f"{f}-{h}", f, h, "probe") for f in cfg.features for h in cfg.heads]
    if task in cfg.end_to_end_tasks:
        found += [Method(kind, "audio", "linear", kind) for kind in cfg.end_to_end]
    return found


def fraction_name(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


def check_config(cfg: DownstreamConfig) -> None:
    from jtm.eval.embed import FEATURES
    from jtm.train.probe import HEADS

    for name, values, known in (
        ("tasks", cfg.tasks, TASKS),
        ("end_to_end_tasks", cfg.end_to_end_tasks, TASKS),
        ("features", cfg.features, FEATURES),
        ("heads", cfg.heads, HEADS),
        ("end_to_end", cfg.end_to_end, end_to_end.INITS),
    ):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"downstream.{name}: unknown {unknown}; known: {list(known)}")
    if not (cfg.seeds and cfg.transcription_seeds and cfg.end_to_end_seeds) or any(
        not 0 < f <= 1 for f in cfg.fractions + cfg.end_to_end_fractions
    ):
        raise ConfigError("downstream: needs at least one seed and fractions in (0, 1]")


class TaskData:
    """One task's windows (rows of the embeddings' keys), targets and splits."""

    def __init__(self, task: str, keys: pd.DataFrame, tracks: pd.DataFrame, notes: pd.DataFrame):
        rows = np.arange(len(keys))
        if task == "transcription":  # every frame trained on and scored once
            rows = rows[non_overlapping(keys)]
        self.keys = keys.iloc[rows].reset_index(drop=True)
        self.rows = rows
        self.labels: TaskLabels = task_labels(task, self.keys, tracks, notes)
        self.split = self.keys["split"].to_numpy()
        self.notes = notes
        self._excerpts = None

    def excerpts(self) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        """The test split's contiguous runs of windows (see `_excerpts`), computed once."""
        if self._excerpts is None:
            self._excerpts = _excerpts(self, self.part("test"))
        return self._excerpts

    def part(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def _features(cache: dict, folder: Path, feature: str, framewise: bool, rows: np.ndarray) -> np.ndarray:
    """(n, dim) inputs of a probe: pooled windows, or every frame of the windows."""
    if feature not in cache:
        cache[feature] = load_embeddings(folder, feature)[1:]
    frames, pooled = cache[feature]
    if not framewise:
        return pooled[rows]
    return np.asarray(frames[rows], dtype=np.float32).reshape(-1, frames.shape[-1])


def _flat(targets: np.ndarray, framewise: bool) -> np.ndarray:
    return targets.reshape(-1, targets.shape[-1]) if framewise else targets


def _excerpts(data: TaskData, test: np.ndarray) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Test windows grouped into runs that are contiguous in one track, each with its true notes
    as (intervals in seconds from the run's start, MIDI pitches)."""
    keys = data.keys.iloc[test]
    runs, current = [], [0]
    for i in range(1, len(keys)):
        prev, here = keys.iloc[i - 1], keys.iloc[i]
        if here["id"] == prev["id"] and here["start"] == prev["start"] + prev["length"]:
            current.append(i)
        else:
            runs.append(current)
            current = [i]
    runs.append(current)
    by_track = dict(tuple(data.notes.groupby("id")))
    out = []
    for run in runs:
        first, last = keys.iloc[run[0]], keys.iloc[run[-1]]
        begin, end = int(first["start"]), int(last["start"] + last["length"])
        end = begin + (end - begin) // DOWNSAMPLING * DOWNSAMPLING
        notes = by_track.get(first["id"], data.notes.iloc[:0])
        notes = notes[(notes["end_time"] > begin) & (notes["start_time"] < end)]
        onsets = notes["start_time"].clip(begin, end).to_numpy() - begin
        offsets = notes["end_time"].clip(begin, end).to_numpy() - begin
        intervals = np.stack([onsets, offsets], axis=1) / SAMPLE_RATE
        out.append((test[np.array(run)], (intervals, notes["note"].to_numpy())))
    return out


def score(data: TaskData, val: np.ndarray, p_val: np.ndarray, test: np.ndarray, p_test: np.ndarray):
    """(scores, confusion matrix or None) of test probabilities; thresholds chosen on val."""
    labels = data.labels
    if not labels.multilabel:
        return classification_scores(labels.targets[test], p_test)
    threshold = best_threshold(labels.targets[val], p_val) if len(val) else 0.5
    if labels.task == "instruments":
        return multilabel_scores(labels.targets[test], p_test, threshold), None
    position = {row: i for i, row in enumerate(test)}
    excerpts = data.excerpts()
    rolls_true = [labels.targets[rows].reshape(-1, labels.targets.shape[-1]) for rows, _ in excerpts]
    rolls_prob = [p_test[[position[r] for r in rows]].reshape(-1, p_test.shape[-1]) for rows, _ in excerpts]
    return transcription_scores(rolls_true, rolls_prob, [notes for _, notes in excerpts], threshold), None


def train_cell(
    data: TaskData,
    method: Method,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    cfg: DownstreamConfig,
    seed: int,
    embeddings: Path,
    model_dir: Path,
    cache: dict,
    audio,
):
    """(fit, val probabilities, test probabilities) of one model on the labelled rows `train`."""
    labels = data.labels
    outputs = len(labels.classes)
    framewise = labels.framewise
    if method.kind == "probe":
        fit = fit_probe(
            _features(cache, embeddings, method.feature, framewise, data.rows[train]),
            _flat(labels.targets[train], framewise),
            _features(cache, embeddings, method.feature, framewise, data.rows[val]),
            _flat(labels.targets[val], framewise),
            method.head,
            outputs,
            hidden=cfg.mlp_hidden,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            batch_size=cfg.frame_batch_size if framewise else cfg.batch_size,
            max_epochs=cfg.max_epochs,
            patience=cfg.patience,
            seed=seed,
        )
        multilabel = labels.multilabel

        def probs(rows):
            p = predict(
                fit.model,
                _features(cache, embeddings, method.feature, framewise, data.rows[rows]),
                multilabel,
            )
            return p.reshape(len(rows), -1, outputs) if framewise else p

        return fit, (probs(val) if labels.multilabel else None), probs(test)
    model = end_to_end.build_model(method.kind, model_dir, outputs, framewise, seed)
    val_draw = np.random.default_rng(seed).permutation(val)[: cfg.e2e_val_windows]
    fit = end_to_end.fit_end_to_end(
        model,
        audio,
        data.rows[train],
        labels.targets[train],
        data.rows[val_draw],
        labels.targets[val_draw],
        steps=cfg.e2e_steps,
        batch_size=cfg.e2e_batch_size,
        lr=cfg.e2e_lr,
        val_every=cfg.e2e_val_every,
        seed=seed,
    )
    p_val = end_to_end.predict_audio(model, audio, data.rows[val], True) if labels.multilabel else None
    return fit, p_val, end_to_end.predict_audio(model, audio, data.rows[test], labels.multilabel)


def run_downstream(
    index_dir: str | Path,
    embeddings: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    metrics_dir: str | Path,
    cfg: DownstreamConfig,
    tracker=None,
) -> dict:
    """Train and score every cell; write the folders described above (atomically)."""
    check_config(cfg)
    index_dir, embeddings, model_dir = Path(index_dir), Path(embeddings), Path(model_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    keys = pd.read_parquet(embeddings / "keys.parquet")
    windows, tracks = load_windows(index_dir, ("train", "val", "test"))
    if not keys[["id", "start"]].equals(windows[["id", "start"]]):
        raise ValueError(f"{embeddings}: its windows are not the index's: rerun the embed stage")
    notes = pd.read_parquet(index_dir / "notes.parquet")
    audio = end_to_end.AudioBatches(windows, tracks)
    cache: dict = {}
    records, summary = [], {}
    began = time.perf_counter()
    with atomic_dir(out_dir) as out, atomic_dir(metrics_dir) as metrics_out:
        excerpt: dict[str, np.ndarray] = {}
        for task in cfg.tasks:
            data = TaskData(task, keys, tracks, notes)
            train, val, test = data.part("train"), data.part("val"), data.part("test")
            if len(train) == 0 or len(test) == 0:
                raise ValueError(f"{index_dir}: task {task!r} needs train and test windows")
            curves: dict[str, dict[float, float]] = {}
            for method in methods(cfg, task):
                seeds, fractions = _budget(cfg, method, data.labels.framewise)
                curves[method.name] = {}
                for fraction in fractions:
                    per_seed = []
                    for seed in seeds:
                        labelled = train[
                            label_subset(
                                data.keys["id"].to_numpy()[train], data.labels.strata[train], fraction, seed
                            )
                        ]
                        fit, p_val, p_test = train_cell(
                            data, method, labelled, val, test, cfg, seed, embeddings, model_dir, cache, audio
                        )
                        scores, confusion = score(data, val, p_val, test, p_test)
                        per_seed.append(scores)
                        cell = {
                            "task": task,
                            "method": method.name,
                            "feature": method.feature,
                            "head": method.head,
                            "fraction": fraction,
                            "seed": seed,
                            "train_windows": len(labelled),
                            "train_tracks": int(data.keys["id"].iloc[labelled].nunique()),
                            "best_epoch": fit.best,
                        }
                        records += [cell | {"metric": k, "value": v} for k, v in scores.items()]
                        if tracker is not None:
                            tracker.child_run(
                                f"{task}/{method.name}/{fraction_name(fraction)}/seed{seed}",
                                {k: v for k, v in cell.items() if k != "best_epoch"},
                                scores | {"best_epoch": fit.best},
                                fit.curves,
                            )
                        if fraction == 1 and seed == seeds[0]:
                            if confusion is not None:
                                _write_json(
                                    out / "confusion" / task / f"{method.name}.json",
                                    {"classes": list(data.labels.classes), "matrix": confusion.tolist()},
                                )
                            if task == "transcription":
                                _keep_excerpt(excerpt, data, test, p_test, method, cfg.excerpt_windows)
                    cell_summary = _summarize(per_seed, len(labelled))
                    _write_json(
                        metrics_out / task / method.name / f"{fraction_name(fraction)}.json", cell_summary
                    )
                    mean = cell_summary["mean"][HEADLINE[task]]
                    curves[method.name][fraction] = mean
                    summary[f"{task}_{method.name}_{fraction_name(fraction)}"] = mean
                    log.info(
                        "%s %s %s: %s %.3f", task, method.name, fraction_name(fraction), HEADLINE[task], mean
                    )
            # One table per task, a column per known method (empty if not run): dvc.yaml's plots
            # name them all, and `dvc plots show` draws a line per column.
            (out / "plots").mkdir(exist_ok=True)
            table = pd.DataFrame(curves, columns=ALL_METHODS).rename_axis("fraction").sort_index()
            table.to_csv(out / "plots" / f"{task}.csv", float_format="%.6g")
        pd.DataFrame(records).to_parquet(out / "results.parquet", index=False)
        if excerpt:
            np.savez_compressed(out / "excerpt.npz", **excerpt)
    summary["models"] = len({(r["task"], r["method"], r["fraction"], r["seed"]) for r in records})
    summary["minutes"] = (time.perf_counter() - began) / 60
    return summary


def _budget(
    cfg: DownstreamConfig, method: Method, framewise: bool
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(seeds, label fractions) a method is trained at: the demo's budget lives in params."""
    if method.kind != "probe":
        return cfg.end_to_end_seeds, cfg.end_to_end_fractions
    return (cfg.transcription_seeds if framewise else cfg.seeds), cfg.fractions


def _summarize(per_seed: list[dict], train_windows: int) -> dict:
    names = per_seed[0].keys()
    return {
        "mean": {k: float(np.mean([s[k] for s in per_seed])) for k in names},
        "std": {k: float(np.std([s[k] for s in per_seed])) for k in names},
        "seeds": len(per_seed),
        "train_windows": train_windows,
    }


def _keep_excerpt(
    excerpt: dict, data: TaskData, test: np.ndarray, p_test: np.ndarray, method: Method, n: int
):
    """The first `n` contiguous test windows of one track: true roll and this method's probabilities."""
    rows = data.excerpts()[0][0][:n]
    position = {row: i for i, row in enumerate(test)}
    if "truth" not in excerpt:
        excerpt["truth"] = data.labels.targets[rows].reshape(-1, data.labels.targets.shape[-1])
        excerpt["track"] = np.array(int(data.keys["id"].iat[rows[0]]))
        excerpt["start"] = np.array(int(data.keys["start"].iat[rows[0]]))
    excerpt[method.name] = (
        p_test[[position[r] for r in rows]].reshape(-1, p_test.shape[-1]).astype(np.float16)
    )


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
