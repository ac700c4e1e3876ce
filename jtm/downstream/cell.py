"""Stages `probe` and `end_to_end`: one cell of the downstream study (jtm/downstream/design.py)
per job.

A cell trains one model per method, label budget and seed on a seeded, stratified, by-track
subset of the labelled train windows (jtm/downstream/subsets.py), selects on the validation
split by the task's headline metric, and scores the test split once. For the bootstrap it also
keeps each model's per-unit statistics of the test split (jtm/downstream/bootstrap.py). A
task's probes share a cell (they share the loaded labels, and each trains in about a second
on the demo). Cells are independent jobs (a DVC matrix, Snakemake wildcards), so
a cluster runs them side by side; stage `downstream` (jtm/downstream/collect.py) gathers them.

A cell's folder, ``<cells>/<task>/<probes or init>/``::

    scores.parquet             task, method, feature, head, budget, seed, train_tracks,
                               train_windows, train_frames, train_classes, train_strata,
                               test_tracks, test_windows, l2, val_score, binning_error,
                               metric, value: every model, long
    stats.npz                  units (names of the test units), and per model
                               "<method>|<budget>|<seed>": (units, k) headline statistics
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
from jtm.downstream import bootstrap, end_to_end
from jtm.downstream.design import Method, budget
from jtm.downstream.labels import SAMPLE_RATE, TaskLabels, non_overlapping, task_labels
from jtm.downstream.metrics import (
    HEADLINE,
    best_threshold,
    classification_scores,
    multilabel_scores,
    transcription_scores,
)
from jtm.downstream.probe import Fit, fit_path, predict
from jtm.downstream.subsets import budget_contents, budget_name, label_subset
from jtm.errors import DataError
from jtm.features.embed import load_embeddings
from jtm.models.encoder import DOWNSAMPLING

log = logging.getLogger(__name__)


class TaskData:
    """One task's windows (rows of the embeddings' keys), targets and splits."""

    def __init__(self, task: str, keys: pd.DataFrame, tracks: pd.DataFrame, notes: pd.DataFrame, unit: str):
        rows = np.arange(len(keys))
        if task == "transcription":  # every frame trained on and scored once
            rows = rows[non_overlapping(keys)]
        self.keys = keys.iloc[rows].reset_index(drop=True)
        self.rows = rows
        self.labels: TaskLabels = task_labels(task, self.keys, tracks, notes)
        # The instruments each window holds: what a multi-label budget must cover.
        self.present = (
            task_labels("instruments", self.keys, tracks, notes).targets if self.labels.multilabel else None
        )
        self.split = self.keys["split"].to_numpy()
        self.notes = notes
        self._excerpts = None
        meta = self.keys[["id"]].merge(tracks[["id", "composer", "catalog_name"]], on="id", how="left")
        work = meta["composer"].astype(str) + " / " + meta["catalog_name"].astype(str)
        self.unit_names = (work if unit == "work" else meta["id"].astype(str)).to_numpy().astype(str)

    def excerpts(self) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        """The test split's contiguous runs of windows (see `_excerpts`), computed once."""
        if self._excerpts is None:
            self._excerpts = _excerpts(self, self.part("test"))
        return self._excerpts

    def part(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def _features(
    cache: dict, folder: Path, feature: str, framewise: bool, rows: np.ndarray, stride: int = 1
) -> np.ndarray:
    """(n, dim) inputs of a probe: pooled windows, or every `stride`-th frame of the windows."""
    if feature not in cache:
        cache[feature] = load_embeddings(folder, feature)[1:]
    frames, pooled = cache[feature]
    if not framewise:
        return pooled[rows]
    return np.asarray(frames[rows][:, ::stride], dtype=np.float32).reshape(-1, frames.shape[-1])


def _flat(targets: np.ndarray, framewise: bool, stride: int = 1) -> np.ndarray:
    return targets[:, ::stride].reshape(-1, targets.shape[-1]) if framewise else targets


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


def headline_value(labels: TaskLabels, rows: np.ndarray, probs: np.ndarray, stride: int = 1) -> float:
    """The task's headline metric of `probs` on `rows` (every `stride`-th frame for
    transcription): accuracy, or micro-AP (binned, see jtm/downstream/bootstrap.py: it selects
    models on validation, where exactness is moot)."""
    truth = labels.targets[rows][:, ::stride] if labels.framewise else labels.targets[rows]
    if len(rows) == 0:  # no validation split: every strength ties, the strongest is kept
        return 0.0
    if not labels.multilabel:
        return float((probs.argmax(1) == truth).mean())
    one = np.zeros(len(rows), dtype=np.int64)
    return float(
        bootstrap.ap_from_stats(bootstrap.ap_stats(truth, probs, one, 1, bootstrap.ap_edges(truth, probs))[0])
    )


def test_stats(data: TaskData, test: np.ndarray, p_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit names, (units, k) headline statistics of the test predictions per unit)."""
    names, units = np.unique(data.unit_names[test], return_inverse=True)
    truth = data.labels.targets[test]
    if not data.labels.multilabel:
        return names, bootstrap.accuracy_stats(truth, p_test, units, len(names))
    return names, bootstrap.ap_stats(truth, p_test, units, len(names), bootstrap.ap_edges(truth, p_test))


def score(
    data: TaskData,
    val: np.ndarray,
    p_val: np.ndarray,
    test: np.ndarray,
    p_test: np.ndarray,
    full: bool = True,
):
    """(scores, confusion matrix or None) of test probabilities; thresholds chosen on val.
    Transcription computes mir_eval's metrics (seconds a model) only when `full`; otherwise
    the headline micro-AP alone."""
    labels = data.labels
    if not labels.multilabel:
        return classification_scores(labels.targets[test], p_test)
    threshold = best_threshold(labels.targets[val], p_val) if len(val) else 0.5
    if labels.task == "instruments":
        return multilabel_scores(labels.targets[test], p_test, threshold), None
    if not full:
        from sklearn.metrics import average_precision_score

        micro_ap = average_precision_score(labels.targets[test].ravel(), p_test.ravel())
        return {"micro_ap": float(micro_ap), "threshold": threshold}, None
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


def load_cell(
    index_dir: Path,
    embeddings: Path | None,
    model_dir: Path | None,
    task: str,
    probes: bool,
    unit: str = "work",
):
    """The CellInputs of a task: probes read `embeddings` (checked against the index), end-to-end
    baselines the audio."""
    windows, tracks = load_windows(index_dir, ("train", "val", "test"))
    keys = windows[["id", "start", "length", "split"]]
    if probes:
        embedded = pd.read_parquet(embeddings / "keys.parquet")
        if not embedded[["id", "start"]].equals(keys[["id", "start"]]):
            raise DataError(embeddings, "its windows are not the index's: rerun the embed stage")
    data = TaskData(task, keys, tracks, pd.read_parquet(index_dir / "notes.parquet"), unit)
    train, val, test = data.part("train"), data.part("val"), data.part("test")
    if len(train) == 0 or len(test) == 0:
        raise DataError(index_dir, f"task {task!r} needs train and test windows")
    audio = None if probes else end_to_end.AudioBatches(windows, tracks)
    return CellInputs(data, train, val, test, embeddings, model_dir, audio)


def train_model(cell: CellInputs, method: Method, train: np.ndarray, cfg: DownstreamConfig, seed: int):
    """(fit, val probabilities, test probabilities) of one model on the labelled rows `train`."""
    data, val, test, audio, model_dir = cell.data, cell.val, cell.test, cell.audio, cell.model_dir
    labels = data.labels
    outputs = len(labels.classes)
    framewise = labels.framewise
    if method.kind == "probe":
        return _train_probe(cell, method, train, cfg, seed)
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
    p_val = end_to_end.predict_audio(model, audio, data.rows[val], labels.multilabel)
    return fit, p_val, end_to_end.predict_audio(model, audio, data.rows[test], labels.multilabel)


def _train_probe(cell: CellInputs, method: Method, train: np.ndarray, cfg: DownstreamConfig, seed: int):
    """(fit, val probabilities, test probabilities) of the probe whose L2 strength scores best
    on validation (the strongest among ties); `fit.curves` holds each strength's score.
    Transcription trains and selects on every `frame_stride`-th frame (100 Hz frames are near
    duplicates of their neighbours) and scores every test frame."""
    data, labels = cell.data, cell.data.labels
    outputs, framewise = len(labels.classes), labels.framewise
    stride = cfg.frame_stride if framewise else 1

    def inputs(rows, stride=1):
        return _features(cell.cache, cell.embeddings, method.feature, framewise, data.rows[rows], stride)

    def probs(model, x, n):
        p = predict(model, x, labels.multilabel)
        return p.reshape(n, -1, outputs) if framewise else p

    path = fit_path(
        inputs(train, stride),
        _flat(labels.targets[train], framewise, stride),
        method.head,
        outputs,
        hidden=cfg.mlp_hidden,
        l2_grid=cfg.l2_grid,
        max_iter=cfg.max_iter,
        seed=seed,
    )
    x_val = inputs(cell.val, stride)
    val_scores = [
        headline_value(labels, cell.val, probs(model, x_val, len(cell.val)), stride) for _, model, _ in path
    ]
    best = int(np.argmax(val_scores))
    curves = {
        "l2": [l2 for l2, _, _ in path],
        "val_score": val_scores,
        "iterations": [len(o) for _, _, o in path],
    }
    model = path[best][1]
    p_val = probs(model, inputs(cell.val), len(cell.val))  # every frame: thresholds
    return Fit(model, curves, best), p_val, probs(model, inputs(cell.test), len(cell.test))


@dataclass(frozen=True)
class Job:
    """One model of a cell: a method at a label budget and seed; `keep` marks the model whose
    confusion matrix and excerpt the report shows (largest budget, first seed)."""

    method: Method
    budget: int | str
    seed: int
    full: bool
    keep: bool


def cell_jobs(cfg: DownstreamConfig, trained: list[Method], framewise: bool) -> list[Job]:
    jobs = []
    for method in trained:
        seeds, budgets = budget(cfg, method, framewise)
        for b in budgets:
            jobs += [Job(method, b, s, b == budgets[-1], b == budgets[-1] and s == seeds[0]) for s in seeds]
    return jobs


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
    """Train and score one cell's methods at every label budget and seed; write `out_dir`
    atomically (the folder described above).

    Probes read `embeddings` and train in `threads` processes of one torch thread each (a
    probe is too small for two threads to help); end-to-end baselines read the audio and
    (finetune) `model_dir`, in one process of `threads` threads.
    """
    cell = load_cell(
        Path(index_dir),
        Path(embeddings) if embeddings else None,
        Path(model_dir) if model_dir else None,
        task,
        probes=trained[0].kind == "probe",
        unit=cfg.bootstrap_unit,
    )
    jobs = cell_jobs(cfg, trained, cell.data.labels.framewise)
    began = time.perf_counter()
    outcomes = _run_jobs(cell, jobs, cfg, processes=cfg.threads if trained[0].kind == "probe" else 1)
    records, excerpt, stats, headline = [], {}, {}, {}
    with atomic_dir(out_dir) as out:
        for job, outcome in zip(jobs, outcomes, strict=True):
            rows, scores, record, curves, confusion, p_test, (units, unit_stats) = outcome
            stats["units"], stats[f"{job.method.name}|{record['budget']}|{job.seed}"] = units, unit_stats
            records += rows
            headline.setdefault(f"{job.method.name}_{HEADLINE[task]}_{record['budget']}", []).append(
                scores[HEADLINE[task]]
            )
            if tracker is not None:
                name = f"{task}/{job.method.name}/{record['budget']}/seed{job.seed}"
                tracker.child_run(name, record, scores, curves)
            if job.keep:
                _keep_examples(out, excerpt, cell, job.method, confusion, p_test, cfg.excerpt_windows)
        pd.DataFrame(records).to_parquet(out / "scores.parquet", index=False)
        np.savez_compressed(out / "stats.npz", **stats)
        if excerpt:
            np.savez_compressed(out / "excerpt.npz", **excerpt)
    summary = {"models": len(jobs)} | {k: float(np.mean(v)) for k, v in headline.items()}
    for key, value in summary.items():
        log.info("%s %s: %s", task, key, value)
    summary["minutes"] = (time.perf_counter() - began) / 60
    return summary


_FORKED: dict = {}  # what forked probe workers read: the cell, the params


def _run_jobs(cell: CellInputs, jobs: list[Job], cfg: DownstreamConfig, processes: int) -> list[tuple]:
    """Each job's outcome (see `_one_model`), in job order. A linear probe's optimum does not
    depend on its seed: jobs that differ only by seed on the same labelled tracks (the `all`
    budget) train once. Workers are forked before any torch computation (no thread pool to
    inherit) and run one torch thread each, so results equal a one-process run's."""
    labelled = [cell.train[_draw(cell, job.budget, job.seed)] for job in jobs]
    keys = [
        (job.method.name, job.budget, labelled[i].tobytes())
        if job.method.head == "linear" and job.method.kind == "probe"
        else i
        for i, job in enumerate(jobs)
    ]
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    unique = sorted(set(first.values()))
    _FORKED.update(cell=cell, cfg=cfg, jobs=jobs, labelled=labelled)
    try:
        if processes > 1 and len(unique) > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(
                processes, initializer=torch.set_num_threads, initargs=(1,)
            ) as pool:
                done = dict(zip(unique, pool.map(_job, unique, chunksize=1), strict=True))
        else:
            if cfg.threads > 0:
                torch.set_num_threads(cfg.threads)
            done = {i: _job(i) for i in unique}
    finally:
        _FORKED.clear()
    return [_as_seed(done[first[key]], jobs[i]) for i, key in enumerate(keys)]


def _job(i: int) -> tuple:
    cell, cfg, job = _FORKED["cell"], _FORKED["cfg"], _FORKED["jobs"][i]
    outcome = _one_model(cell, job.method, _FORKED["labelled"][i], job.budget, job.seed, cfg, job.full)
    return outcome if job.keep else outcome[:5] + (None,) + outcome[6:]  # test probabilities: only where kept


def _as_seed(outcome: tuple, job: Job) -> tuple:
    """A shared outcome relabelled with this job's seed."""
    rows, scores, record, *rest = outcome
    if record["seed"] == job.seed:
        return outcome
    record = record | {"seed": job.seed}
    return ([r | {"seed": job.seed} for r in rows], scores, record, *rest)


def _draw(cell: CellInputs, label_budget, seed: int) -> np.ndarray:
    """(train windows,) bool: the labelled windows of one budget and seed."""
    train = cell.train
    present = cell.data.present[train] if cell.data.present is not None else None
    tracks_of = cell.data.keys["id"].to_numpy()[train]
    return label_subset(tracks_of, cell.data.labels.strata[train], label_budget, seed, present)


def _one_model(
    cell: CellInputs, method: Method, labelled: np.ndarray, label_budget, seed: int, cfg, full: bool
):
    """Train one model on the rows `labelled` and score it on test: (its long rows of
    scores.parquet, scores, record, curves, confusion matrix or None, test probabilities,
    (test unit names, per-unit statistics))."""
    fit, p_val, p_test = train_model(cell, method, labelled, cfg, seed)
    scores, confusion = score(cell.data, cell.val, p_val, cell.test, p_test, full)
    labels = cell.data.labels
    task = labels.task
    held = budget_contents(
        cell.data.keys["id"].to_numpy()[labelled],
        cell.data.present[labelled] if cell.data.present is not None else labels.targets[labelled],
        np.ones(len(labelled), dtype=bool),
    )
    units, unit_stats = test_stats(cell.data, cell.test, p_test)
    binned = bootstrap.from_stats(bootstrap.KINDS[HEADLINE[task]], unit_stats.sum(0))
    record = {
        "task": task,
        "method": method.name,
        "feature": method.feature,
        "head": method.head,
        "budget": budget_name(label_budget),
        "seed": seed,
        "train_tracks": held["tracks"],
        "train_windows": held["windows"],
        "train_frames": held["windows"] * labels.targets.shape[1] if labels.framewise else held["windows"],
        "train_classes": held["classes"],
        "train_strata": len(np.unique(labels.strata[labelled])),
        "test_tracks": int(cell.data.keys["id"].iloc[cell.test].nunique()),
        "test_windows": len(cell.test),
        "l2": fit.curves["l2"][fit.best] if "l2" in fit.curves else float("nan"),
        "val_score": headline_value(labels, cell.val, p_val),
        "binning_error": float(binned - scores[HEADLINE[task]]),
    }
    rows = [record | {"metric": k, "value": v} for k, v in scores.items()]
    return rows, scores, record, fit.curves, confusion, p_test, (units, unit_stats)


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
