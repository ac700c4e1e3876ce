"""Label budgets: which training windows a downstream model may see labels for.

A budget is a number of labelled tracks per class (`k`), or `"all"`. Few-label results are
only honest if the labelled windows come from few recordings (windows of one track are near
duplicates), and only meaningful if every class has some: so a budget draws whole tracks, `k`
of each stratum (the class for ensemble/composer, the ensemble for the multi-label tasks,
whose instruments the ensemble fixes), seeded. For one seed each stratum's tracks are taken in
one seeded order whatever `k`, so a smaller budget's tracks are also in every larger one's
(nested). For a multi-label task, a label that the drawn tracks lack but another train track
has (an instrument the test split needs) adds the first such track in that order.
"""

from __future__ import annotations

import numpy as np

ALL = "all"


def budget_name(budget: int | str) -> str:
    """`1` -> "1-per-class", "all" -> "all": folder, file and table names."""
    return ALL if budget == ALL else f"{int(budget)}-per-class"


def label_subset(
    track_ids: np.ndarray,
    strata: np.ndarray,
    budget: int | str,
    seed: int,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """(windows,) bool mask of the labelled windows: whole tracks, `budget` per stratum.

    `track_ids`, `strata`: (windows,) per training window (a track's windows share a stratum);
    `present`: (windows, labels) bool, for a multi-label task the labels each window holds.
    """
    track_ids, strata = np.asarray(track_ids), np.asarray(strata)
    if budget == ALL:
        return np.ones(len(track_ids), dtype=bool)
    if int(budget) < 1:
        raise ValueError(f"label budget {budget!r}: a positive number of tracks per class, or 'all'")
    chosen, order = [], []
    for position, stratum in enumerate(sorted(set(strata.tolist()))):
        tracks = np.unique(track_ids[strata == stratum])
        ranked = tracks[np.random.default_rng([seed, position]).permutation(len(tracks))]
        chosen += list(ranked[: int(budget)])
        order += list(ranked[int(budget) :])
    mask = np.isin(track_ids, chosen)
    if present is not None:
        for track in order:  # cover every label some train track holds
            missing = present.any(0) & ~present[mask].any(0)
            if not missing.any():
                break
            rows = track_ids == track
            if present[rows][:, missing].any():
                mask |= rows
    return mask


def budget_contents(track_ids: np.ndarray, classes: np.ndarray, mask: np.ndarray) -> dict:
    """What a budget holds: labelled tracks, windows and classes covered.

    `classes`: (windows,) class ids, or (windows, labels) bool of a multi-label task.
    """
    held = classes[mask]
    covered = len(np.unique(held)) if held.ndim == 1 else int(held.reshape(len(held), -1).any(0).sum())
    return {"tracks": int(len(np.unique(track_ids[mask]))), "windows": int(mask.sum()), "classes": covered}
