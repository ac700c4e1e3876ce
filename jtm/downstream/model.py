"""One model of the study: trained on a label budget's windows, selected on validation, scored
on test, with its per-unit test statistics for the bootstrap (jtm/downstream/bootstrap.py)."""

from __future__ import annotations

import numpy as np

from jtm.config import DownstreamConfig
from jtm.devices import resolve_device
from jtm.downstream import bootstrap, end_to_end
from jtm.downstream.design import Method
from jtm.downstream.inputs import CellInputs, TaskData, flat_targets, probe_inputs
from jtm.downstream.labels import TaskLabels
from jtm.downstream.metrics import (
    HEADLINE,
    best_threshold,
    classification_scores,
    multilabel_scores,
    transcription_scores,
)
from jtm.downstream.parts import ALL, PART_SEPARATOR, test_parts
from jtm.downstream.probe import Fit, fit_path, predict
from jtm.downstream.subsets import budget_contents, budget_name


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


def unit_statistics(data: TaskData, test: np.ndarray, p_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit names, (units, k) headline statistics of the test predictions per unit)."""
    names, units = np.unique(data.unit_names[test], return_inverse=True)
    truth = data.labels.targets[test]
    if not data.labels.multilabel:
        return names, bootstrap.accuracy_stats(truth, p_test, units, len(names))
    return names, bootstrap.ap_stats(truth, p_test, units, len(names), bootstrap.ap_edges(truth, p_test))


def val_threshold(labels: TaskLabels, val: np.ndarray, p_val: np.ndarray) -> float | None:
    """The multi-label decision threshold, chosen on the validation rows `val` (None for a
    classification task; 0.5 without a validation split)."""
    if not labels.multilabel:
        return None
    return best_threshold(labels.targets[val], p_val) if len(val) else 0.5


def score(data: TaskData, threshold: float | None, test: np.ndarray, p_test: np.ndarray, full: bool = True):
    """(scores, confusion matrix or None) of test probabilities; `threshold` from
    `val_threshold`. Transcription computes mir_eval's metrics (seconds a model) only when
    `full`; otherwise the headline micro-AP alone."""
    labels = data.labels
    if not labels.multilabel:
        return classification_scores(labels.targets[test], p_test)
    if labels.task == "instruments":
        return multilabel_scores(labels.targets[test], p_test, threshold), None
    if not full:
        from sklearn.metrics import average_precision_score

        micro_ap = average_precision_score(labels.targets[test].ravel(), p_test.ravel())
        return {"micro_ap": float(micro_ap), "threshold": threshold}, None
    position = {row: i for i, row in enumerate(test)}
    excerpts = [e for e in data.excerpts() if e[0][0] in position]  # this part's (an excerpt is one track)
    rolls_true = [labels.targets[rows].reshape(-1, labels.targets.shape[-1]) for rows, _ in excerpts]
    rolls_prob = [p_test[[position[r] for r in rows]].reshape(-1, p_test.shape[-1]) for rows, _ in excerpts]
    return transcription_scores(rolls_true, rolls_prob, [notes for _, notes in excerpts], threshold), None


RUN_SEED_STRIDE = 1000  # pretraining run r trains its end-to-end models with seeds + 1000 r


def train_model(cell: CellInputs, method: Method, train: np.ndarray, cfg: DownstreamConfig, seed: int):
    """(fit, val probabilities, test probabilities) of one model on the labelled rows `train`."""
    data, val, test, audio, model_dir = cell.data, cell.val, cell.test, cell.audio, cell.model_dir
    labels = data.labels
    outputs = len(labels.classes)
    framewise = labels.framewise
    if method.kind == "probe":
        return _train_probe(cell, method, train, cfg, seed)
    seed += RUN_SEED_STRIDE * cell.run  # run r's inits and batch order; the label subset is the seed's
    model = end_to_end.build_model(method.kind, model_dir, outputs, framewise, seed)
    audio = audio.on(resolve_device(cfg.e2e_device, "downstream.e2e_device"), cfg.e2e_bf16)
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
        return probe_inputs(cell.cache, cell.embeddings, method.feature, framewise, data.rows[rows], stride)

    def probs(model, x, n):
        p = predict(model, x, labels.multilabel)
        return p.reshape(n, -1, outputs) if framewise else p

    path = fit_path(
        inputs(train, stride),
        flat_targets(labels.targets[train], framewise, stride),
        method.head,
        outputs,
        hidden=cfg.mlp_hidden,
        l2_grid=cfg.l2_grid,
        max_iter=cfg.mlp_max_iter if method.head == "mlp" else cfg.max_iter,
        seed=seed,
        consume=True,  # a fresh array: standardised in place
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


def one_model(
    cell: CellInputs, method: Method, labelled: np.ndarray, label_budget, seed: int, cfg, full: bool
):
    """Train one model on the rows `labelled` and score it on each part of test (seen and
    unseen conditions, or all): (its long rows of scores.parquet, a row per part and metric;
    scores, "<part>/<metric>" (just the metric for part all); record; curves; confusion matrix
    (every test window) or None; test probabilities; (test unit names "<part>|<unit>",
    per-unit statistics))."""
    fit, p_val, p_test = train_model(cell, method, labelled, cfg, seed)
    labels = cell.data.labels
    task = labels.task
    parts = test_parts(cell.data.heard[cell.test])
    threshold = val_threshold(labels, cell.val, p_val)  # one for every part
    scored = {
        part: score(cell.data, threshold, cell.test[where], p_test[where], full)[0]
        for part, where in parts.items()
    }
    confusion = None if labels.multilabel else classification_scores(labels.targets[cell.test], p_test)[1]
    held = budget_contents(
        cell.data.keys["id"].to_numpy()[labelled],
        cell.data.present[labelled] if cell.data.present is not None else labels.targets[labelled],
        np.ones(len(labelled), dtype=bool),
    )
    units, unit_stats = unit_statistics(cell.data, cell.test, p_test)
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
        "l2": fit.curves["l2"][fit.best] if "l2" in fit.curves else float("nan"),
        "val_score": headline_value(labels, cell.val, p_val),
    }
    rows = []
    for part, where in parts.items():
        mine = np.char.startswith(units, part + PART_SEPARATOR)
        binned = bootstrap.from_stats(bootstrap.KINDS[HEADLINE[task]], unit_stats[mine].sum(0))
        tested = {
            "part": part,
            "test_tracks": int(cell.data.keys["id"].iloc[cell.test[where]].nunique()),
            "test_windows": len(where),
            "binning_error": float(binned - scored[part][HEADLINE[task]]),
        }
        rows += [record | tested | {"metric": k, "value": v} for k, v in scored[part].items()]
    scores = {f"{part}/{k}" if part != ALL else k: v for part in parts for k, v in scored[part].items()}
    return rows, scores, record, fit.curves, confusion, p_test, (units, unit_stats)
