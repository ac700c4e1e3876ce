"""`jtm validate <path>`: check a MusicNet tree before any stage trusts it.

Checks the layout (every metadata id has a WAV and labels in one split; every WAV has
metadata), every WAV header (readable, complete, mono, 44.1 kHz), every float WAV's samples
(no NaN or infinity: a full read of the float files), every label file (columns,
numbers, sane rows), and MusicNet's counts: 330 recordings, 320 train and 10 test (the official
test ids), 11 instrument codes, unless the tree is declared a subset.
"""

from __future__ import annotations

from pathlib import Path

from jtm.errors import DataError
from jtm.musicnet import layout

COUNTS = {"recordings": 330, "train": 320, "test": 10, "instruments": 11}
TEST_IDS = frozenset({1759, 1819, 2106, 2191, 2298, 2303, 2382, 2416, 2556, 2628})


def validate(raw: str | Path, subset: bool = False, stop_at_first: bool = True) -> list[DataError]:
    """Every problem found (an empty list: the tree is sound). Raises at the first problem
    when `stop_at_first`."""
    raw = Path(raw)
    problems: list[DataError] = []

    def report(error: DataError) -> None:
        if stop_at_first:
            raise error
        problems.append(error)

    metadata, tracks = layout.discover(raw, report)
    instruments: set[int] = set()
    for track in tracks:
        try:
            info = layout.check_wav(track.wav)
            layout.check_finite_wav(track.wav, info)
            labels = layout.read_labels(track.labels, n_samples=info.frames)
            instruments |= set(labels["instrument"])
        except DataError as error:
            report(error)
    if not subset:
        split_of = {t.id: t.split for t in tracks}
        found = {
            "recordings": len(metadata),
            "train": sum(s == "train" for s in split_of.values()),
            "test": sum(s == "test" for s in split_of.values()),
            "instruments": len(instruments),
        }
        for what, expected in COUNTS.items():
            if found[what] != expected:
                report(
                    DataError(raw, f"{found[what]} {what}, MusicNet has {expected} (use --subset for a part)")
                )
        test_ids = {i for i, s in split_of.items() if s == "test"}
        if test_ids != TEST_IDS and found["test"] == COUNTS["test"]:
            report(DataError(raw, f"test ids {sorted(test_ids)} are not MusicNet's {sorted(TEST_IDS)}"))
    return problems
