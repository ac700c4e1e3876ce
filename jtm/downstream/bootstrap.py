"""Uncertainty from the test split: a bootstrap over whole test units (works or tracks), paired.

Windows of one track, and tracks of one work, are correlated, so resampling windows would
overstate certainty: each resample draws units with replacement and recomputes the metric on
the pooled predictions of the drawn units. Every method of a task is scored on the same
resamples, so a difference between two methods is paired.

A resample costs a matrix product whatever the number of windows or (frame, pitch) cells,
because the metric is recomputed from per-unit sufficient statistics:
- accuracy: (correct, count) per unit;
- micro average precision: per unit, the counts of positive and of negative cells in `BINS`
  score bins. AP from binned counts is scikit-learn's step formula with the scores of a bin
  tied; the bin edges are quantiles of the model's test scores, half of them of the positives'
  scores, so bins are fine where precision changes. `ap_from_stats` on the whole split is
  compared with scikit-learn's exact value for every model (the cells record the difference).

Probe seeds are a second source of variance: each resample also draws seeds with replacement
and averages the drawn seeds' metrics (a bootstrap over seeds x units); with one seed it is a
bootstrap over units alone.

Pretraining runs are a third (`resampled_runs`). Runs and test units are crossed factors (every
run's models are scored on every unit), so each is resampled whole and independently of the
other, as Owen's pigeonhole bootstrap does for crossed random effects (Owen 2007, Ann. Appl.
Stat. 1(2)); probe seeds are nested in runs (a seed's model is trained on one run's features), so
they are redrawn within each drawn run: the two-stage scheme of Davison & Hinkley (1997,
Bootstrap Methods and their Application, sect. 3.8). A resample's value is the mean over its
drawn runs of the mean over their drawn seeds of the metric on the drawn units: every run
weighs the same, whatever its windows.
"""

from __future__ import annotations

import numpy as np

BINS = 2048  # score bins of the micro-AP statistics (per model)
KINDS = {"accuracy": "accuracy", "micro_ap": "ap"}  # headline metric -> statistic


def accuracy_stats(y_true: np.ndarray, probs: np.ndarray, units: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, 2) float: correct predictions and windows per unit.

    `y_true`: (n,) class ids; `probs`: (n, classes); `units`: (n,) unit ids in [0, n_units).
    """
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    return np.stack(
        [np.bincount(units, correct, n_units), np.bincount(units, minlength=n_units).astype(np.float64)],
        axis=1,
    )


def ap_edges(y_true: np.ndarray, probs: np.ndarray, bins: int = BINS, sample: int = 1 << 18) -> np.ndarray:
    """(bins - 1,) non-decreasing inner bin edges: quantiles of all scores and of the positives'
    scores (each estimated from at most `sample` cells, a fixed stride: edges need not be exact
    quantiles)."""
    levels = np.linspace(0, 1, bins // 2 + 1)[1:-1]
    scores, truth = probs.ravel(), y_true.ravel().astype(bool)
    parts = [np.quantile(scores[:: max(1, len(scores) // sample)], levels)]
    if truth.any():
        positive = scores[truth]
        parts.append(np.quantile(positive[:: max(1, len(positive) // sample)], levels))
    edges = np.unique(np.concatenate(parts))
    # Always bins - 1 edges (repeats make empty bins, which change no sum), so the statistics
    # of every model of a task have one shape and seeds stack.
    return np.concatenate([edges, np.full(bins - 1 - len(edges), edges[-1])])


def ap_stats(
    y_true: np.ndarray,
    probs: np.ndarray,
    units: np.ndarray,
    n_units: int,
    edges: np.ndarray,
    block: int = 1 << 22,
) -> np.ndarray:
    """(n_units, 2 * (len(edges) + 1)) float: per unit, positive then negative cells per bin.

    `y_true`, `probs`: (n, ...) with the same shape (windows, or windows x frames, x labels);
    `units`: (n,) the unit of each window. Counted `block` cells at a time (whole windows), so
    the bin indices never take more than a block's memory, whatever the test set's size.
    """
    n_bins = len(edges) + 1
    cells = int(np.prod(probs.shape[1:]))
    probs, y_true = probs.reshape(len(probs), cells), y_true.reshape(len(y_true), cells)
    counts = np.zeros((2, n_units * n_bins), dtype=np.int64)
    step = max(1, block // max(cells, 1))
    for begin in range(0, len(probs), step):
        rows = slice(begin, begin + step)
        bin_of = np.searchsorted(edges, probs[rows], side="right")
        flat = (units[rows, None] * n_bins + bin_of).ravel()
        truth = y_true[rows].ravel().astype(bool)
        counts[0] += np.bincount(flat[truth], minlength=n_units * n_bins)
        counts[1] += np.bincount(flat[~truth], minlength=n_units * n_bins)
    positives, negatives = counts.reshape(2, n_units, n_bins)
    return np.concatenate([positives, negatives], axis=1).astype(np.float64)


def accuracy_from_stats(stats: np.ndarray) -> np.ndarray:
    """(...,) accuracy from summed (..., 2) statistics."""
    return stats[..., 0] / np.maximum(stats[..., 1], 1)


def ap_from_stats(stats: np.ndarray) -> np.ndarray:
    """(...,) average precision from summed (..., 2 * bins) statistics: sum over thresholds,
    highest first, of (recall gained) x precision, as sklearn.metrics.average_precision_score."""
    n_bins = stats.shape[-1] // 2
    positives, negatives = stats[..., :n_bins][..., ::-1], stats[..., n_bins:][..., ::-1]
    tp, fp = np.cumsum(positives, -1), np.cumsum(negatives, -1)
    total = np.maximum(tp[..., -1:], 1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    return np.sum(positives / total * precision, -1)


def from_stats(kind: str, stats: np.ndarray) -> np.ndarray:
    return accuracy_from_stats(stats) if kind == "accuracy" else ap_from_stats(stats)


def unit_draws(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_units) how often each unit is drawn: units with replacement, seeded."""
    rng = np.random.default_rng([seed, 11])
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=resamples).astype(np.float64)


