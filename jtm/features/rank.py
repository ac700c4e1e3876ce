"""A diagnostic for collapse: the effective rank of a feature set's frames.

The effective rank (Roy & Vetterli 2007) of frames X (n, d) is exp(H(p)), H the entropy of
p = the eigenvalues of X's covariance over their sum: d when every direction carries the same
variance, 1 when one direction carries it all. A CPC model whose frames span fewer directions
than its untrained control's has collapsed part of its input, which a frame task (transcription)
feels first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jtm.features.embed import load_embeddings

FRAME_STRIDE = 4  # every 4th 100 Hz frame: neighbours are nearly equal, and 4x fewer rows
MAX_WINDOWS = 4096  # windows evenly spread over the split at most: memory bounded on any corpus


def effective_rank(frames: np.ndarray) -> float:
    """exp(entropy) of the normalised eigenvalues of the covariance of frames (n, d); in [1, d]."""
    x = np.asarray(frames, np.float64)
    x = x - x.mean(0)
    eigenvalues = np.clip(np.linalg.eigvalsh(x.T @ x / max(1, len(x) - 1)), 0, None)
    p = eigenvalues / eigenvalues.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def feature_ranks(folder: str | Path, features: list[str], split: str = "test") -> dict[str, dict]:
    """{feature: {"rank": effective rank, "dim": d}} of each feature set's `split` frames in an
    embed folder (every `FRAME_STRIDE`th frame of the windows whose frames it stores; of
    `MAX_WINDOWS` of them evenly spread, where there are more)."""
    out = {}
    for feature in features:
        keys, frames, _ = load_embeddings(folder, feature)
        stored = keys[(keys["split"] == split) & (keys["frame_row"] >= 0)]["frame_row"].to_numpy()
        if len(stored) > MAX_WINDOWS:
            stored = stored[np.linspace(0, len(stored) - 1, MAX_WINDOWS).astype(np.int64)]
        sample = np.asarray(frames[stored, ::FRAME_STRIDE], np.float32).reshape(-1, frames.shape[-1])
        out[feature] = {"rank": effective_rank(sample), "dim": int(frames.shape[-1])}
    return out
