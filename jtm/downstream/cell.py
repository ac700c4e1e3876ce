"""Stages `probe`, `probe_fixed` and `end_to_end`: the cells of the downstream study
(jtm/downstream/design.py). A probe job trains one run's (or the fixed features') probes on
every task, a cell per task; an end-to-end job is one cell.

A cell trains one model per method, label budget and seed on a seeded, stratified, by-track
subset of the labelled train windows (jtm/downstream/subsets.py), selects on the validation
split by the task's headline metric, and scores each part of the test split once (recordings
under conditions seen in training, and under unseen ones; or all of them, where the corpus does
not say). For the bootstrap it also keeps each model's per-unit statistics of the test split
(jtm/downstream/bootstrap.py; a unit is a work or track within a part). A
task's probes share a cell (they share the loaded labels, and each trains in about a second
on the demo), and a run's cells share a job: a job costs ~7 s of start-up (torch, MLflow, DVC),
more than most cells' work. Jobs are independent (a DVC matrix, Snakemake wildcards), so a
cluster runs them side by side; stage `downstream` (jtm/downstream/collect.py) gathers them.

A cell's folder, ``<cells>/run<r>/<probes or init>/<task>/`` or ``<cells>/fixed/probes/<task>/``::

    scores.parquet             task, method, feature, head, budget, seed, train_tracks,
                               train_windows, train_frames, train_classes, train_strata,
                               l2, val_score, part, test_tracks, test_windows,
                               binning_error, metric, value: every model and part, long
    stats.npz                  units (names of the test units, "<part>|<unit>"), and per model
                               "<method>|<budget>|<seed>": (units, k) headline statistics
    confusion/<method>.json    classification: classes, matrix (all labels, first seed, every
                               test window)
    excerpt.npz                transcription: a test excerpt's true roll (truth, track, start)
                               and each method's probabilities (all labels, first seed)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from jtm.atomic import atomic_dir, write_json
from jtm.config import DownstreamConfig
from jtm.downstream.design import Method, budget
from jtm.downstream.inputs import CellInputs, TaskData, load_cell
from jtm.downstream.memory import check_probe_memory
from jtm.downstream.metrics import HEADLINE
from jtm.downstream.model import one_model
from jtm.downstream.parts import ALL
from jtm.downstream.subsets import label_subset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One model of a cell: a method at a label budget and seed. `full`: compute every metric
    (the largest budget; smaller ones score transcription's headline alone); `keep`: the model
    whose confusion matrix and excerpt the report shows (largest budget, first seed)."""

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
    run: int = 0,
) -> dict:
    """Train and score one cell's methods at every label budget and seed; write `out_dir`
    atomically (the folder described above).

    Probes read `embeddings` and train in `threads` processes of one torch thread each (a
    probe is too small for two threads to help); end-to-end baselines read the audio and
    (finetune) `model_dir`, in one process of `threads` threads; `run` (the pretraining run's
    number) offsets their seeds (jtm/downstream/model.py).
    """
    if not trained:  # e.g. the fixed features' cell of a study without log-mel: nothing to train
        with atomic_dir(out_dir):
            pass
        return {"models": 0}
    cell = load_cell(
        Path(index_dir),
        Path(embeddings) if embeddings else None,
        Path(model_dir) if model_dir else None,
        task,
        probes=trained[0].kind == "probe",
        unit=cfg.bootstrap_unit,
        run=run,
    )
    jobs = cell_jobs(cfg, trained, cell.data.labels.framewise)
    probes = trained[0].kind == "probe"
    if probes:
        check_probe_memory(cell, sorted({m.feature for m in trained}), cfg, cfg.threads)
    began = time.perf_counter()
    outcomes = _run_jobs(cell, jobs, cfg, processes=cfg.threads if probes else 1)
    records, excerpt, stats, headline = [], {}, {}, {}
    with atomic_dir(out_dir) as out:
        for job, outcome in zip(jobs, outcomes, strict=True):
            rows, scores, record, curves, confusion, p_test, (units, unit_stats) = outcome
            stats["units"], stats[f"{job.method.name}|{record['budget']}|{job.seed}"] = units, unit_stats
            records += rows
            for row in rows:
                if row["metric"] == HEADLINE[task]:
                    part = "" if row["part"] == ALL else f"{row['part']}_"
                    key = f"{job.method.name}_{part}{HEADLINE[task]}_{record['budget']}"
                    headline.setdefault(key, []).append(row["value"])
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


def run_task_cells(
    index_dir: str | Path,
    embeddings: str | Path,
    out_dir: str | Path,
    cfg: DownstreamConfig,
    trained: dict[str, list[Method]],
    tracker=None,
    run: int = 0,
) -> dict:
    """Every task's probe cell of one job (`trained`: task -> its methods) into
    `out_dir/<task>/`, the folder written atomically as a whole; the cells' summaries, keys
    prefixed with their task."""
    summary = {}
    with atomic_dir(out_dir) as out:
        for task, methods in trained.items():
            found = run_cell(index_dir, embeddings, None, out / task, cfg, task, methods, tracker, run)
            summary |= {f"{task}_{key}": value for key, value in found.items()}
    return summary


_FORKED: dict = {}  # what forked probe workers read: the cell, the params


def _run_jobs(cell: CellInputs, jobs: list[Job], cfg: DownstreamConfig, processes: int) -> list[tuple]:
    """Each job's outcome (see `one_model`), in job order. A linear probe's optimum does not
    depend on its seed: jobs that differ only by seed on the same labelled tracks (the `all`
    budget) train once. Workers are forked before any torch computation (no thread pool to
    inherit) and run one torch thread each, so a result does not depend on which worker ran it
    (it does on the thread count: `threads` is part of the cell's params)."""
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

            # torch.optim imports torch._dynamo (~1.5 s) on an optimiser's first use: imported
            # once here, every pool's workers inherit it instead of each importing it again.
            import torch._dynamo as _dynamo  # noqa: F401

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
    outcome = one_model(cell, job.method, _FORKED["labelled"][i], job.budget, job.seed, cfg, job.full)
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
