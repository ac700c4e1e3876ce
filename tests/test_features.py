"""`jtm features`: a trained model embeds a folder of mixed-format files, window by window, with
exactly the model's own output; bad and short files are listed, not fatal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
import torch

from jtm import embed_files, load_encoder
from tests.realworld import encode


def write_library(folder: Path) -> None:
    folder.mkdir()
    t = np.arange(44_100 * 3) / 44_100
    sf.write(folder / "stereo44.wav", np.stack([np.sin(2 * np.pi * 220 * t)] * 2, 1) * 0.3, 44_100)
    t = np.arange(22_050 * 2) / 22_050
    sf.write(folder / "mono22.flac", np.sin(2 * np.pi * 330 * t) * 0.3, 22_050)
    t = np.arange(48_000 * 2) / 48_000
    sf.write(folder / "opus48.opus", np.sin(2 * np.pi * 440 * t) * 0.3, 48_000, format="OGG", subtype="OPUS")
    sf.write(folder / "stereo.mp3", np.stack([np.sin(2 * np.pi * 550 * t)] * 2, 1) * 0.3, 48_000)
    sf.write(folder / "short.wav", np.zeros(1000), 16_000)
    (folder / "broken.flac").write_bytes(b"fLaC not really")
    encode(folder / "bought.m4a", "aac", 44_100, seconds=2.0)  # FFmpeg's: libsndfile reads neither
    encode(folder / "clip.mp4", "aac", 48_000, seconds=2.0, video=True)  # a video's sound track
    (folder / "cover.jpg").write_bytes(b"not audio")


def test_a_folder_of_mixed_formats_is_embedded_window_by_window(built, tmp_path, caplog):
    write_library(tmp_path / "library")
    model = Path(built["paths"]["pretrain"]) / "run0"
    with caplog.at_level("INFO", logger="jtm.ingest.account"):
        metrics = embed_files([str(tmp_path / "library")], model, tmp_path / "out", layer="context", hop=4000)
    out = tmp_path / "out"
    files = pd.read_parquet(out / "files.parquet").set_index(
        pd.read_parquet(out / "files.parquet")["path"].map(lambda p: Path(p).name)
    )
    assert (metrics["embedded_files"], metrics["files"], metrics["skipped_not_audio"]) == (6, 8, 1)
    assert files.loc["short.wav", "status"] == "short" and files.loc["broken.flac", "status"] == "error"
    assert files.loc["broken.flac", "reason"].startswith("damaged or cut off: it begins as FLAC does")
    assert (files.loc["bought.m4a", "decoder"], files.loc["clip.mp4", "format"]) == ("ffmpeg", "MP4")
    said = [r.getMessage() for r in caplog.records if r.name == "jtm.ingest.account"]
    assert said[0] == "features: 9 files under the folders named" and any("MP4/AAC" in line for line in said)
    keys = pd.read_parquet(out / "keys.parquet")
    frames, pooled = np.load(out / "frames.npy", mmap_mode="r"), np.load(out / "pooled.npy")
    assert len(keys) == len(frames) == len(pooled) == files["windows"].sum()
    # 3 s at 16 kHz, windows of 8000 samples every 4000: 11 of them, the last at 40 000
    wav = keys[keys["path"].str.endswith("stereo44.wav")]
    assert len(wav) == 11 and wav["start"].iloc[-1] == 40_000
    audio, rate = sf.read(tmp_path / "library" / "stereo44.wav", dtype="float32")
    audio = soxr.resample(audio.mean(1), rate, 16_000, quality="VHQ")
    row = int(wav["row"].iloc[3])
    clip = torch.from_numpy(np.ascontiguousarray(audio[12_000:20_000]))[None]
    with torch.no_grad():
        want = load_encoder(model, "context")(clip)[0].numpy()
    np.testing.assert_allclose(frames[row].astype(np.float32), want, atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(pooled[row], frames[row].astype(np.float32).mean(0), atol=1e-2)


def test_the_command_line_writes_the_same_and_refuses_a_full_folder(built, tmp_path):
    write_library(tmp_path / "library")
    jtm = Path(sys.executable).with_name("jtm")
    model = str(Path(built["paths"]["pretrain"]) / "run0")
    command = [
        jtm,
        "features",
        str(tmp_path / "library" / "*.wav"),
        "--model",
        model,
        "--out",
        tmp_path / "out",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_parquet(tmp_path / "out" / "files.parquet")) == 2  # the glob: two WAVs
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "folder exists and is not empty" in again.stderr


def test_without_model_the_first_pretraining_run_embeds_and_a_folder_of_runs_is_named(
    built, tmp_path, capsys
):
    import yaml

    from jtm.cli import main

    write_library(tmp_path / "library")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(built))
    wav = str(tmp_path / "library" / "stereo44.wav")
    assert main(["features", wav, "--out", str(tmp_path / "out"), "--params", str(params)]) == 0
    first = Path(built["paths"]["pretrain"]) / f"run{built['pretrain']['runs'][0]}"
    assert (
        main(
            [
                "features",
                wav,
                "--model",
                str(first),
                "--out",
                str(tmp_path / "named"),
                "--params",
                str(params),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "out" / "frames.npy"), np.load(tmp_path / "named" / "frames.npy")
    )
    runs = built["paths"]["pretrain"]
    assert (
        main(["features", wav, "--model", runs, "--out", str(tmp_path / "x"), "--params", str(params)]) == 2
    )
    err = capsys.readouterr().err
    assert "not a pretrained model's folder" in err and f"{runs}/run0" in err


def test_load_encoder_reads_out_what_the_study_embeds_by_default(built):
    """jtm.load_encoder's default layer is the study's `embed.layer` (the encoder)."""
    model = Path(built["paths"]["pretrain"]) / "run0"
    clip = torch.zeros(1, 8000).uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        default, study = load_encoder(model)(clip), load_encoder(model, built["embed"]["layer"])(clip)
    assert built["embed"]["layer"] == "encoder" and torch.equal(default, study)
