"""`jtm validate`: every problem named with its file, all at once with --all."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jtm.cli import main
from jtm.errors import DataError
from jtm.musicnet.validate import validate


def test_a_sound_subset_passes_and_the_counts_are_checked(built, capsys):
    raw = built["paths"]["raw"]
    assert validate(raw, subset=True, stop_at_first=False) == []
    assert main(["validate", raw, "--subset"]) == 0
    problems = validate(raw, subset=False, stop_at_first=False)
    assert any("MusicNet has 330" in str(p) for p in problems)
    assert any("instruments, MusicNet has 11" in str(p) for p in problems)


def test_all_reports_every_problem_with_its_file(built, capsys):
    raw = Path(built["paths"]["raw"])
    wavs = sorted((raw / "musicnet" / "train_data").glob("*.wav"))
    sf.write(wavs[0], np.zeros((100, 2), np.float32), 44100, subtype="FLOAT")
    labels = raw / "musicnet" / "train_labels" / f"{wavs[1].stem}.csv"
    pd.read_csv(labels).drop(columns="note").to_csv(labels, index=False)
    stray = raw / "musicnet" / "test_data" / "77.wav"
    sf.write(stray, np.zeros(100, np.float32), 44100, subtype="FLOAT")
    assert main(["validate", str(raw), "--subset", "--all"]) == 2
    err = capsys.readouterr().err
    for needle in (
        f"{wavs[0]}: 2 channels",
        f"{labels}: missing column(s) ['note']",
        f"{stray}: id 77 has no row",
    ):
        assert needle in err
    assert "3 problem(s)" in err
    with pytest.raises(DataError):
        validate(raw, subset=True, stop_at_first=True)


def _ten_test_tracks(raw: Path, ids: list[int]) -> None:
    """Replace the tree's test split with copies of one test recording under these ten ids."""
    root = raw / "musicnet"
    metadata = pd.read_csv(raw / "musicnet_metadata.csv")
    tests = sorted((root / "test_data").glob("*.wav"))
    template = metadata[metadata["id"] == int(tests[0].stem)].iloc[0]
    shutil.copyfile(tests[0], root / "spare.wav")
    shutil.copyfile(root / "test_labels" / f"{tests[0].stem}.csv", root / "spare.csv")
    for wav in tests:
        wav.unlink()
        (root / "test_labels" / f"{wav.stem}.csv").unlink()
    metadata = metadata[~metadata["id"].isin([int(w.stem) for w in tests])]
    for new in ids:
        shutil.copyfile(root / "spare.wav", root / "test_data" / f"{new}.wav")
        shutil.copyfile(root / "spare.csv", root / "test_labels" / f"{new}.csv")
    (root / "spare.wav").unlink()
    (root / "spare.csv").unlink()
    rows = pd.DataFrame([template] * len(ids)).assign(id=ids)
    pd.concat([metadata, rows], ignore_index=True).to_csv(raw / "musicnet_metadata.csv", index=False)


def test_ten_test_tracks_must_be_musicnets_official_ones(built, tmp_path):
    from jtm.musicnet.validate import TEST_IDS

    raw = tmp_path / "copy"
    shutil.copytree(built["paths"]["raw"], raw)
    _ten_test_tracks(raw, list(range(9000, 9010)))
    problems = [str(p) for p in validate(raw, subset=False, stop_at_first=False)]
    assert any("test ids [9000, 9001" in p and "are not MusicNet's [1759" in p for p in problems), problems
    assert not any("test, MusicNet has" in p for p in problems)  # ten: the count itself is right
    _ten_test_tracks(raw, sorted(TEST_IDS))
    problems = [str(p) for p in validate(raw, subset=False, stop_at_first=False)]
    assert not any("test ids" in p for p in problems), problems
