"""Stages `probe` and `end_to_end`: one cell of the downstream study (jtm/downstream/design.py)
per job.

A cell trains one model per method, label fraction and seed on a seeded, stratified, by-track
subset of the labelled train windows, selects on the validation split, and scores the test
split once. A task's probes share a cell (they share the loaded labels, and each trains in well
under a second on the demo). Cells are independent jobs (a DVC matrix, Snakemake wildcards), so
a cluster runs them side by side; stage `downstream` (jtm/downstream/collect.py) gathers them.

A cell's folder, ``<cells>/<task>/<probes or init>/``::

    scores.parquet             task, method, feature, head, fraction, seed, train_windows,
                               train_tracks, best_epoch, metric, value: every model, long
    confusion/<method>.json    classification: classes, matrix (all labels, first seed)
    excerpt.npz                transcription: a test excerpt's true roll (truth, track, start)
                               and each method's probabilities (all labels, first seed)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from jtm.atomic import atomic_dir
from jtm.config import DownstreamConfig
from jtm.data.windows import load_windows
from jtm.downstream import end_to_end
from jtm.downstream.design import Method, budget, fraction_name
from jtm.downstream.labels import SAMPLE_RATE, TaskLabels, non_overlapping, task_labels
from jtm.downstream.metrics import (
    HEADLINE,
    best_threshold,
    classification_scores,
    multilabel_scores,
    transcription_scores,
)
from jtm.downstream.probe import fit_probe, predict
from jtm.downstream.subsets import label_subset
from jtm.errors import DataError
from jtm.features.embed import load_embeddings
from jtm.models.encoder import DOWNSAMPLING

log = logging.getLogger(__name__)


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


@dataclass
class CellInputs:
    """What every model of a cell reads: the task's windows and splits (rows of `data`), the
    embeddings folder (probes), the model folder and audio (end-to-end), loaded features."""

    data: TaskData
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    embeddings: Path | None
    model_dir: Path | None
    audio: end_to_end.AudioBatches | None
    cache: dict = field(default_factory=dict)


def load_cell(index_dir: Path, embeddings: Path | None, model_dir: Path | None, task: str, probes: bool):
    """The CellInputs of a task: probes read `embeddings` (checked against the index), end-to-end
    baselines the audio."""
    windows, tracks = load_windows(index_dir, ("train", "val", "test"))
    keys = windows[["id", "start", "length", "split"]]
    if probes:
        embedded = pd.read_parquet(embeddings / "keys.parquet")
        if not embedded[["id", "start"]].equals(keys[["id", "start"]]):
            raise DataError(embeddings, "its windows are not the index's: rerun the embed stage")
    data = TaskData(task, keys, tracks, pd.read_parquet(index_dir / "notes.parquet"))
    train, val, test = data.part("train"), data.part("val"), data.part("test")
    if len(train) == 0 or len(test) == 0:
        raise DataError(index_dir, f"task {task!r} needs train and test windows")
    audio = None if probes else end_to_end.AudioBatches(windows, tracks)
    return CellInputs(data, train, val, test, embeddings, model_dir, audio)


def train_model(cell: CellInputs, method: Method, train: np.ndarray, cfg: DownstreamConfig, seed: int):
    """(fit, val probabilities, test probabilities) of one model on the labelled rows `train`."""
    data, val, test, cache, audio = cell.data, cell.val, cell.test, cell.cache, cell.audio
    embeddings, model_dir = cell.embeddings, cell.model_dir
    labels = data.labels
    outputs = len(labels.classes)
    framewise = labels.framewise
    if method.kind == "probe":

        def inputs(rows):
            return _features(cache, embeddings, method.feature, framewise, data.rows[rows])

        x_val = inputs(val)  # fit on it (early stopping), then predict it (thresholds)
        fit = fit_probe(
            inputs(train),
            _flat(labels.targets[train], framewise),
            x_val,
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

        def probs(x, n):
            p = predict(fit.model, x, labels.multilabel)
            return p.reshape(n, -1, outputs) if framewise else p

        p_val = probs(x_val, len(val)) if labels.multilabel else None
        return fit, p_val, probs(inputs(test), len(test))
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


def run_cell(
    index_dir: str | Path,
    embeddings: str | Path | None,
    model_dir: str | Path | None,
    out_dir: str | Path,
    cfg: DownstreamConfig,
    task: str,
    trained: list[Method],
    tracker=None,
) -> dict:
    """Train and score one cell's methods at every label fraction and seed; write `out_dir`
    atomically (the folder described above).

    Probes read `embeddings`; end-to-end baselines read the audio and (finetune) `model_dir`.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    cell = load_cell(
        Path(index_dir),
        Path(embeddings) if embeddings else None,
        Path(model_dir) if model_dir else None,
        task,
        probes=trained[0].kind == "probe",
    )
    records, summary, excerpt = [], {"models": 0}, {}
    began = time.perf_counter()
    with atomic_dir(out_dir) as out:
        tracks_of, strata = cell.data.keys["id"].to_numpy()[cell.train], cell.data.labels.strata[cell.train]
        for method in trained:
            seeds, fractions = budget(cfg, method, cell.data.labels.framewise)
            for fraction in fractions:
                headline = []
                for seed in seeds:
                    labelled = cell.train[label_subset(tracks_of, strata, fraction, seed)]
                    rows, scores, confusion, p_test = _one_model(
                        cell, method, labelled, fraction, seed, cfg, tracker
                    )
                    records += rows
                    headline.append(scores[HEADLINE[task]])
                    if fraction == 1 and seed == seeds[0]:
                        _keep_examples(out, excerpt, cell, method, confusion, p_test, cfg.excerpt_windows)
                key = f"{method.name}_{HEADLINE[task]}_{fraction_name(fraction)}"
                summary[key] = float(np.mean(headline))
                log.info(
                    "%s %s %s: %s %.3f",
                    task,
                    method.name,
                    fraction_name(fraction),
                    HEADLINE[task],
                    summary[key],
                )
            summary["models"] += len(seeds) * len(fractions)
        pd.DataFrame(records).to_parquet(out / "scores.parquet", index=False)
        if excerpt:
            np.savez_compressed(out / "excerpt.npz", **excerpt)
    summary["minutes"] = (time.perf_counter() - began) / 60
    return summary


