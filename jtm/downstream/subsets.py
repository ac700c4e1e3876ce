"""Label fractions: which training windows a downstream model may see labels for.

Few-label results are only honest if the labelled windows come from few recordings (windows of
one track are near duplicates), so the subset is drawn by whole tracks, per stratum (class,
or ensemble for multi-label tasks) so every stratum keeps a share, and seeded. A track that
would overshoot a stratum's quota contributes one contiguous run of windows instead.
For one seed the order of tracks does not depend on the fraction, so a smaller fraction's
whole tracks are also in a larger fraction's subset.
"""

from __future__ import annotations

import numpy as np


def label_subset(track_ids: np.ndarray, strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """(windows,) bool mask of the labelled windows: about `fraction` of each stratum, at least one.

    `track_ids`, `strata`: (windows,) per training window, windows of a track in time order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction}: must be in (0, 1]")
    track_ids, strata = np.asarray(track_ids), np.asarray(strata)
    mask = np.zeros(len(track_ids), dtype=bool)
    if fraction == 1:
        mask[:] = True
        return mask
    for position, stratum in enumerate(sorted(set(strata.tolist()))):
        rows = np.flatnonzero(strata == stratum)
        rng = np.random.default_rng([seed, position])
        tracks = np.unique(track_ids[rows])
        order = rng.permutation(len(tracks))
        offsets = rng.random(len(tracks))  # where a partial run starts, per track
        remaining = max(1, round(fraction * len(rows)))
        for t in order:
            if remaining == 0:
                break
            track_rows = rows[track_ids[rows] == tracks[t]]
            if len(track_rows) <= remaining:
                mask[track_rows] = True
                remaining -= len(track_rows)
            else:
                begin = int(offsets[t] * (len(track_rows) - remaining + 1))
                mask[track_rows[begin : begin + remaining]] = True
                remaining = 0
    return mask
