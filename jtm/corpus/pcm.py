"""16-bit storage of float audio in [-1, 1]: the one scale stage `resample`, `ingest`, the
fingerprints and the training windows share, so an int16 array reads back as it was written."""

from __future__ import annotations

import numpy as np

SCALE = 32767  # full scale 1.0 <-> 32767; -1.0 <-> -32767 (-32768 only by clipping)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples rounded to int16, clipped at full scale."""
    return np.clip(np.round(samples * SCALE), -32768, 32767).astype(np.int16)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """A new float32 array of int16 or float samples, int16 scaled back to [-1, 1]."""
    return np.array(samples, dtype=np.float32) / (SCALE if samples.dtype == np.int16 else 1)