def seed_draws(n_seeds: int, resamples: int, seed: int, salt: int) -> np.ndarray:
    """(resamples, n_seeds) seed indices drawn with replacement (`salt`: one stream per model)."""
    return np.random.default_rng([seed, 12, salt]).integers(0, n_seeds, size=(resamples, n_seeds))


def resampled(kind: str, stats: np.ndarray, draws: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(resamples,) the metric on each resample: mean over the drawn seeds of each seed's metric
    on the drawn units. `stats`: (seeds, units, k); `draws`: (resamples, units);
    `seeds`: (resamples, seeds) from `seed_draws`."""
    per_seed = from_stats(kind, np.einsum("ru,suk->srk", draws, stats))  # (seeds, resamples)
    return per_seed[seeds, np.arange(len(draws))[:, None]].mean(1)


def run_draws(n_runs: int, resamples: int, seed: int, salt: int) -> np.ndarray:
    """(resamples, n_runs) run indices drawn with replacement. Methods built on the same runs
    (a CPC model's probes) share `salt`, so their comparison is paired on runs too."""
    return np.random.default_rng([seed, 13, salt]).integers(0, n_runs, size=(resamples, n_runs))


def nested_seed_draws(n_runs: int, n_seeds: int, resamples: int, seed: int, salt: int) -> np.ndarray:
    """(resamples, n_runs, n_seeds) seed indices, drawn afresh within each drawn run; the first
    run's are `seed_draws`' (one run gives exactly the seeds x units bootstrap)."""
    return np.stack([seed_draws(n_seeds, resamples, seed, salt + j) for j in range(n_runs)], axis=1)


def resampled_runs(
    kind: str, stats: np.ndarray, draws: np.ndarray, runs: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """(resamples,) the metric on each resample: the mean over drawn runs of the mean over
    their drawn seeds of that (run, seed) model's metric on the drawn units. `stats`: (runs,
    seeds, units, k); `draws`: (resamples, units); `runs`: (resamples, runs) from `run_draws`;
    `seeds`: (resamples, runs, seeds) from `nested_seed_draws` (slot j: seeds of the j-th draw)."""
    per_model = np.stack([from_stats(kind, np.einsum("ru,suk->srk", draws, run)) for run in stats])
    every = np.arange(len(draws))[:, None, None]  # per_model: (runs, seeds, resamples)
    return per_model[runs[:, :, None], seeds, every].mean(axis=(1, 2))


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap values."""
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
