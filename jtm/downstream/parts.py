"""The parts of a test split: its recordings under conditions seen in training and under unseen
ones (a rendered corpus's recordings.csv says which), or all of them where the corpus does not
say. Every score, interval and comparison is computed per part; a test unit's name carries its
part ("<part>|<work or track>")."""

from __future__ import annotations

import numpy as np

ALL = "all"  # the only test part of a corpus that does not say how its tracks were recorded
PART_SEPARATOR = "|"  # unit names are "<part>|<work or track>"


def test_parts(heard: np.ndarray) -> dict[str, np.ndarray]:
    """{part: positions}, parts in order (seen before unseen), of test windows whose part is
    `heard` (test windows,)."""
    order = {"seen": 0, "unseen": 1, ALL: 2}
    return {part: np.flatnonzero(heard == part) for part in sorted(set(heard), key=order.get)}
