"""Bad input: a clear error naming the file (and row), a non-zero exit, and no output written."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jtm.cli import main


@pytest.fixture
def corpus(built, tmp_path):
    """(raw folder, first train track id, args running `jtm resample` into a fresh output)."""
    raw = Path(built["paths"]["raw"])
    track_id = int(sorted((raw / "musicnet" / "train_data").glob("*.wav"))[0].stem)
    out = tmp_path / "out16k"
    args = ["resample", "--set", f"paths.raw={raw}", "--set", f"paths.audio16k={out}"]
    args += ["--set", f"mlflow.tracking_uri={built['mlflow']['tracking_uri']}"]
    return raw, track_id, out, args


def _fails(args, out, capsys, *needles):
    assert main(args) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert str(needle) in err, err
    assert not out.exists(), "a failed stage must not leave an output"
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "temporary output left behind"
    return err


def test_truncated_wav(corpus, capsys):
    raw, track_id, out, args = corpus
    wav = raw / "musicnet" / "train_data" / f"{track_id}.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    _fails(args, out, capsys, wav, "truncated")


def test_corrupt_wav(corpus, capsys):
    raw, track_id, out, args = corpus
    wav = raw / "musicnet" / "train_data" / f"{track_id}.wav"
    wav.write_bytes(np.random.default_rng(0).bytes(5000))
    _fails(args, out, capsys, wav, "unreadable audio")


def test_wav_not_at_44k(corpus, capsys):
    raw, track_id, out, args = corpus
    wav = raw / "musicnet" / "train_data" / f"{track_id}.wav"
    sf.write(wav, np.zeros(22050, np.float32), 22050, subtype="FLOAT")
    _fails(args, out, capsys, wav, "22050 Hz")


def test_stereo_wav(corpus, capsys):
    raw, track_id, out, args = corpus
    wav = raw / "musicnet" / "train_data" / f"{track_id}.wav"
    sf.write(wav, np.zeros((44100, 2), np.float32), 44100, subtype="FLOAT")
    _fails(args, out, capsys, wav, "2 channels")


def _edit_labels(raw, track_id, edit):
    path = raw / "musicnet" / "train_labels" / f"{track_id}.csv"
    edit(pd.read_csv(path)).to_csv(path, index=False)
    return path


def test_labels_missing_a_column(corpus, capsys):
    raw, track_id, out, args = corpus
    path = _edit_labels(raw, track_id, lambda f: f.drop(columns="note"))
    _fails(args, out, capsys, path, "missing column(s) ['note']")


def test_end_before_start(corpus, capsys):
    raw, track_id, out, args = corpus
    path = _edit_labels(
        raw, track_id, lambda f: f.assign(end_time=f["end_time"].where(f.index != 4, f["start_time"] - 1))
    )
    _fails(args, out, capsys, path, "row 5", "end_time < start_time")


def test_unknown_instrument(corpus, capsys):
    raw, track_id, out, args = corpus
    path = _edit_labels(raw, track_id, lambda f: f.assign(instrument=f["instrument"].where(f.index != 2, 25)))
    _fails(args, out, capsys, path, "row 3", "unknown instrument code")


def test_wav_without_labels(corpus, capsys):
    raw, track_id, out, args = corpus
    (raw / "musicnet" / "train_labels" / f"{track_id}.csv").unlink()
    _fails(args, out, capsys, raw / "musicnet" / "train_data" / f"{track_id}.wav", "no label file")


def test_metadata_id_without_audio(corpus, capsys):
    raw, track_id, out, args = corpus
    (raw / "musicnet" / "train_data" / f"{track_id}.wav").unlink()
    (raw / "musicnet" / "train_labels" / f"{track_id}.csv").unlink()
    _fails(args, out, capsys, raw / "musicnet_metadata.csv", "row 1", f"id {track_id} has no WAV")


def test_non_numeric_id(corpus, capsys):
    raw, track_id, out, args = corpus
    path = raw / "musicnet_metadata.csv"
    metadata = pd.read_csv(path, dtype=str, keep_default_na=False)
    metadata.loc[1, "id"] = "12a"
    metadata.to_csv(path, index=False)
    _fails(args, out, capsys, path, "row 2", "'12a' is not an integer")


def test_wav_without_metadata(corpus, capsys):
    raw, track_id, out, args = corpus
    stray = raw / "musicnet" / "train_data" / "9999.wav"
    sf.write(stray, np.zeros(44100, np.float32), 44100, subtype="FLOAT")
    _fails(args, out, capsys, stray, "no row in musicnet_metadata.csv")


def test_a_failed_rerun_keeps_the_previous_output(corpus, capsys):
    raw, track_id, out, args = corpus
    assert main(args) == 0
    before = sorted(p.name for p in out.iterdir())
    _edit_labels(raw, track_id, lambda f: f.drop(columns="note"))
    assert main(args) == 2
    assert sorted(p.name for p in out.iterdir()) == before


def test_the_command_exits_non_zero(corpus):
    raw, track_id, out, args = corpus
    (raw / "musicnet" / "train_labels" / f"{track_id}.csv").unlink()
    result = subprocess.run([sys.executable, "-m", "jtm.cli", *args], capture_output=True, text=True)
    assert result.returncode == 2 and "no label file" in result.stderr and not out.exists()


def _poison(raw, track_id, value) -> Path:
    """The track's WAV with one non-finite sample at 1.5 s (float WAVs can hold NaN and inf)."""
    wav = raw / "musicnet" / "train_data" / f"{track_id}.wav"
    audio, rate = sf.read(wav, dtype="float32")
    audio[int(1.5 * rate)] = value
    sf.write(wav, audio, rate, subtype="FLOAT")
    return wav


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_sample_stops_resample_naming_file_and_time(corpus, capsys, value):
    raw, track_id, out, args = corpus
    wav = _poison(raw, track_id, value)
    _fails(args, out, capsys, wav, "non-finite sample", "at 1.500 s")


def test_non_finite_sample_fails_validate(corpus, capsys):
    raw, track_id, _, _ = corpus
    wav = _poison(raw, track_id, np.nan)
    assert main(["validate", str(raw), "--subset"]) == 2
    err = capsys.readouterr().err
    assert str(wav) in err and "non-finite sample (nan) at 1.500 s" in err


def test_non_finite_sample_in_a_16k_array_fails_index(built, tmp_path, capsys):
    audio16k = Path(built["paths"]["audio16k"])
    array = sorted(audio16k.glob("*.npy"))[0]
    samples = np.load(array)
    samples[16_000 * 2] = np.inf
    np.save(array, samples)
    out = tmp_path / "index-out"
    args = ["index", "--set", f"paths.audio16k={audio16k}", "--set", f"paths.index={out}"]
    args += ["--set", f"mlflow.tracking_uri={built['mlflow']['tracking_uri']}"]
    _fails(args, out, capsys, array, "non-finite sample (inf) at 2.000 s")
