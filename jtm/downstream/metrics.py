"""Downstream scores, computed by scikit-learn and mir_eval (never by hand).

- classification: accuracy, balanced accuracy, macro-F1, confusion matrix;
- multi-label (instruments): micro/macro average precision, micro/macro F1 at a threshold
  chosen on the validation split;
- transcription: frame-level micro average precision over every (frame, pitch) cell, as
  MusicNet's benchmark computes it, mir_eval.multipitch precision/recall/accuracy at 100 Hz,
  and mir_eval.transcription note-onset F1 (50 ms tolerance, offsets ignored).
"""

from __future__ import annotations

import warnings

import numpy as np

from jtm.models.encoder import DOWNSAMPLING

FRAME_SECONDS = DOWNSAMPLING / 16_000
# mir_eval scores 20 Hz to 5 kHz only: MIDI 16 (20.6 Hz) to 111 (4978 Hz). MusicNet's
# instruments span 21 to 108; the frame-level AP still covers all 128 pitches.
MIR_EVAL_PITCHES = slice(16, 112)

# The headline figure of each kind of task (what the report's tables and curves show).
HEADLINE = {
    "ensemble": "accuracy",
    "composer": "accuracy",
    "instruments": "micro_ap",
    "transcription": "micro_ap",
}


def classification_scores(y_true: np.ndarray, probs: np.ndarray) -> tuple[dict, np.ndarray]:
    """(scores, confusion matrix (classes, classes), rows true, columns predicted).

    `y_true`: (n,) class ids; `probs`: (n, classes). Classes absent from `y_true` still get a
    row, so matrices of one task line up whatever the test split holds.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    y_pred = probs.argmax(1)
    present = np.unique(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": expected
        scores = {
            "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
            "macro_f1": f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
        }
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(probs.shape[1]))
    return {k: float(v) for k, v in scores.items()}, matrix


def best_threshold(y_true: np.ndarray, probs: np.ndarray, bins: int = 1000) -> float:
    """The probability threshold (to 1/`bins`) with the best micro-F1 on validation labels.

    Probabilities are first counted into `bins` bins per label value, so a transcription
    split's millions of (frame, pitch) cells cost one pass, then sklearn's curve runs on the
    weighted bins.
    """
    from sklearn.metrics import precision_recall_curve

    if not y_true.any():
        return 0.5
    bin_of = np.minimum((probs.ravel() * bins).astype(np.int64), bins - 1)
    truth = y_true.ravel().astype(bool)
    positives = np.bincount(bin_of[truth], minlength=bins)
    negatives = np.bincount(bin_of[~truth], minlength=bins)
    scores = np.concatenate([np.arange(bins), np.arange(bins)]) / bins
    labels = np.concatenate([np.ones(bins), np.zeros(bins)])
    weights = np.concatenate([positives, negatives]).astype(np.float64)
    keep = weights > 0
    precision, recall, thresholds = precision_recall_curve(
        labels[keep], scores[keep], sample_weight=weights[keep]
    )
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[np.argmax(f1[:-1])])


def multilabel_scores(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """`y_true`, `probs`: (n, labels). Macro averages run over labels with a positive in `y_true`."""
    from sklearn.metrics import average_precision_score, f1_score

    present = y_true.any(0)
    y_pred = probs >= threshold
    return {
        "micro_ap": float(average_precision_score(y_true.ravel(), probs.ravel())),
        "macro_ap": float(average_precision_score(y_true[:, present], probs[:, present], average="macro")),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true[:, present], y_pred[:, present], average="macro", zero_division=0)),
        "threshold": threshold,
    }


def _hz(midi: np.ndarray) -> np.ndarray:
    import mir_eval

    return mir_eval.util.midi_to_hz(np.asarray(midi, dtype=np.float64))


def roll_to_notes(roll: np.ndarray, offset_seconds: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(intervals (notes, 2) seconds, pitches (notes,) Hz): every run of active frames is a note."""
    padded = np.pad(roll.astype(np.int8), ((1, 1), (0, 0)))
    change = np.diff(padded, axis=0)
    # Pitch-major order: the k-th onset of a pitch pairs with its k-th offset.
    on_pitch, on_frame = np.nonzero(change.T == 1)
    _, off_frame = np.nonzero(change.T == -1)
    intervals = np.stack([on_frame, off_frame], axis=1) * FRAME_SECONDS + offset_seconds
    return intervals.reshape(-1, 2), _hz(on_pitch)


def transcription_scores(
    rolls_true: list[np.ndarray],
    rolls_prob: list[np.ndarray],
    notes_true: list[tuple[np.ndarray, np.ndarray]],
    threshold: float,
) -> dict:
    """Scores over a list of test excerpts (each contiguous 100 Hz frames from one track).

    `rolls_true`, `rolls_prob`: (frames, 128) per excerpt; `notes_true`: per excerpt the true
    notes as (intervals in seconds from the excerpt's start, MIDI pitches).
    """
    import mir_eval
    from sklearn.metrics import average_precision_score

    truth, probs = np.concatenate(rolls_true), np.concatenate(rolls_prob)
    scores = {"micro_ap": float(average_precision_score(truth.ravel(), probs.ravel()))}
    # One timeline for mir_eval: excerpts end to end with a one-second gap between them.
    times, ref_freqs, est_freqs = [], [], []
    ref_iv, ref_p, est_iv, est_p = [], [], [], []
    start = 0.0
    for roll_true, roll_prob, (intervals, pitches) in zip(rolls_true, rolls_prob, notes_true, strict=True):
        low = MIR_EVAL_PITCHES.start
        roll_true = roll_true[:, MIR_EVAL_PITCHES]
        estimate = roll_prob[:, MIR_EVAL_PITCHES] >= threshold
        frames = len(roll_true)
        times.append(start + np.arange(frames) * FRAME_SECONDS)
        ref_freqs += [_hz(np.flatnonzero(row) + low) for row in roll_true]
        est_freqs += [_hz(np.flatnonzero(row) + low) for row in estimate]
        keep = intervals[:, 1] > intervals[:, 0]
        keep &= (pitches >= low) & (pitches < MIR_EVAL_PITCHES.stop)
        ref_iv.append(intervals[keep] + start)
        ref_p.append(_hz(pitches[keep]))
        iv, hz = roll_to_notes(estimate, start)
        est_iv.append(iv)
        est_p.append(hz * 2.0 ** (low / 12))  # columns start at MIDI `low`
        start += frames * FRAME_SECONDS + 1.0
    time = np.concatenate(times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty estimates: they score 0
        frame = mir_eval.multipitch.evaluate(time, ref_freqs, time, est_freqs)
        # Notes are matched per excerpt (matching is quadratic in the notes of one call), and
        # the matches pooled over excerpts: precision and recall over all test notes.
        matched = sum(
            len(mir_eval.transcription.match_notes(ri, rp, ei, ep, offset_ratio=None))
            for ri, rp, ei, ep in zip(ref_iv, ref_p, est_iv, est_p, strict=True)
            if len(ri) and len(ei)
        )
    n_ref, n_est = sum(len(r) for r in ref_iv), sum(len(e) for e in est_iv)
    precision, recall = matched / max(n_est, 1), matched / max(n_ref, 1)
    onset_f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    scores.update(
        {
            "frame_precision": float(frame["Precision"]),
            "frame_recall": float(frame["Recall"]),
            "frame_accuracy": float(frame["Accuracy"]),
            "onset_precision": float(precision),
            "onset_recall": float(recall),
            "onset_f1": float(onset_f1),
            "threshold": threshold,
        }
    )
    return scores
