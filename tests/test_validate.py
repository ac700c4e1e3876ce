"""`jtm validate`: every problem named with its file, all at once with --all."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jtm.cli import main
from jtm.data.validate import validate
from jtm.errors import DataError


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
