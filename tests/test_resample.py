"""Resampling quality (analytic sweep, sox agreement), streaming equivalence, label re-timing."""

import dataclasses
import hashlib
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jtm.config import ResampleConfig, load_params, section
from jtm.corpus.resample import resample_file, retime_labels
from jtm.musicnet import layout
from tests.conftest import REPO

SR_IN, SR_OUT = 44_100, 16_000


def sweep(rate: int, seconds: float = 4.0, f0: float = 50.0, f1: float = 6000.0) -> np.ndarray:
    """Exponential sine sweep f0 -> f1 Hz, sampled analytically at `rate`."""
    t = np.arange(int(seconds * rate)) / rate
    k = np.log(f1 / f0) / seconds
    return (0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)).astype(np.float64)


@pytest.fixture
def cfg() -> ResampleConfig:
    return section(load_params(REPO / "params.yaml"), "resample", ResampleConfig)


def _snr_db(reference: np.ndarray, estimate: np.ndarray, margin: int) -> float:
    ref, est = reference[margin:-margin], estimate[margin:-margin]
    return 10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2))


@pytest.mark.check
def test_sweep_matches_the_analytic_16k_sweep(tmp_path, cfg):
    wav = tmp_path / "sweep.wav"
    sf.write(wav, sweep(SR_IN), SR_IN, subtype="FLOAT")
    resample_file(wav, tmp_path / "sweep.npy", cfg)
    out = np.load(tmp_path / "sweep.npy")
    expected = sweep(SR_OUT)
    assert len(out) == len(expected)
    assert _snr_db(expected, out, margin=SR_OUT // 10) >= 80.0


def test_agrees_with_the_sox_cli(tmp_path, cfg):
    assert shutil.which("sox"), "the sox CLI is needed for this test: apt-get install sox (.ci/run does)"
    wav = tmp_path / "sweep.wav"
    sf.write(wav, sweep(SR_IN), SR_IN, subtype="FLOAT")
    subprocess.run(["sox", str(wav), "-r", "16000", str(tmp_path / "sox.wav"), "rate", "-v"], check=True)
    resample_file(wav, tmp_path / "ours.npy", cfg)
    ours = np.load(tmp_path / "ours.npy")
    theirs, rate = sf.read(tmp_path / "sox.wav")
    assert rate == SR_OUT and abs(len(theirs) - len(ours)) <= 1
    n = min(len(ours), len(theirs))
    assert _snr_db(theirs[:n], ours[:n], margin=SR_OUT // 10) >= 80.0


@pytest.mark.check
def test_streaming_blocks_do_not_change_the_result(tmp_path, cfg):
    wav = tmp_path / "noise.wav"
    sf.write(wav, np.random.default_rng(0).uniform(-0.5, 0.5, 3 * SR_IN + 17), SR_IN, subtype="PCM_16")
    resample_file(wav, tmp_path / "one.npy", dataclasses.replace(cfg, block_seconds=100.0))
    resample_file(wav, tmp_path / "many.npy", dataclasses.replace(cfg, block_seconds=0.05))
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "many.npy"))


@pytest.mark.check
def test_each_array_carries_the_digest_of_its_samples(tmp_path, cfg):
    """Other audio of the same length gets another digest (pretraining's checkpoint key reads
    it: a checkpoint trained on other audio is never resumed)."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 2 * SR_IN)
    sf.write(tmp_path / "a.wav", noise, SR_IN, subtype="FLOAT")
    noise[SR_IN] += 0.01  # one sample louder
    sf.write(tmp_path / "b.wav", noise, SR_IN, subtype="FLOAT")
    *_, first = resample_file(
        tmp_path / "a.wav", tmp_path / "a.npy", dataclasses.replace(cfg, block_seconds=0.3)
    )
    *_, again = resample_file(tmp_path / "a.wav", tmp_path / "a2.npy", cfg)
    *_, other = resample_file(tmp_path / "b.wav", tmp_path / "b.npy", cfg)
    assert first == again != other
    assert first == hashlib.blake2b(np.load(tmp_path / "a.npy").tobytes(), digest_size=16).hexdigest()


@pytest.mark.check
def test_int16_output_is_the_scaled_float_output(tmp_path, cfg):
    wav = tmp_path / "sweep.wav"
    sf.write(wav, sweep(SR_IN, seconds=1.0), SR_IN, subtype="FLOAT")
    resample_file(wav, tmp_path / "f.npy", cfg)
    resample_file(wav, tmp_path / "i.npy", dataclasses.replace(cfg, dtype="int16"))
    as_float, as_int = np.load(tmp_path / "f.npy"), np.load(tmp_path / "i.npy")
    assert as_int.dtype == np.int16
    np.testing.assert_allclose(as_int / 32767, as_float, atol=1 / 32767)


@pytest.mark.check
def test_same_rate_is_identity(tmp_path, cfg):
    wav = tmp_path / "x.wav"
    x = np.random.default_rng(1).uniform(-0.5, 0.5, SR_IN).astype(np.float32)
    sf.write(wav, x, SR_IN, subtype="FLOAT")
    resample_file(wav, tmp_path / "x.npy", dataclasses.replace(cfg, sample_rate=SR_IN))
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), x, atol=1e-6)


@pytest.mark.check
def test_labels_are_retimed_to_16k():
    labels = pd.DataFrame({"start_time": [0, 44_100, 88_200], "end_time": [44_100, 88_200, 132_300]})
    out = retime_labels(labels, SR_IN, SR_OUT)
    assert out["start_time"].tolist() == [0, 16_000, 32_000]
    assert out["end_time"].tolist() == [16_000, 32_000, 48_000]


def test_stage_output_matches_the_tracks(built):
    audio16k = built["paths"]["audio16k"]
    manifest = pd.read_parquet(f"{audio16k}/manifest.parquet")
    for row in manifest.itertuples():
        array = np.load(f"{audio16k}/{row.id}.npy", mmap_mode="r")
        assert len(array) == row.samples == round(row.source_samples * SR_OUT / SR_IN)
        assert row.subtype == "FLOAT"
        labels = pd.read_parquet(f"{audio16k}/labels/{row.id}.parquet")
        raw = layout.read_labels(layout.labels_path(built["paths"]["raw"], row.split, row.id))
        assert len(labels) == len(raw) and labels["end_time"].max() <= row.samples