def _one_model(
    cell: CellInputs, method: Method, labelled: np.ndarray, fraction: float, seed: int, cfg, tracker
):
    """Train one model on the rows `labelled`, score it on test, record it (an MLflow child run):
    (its long rows of scores.parquet, scores, confusion matrix or None, test probabilities)."""
    fit, p_val, p_test = train_model(cell, method, labelled, cfg, seed)
    scores, confusion = score(cell.data, cell.val, p_val, cell.test, p_test)
    task = cell.data.labels.task
    record = {
        "task": task,
        "method": method.name,
        "feature": method.feature,
        "head": method.head,
        "fraction": fraction,
        "seed": seed,
        "train_windows": len(labelled),
        "train_tracks": int(cell.data.keys["id"].iloc[labelled].nunique()),
        "best_epoch": fit.best,
    }
    if tracker is not None:
        tracker.child_run(
            f"{task}/{method.name}/{fraction_name(fraction)}/seed{seed}",
            {k: v for k, v in record.items() if k != "best_epoch"},
            scores | {"best_epoch": fit.best},
            fit.curves,
        )
    return [record | {"metric": k, "value": v} for k, v in scores.items()], scores, confusion, p_test


def _keep_examples(
    out: Path, excerpt: dict, cell: CellInputs, method: Method, confusion, p_test, n: int
) -> None:
    """What the report shows of a method (all labels, first seed): its confusion matrix, or its
    transcription of a test excerpt."""
    if confusion is not None:
        write_json(
            out / "confusion" / f"{method.name}.json",
            {"classes": list(cell.data.labels.classes), "matrix": confusion.tolist()},
        )
    if cell.data.labels.task == "transcription":
        _keep_excerpt(excerpt, cell.data, cell.test, p_test, method, n)


def _keep_excerpt(
    excerpt: dict, data: TaskData, test: np.ndarray, p_test: np.ndarray, method: Method, n: int
) -> None:
    """The first `n` contiguous test windows of one track: true roll and this method's probabilities."""
    rows = data.excerpts()[0][0][:n]
    position = {row: i for i, row in enumerate(test)}
    pitches = data.labels.targets.shape[-1]
    if "truth" not in excerpt:
        excerpt["truth"] = data.labels.targets[rows].reshape(-1, pitches)
        excerpt["track"] = np.array(int(data.keys["id"].iat[rows[0]]))
        excerpt["start"] = np.array(int(data.keys["start"].iat[rows[0]]))
    excerpt[method.name] = p_test[[position[r] for r in rows]].reshape(-1, pitches).astype(np.float16)


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
