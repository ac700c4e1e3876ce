"""Stage `embed`: every window's frames and pooled features for cpc, random and logmel."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from jtm import load_embeddings, load_encoder
from jtm.features.embed import LogMel
from jtm.loading.windows import non_overlapping
from jtm.runner import run_stage


def test_every_window_gets_frames_and_pooled_features(built):
    metrics = run_stage("embed", built, item={"run": 1}) | run_stage("embed_fixed", built)
    folder = Path(built["paths"]["embeddings"])
    windows = pd.read_parquet(Path(built["paths"]["index"]) / "windows.parquet")
    hidden = built["pretrain"]["hidden"]
    frames_per_window = built["index"]["window"] // 160
    assert sorted(p.name for p in (folder / "run1").iterdir()) == ["cpc", "keys.parquet", "random"]
    assert sorted(p.name for p in (folder / "fixed").iterdir()) == ["keys.parquet", "logmel"]
    for feature, dim, run in (("cpc", hidden, "run1"), ("random", hidden, "run1"), ("logmel", 128, "fixed")):
        keys, frames, pooled = load_embeddings(folder / run, feature)
        assert len(keys) == len(windows) == metrics["windows"]
        assert sorted(zip(keys["id"], keys["start"], strict=True)) == sorted(
            zip(windows["id"], windows["start"], strict=True)
        )
        # frames of the non-overlapping windows only (transcription's), each frame once
        framed = keys[keys["frame_row"] >= 0]
        assert framed["frame_row"].tolist() == list(range(len(framed))) and len(framed) < len(keys)
        assert (non_overlapping(keys) == (keys["frame_row"] >= 0)).all()
        assert frames.shape == (len(framed), frames_per_window, dim) and frames.dtype == np.float16
        np.testing.assert_allclose(
            pooled[framed["row"]], frames.astype(np.float32).mean(1), rtol=1e-2, atol=1e-2
        )
        assert metrics[f"{feature}_hours_per_minute"] > 0
    assert set(keys["split"]) == {"train", "val", "test"}


def test_cpc_features_are_the_models_and_random_is_a_seeded_control(built):
    run_stage("embed", built, item={"run": 0})
    folder, index = Path(built["paths"]["embeddings"]), Path(built["paths"]["index"])
    keys, cpc, _ = load_embeddings(folder / "run0", "cpc")
    _, random, _ = load_embeddings(folder / "run0", "random")
    tracks = pd.read_parquet(index / "tracks.parquet").set_index("id")
    row = keys[keys["frame_row"] >= 0].iloc[1]
    at = row["frame_row"]
    audio = np.load(tracks.loc[row["id"], "path"])[row["start"] : row["start"] + row["length"]]
    embedder = load_encoder(Path(built["paths"]["pretrain"]) / "run0", built["embed"]["layer"])
    with torch.no_grad():
        expected = embedder(torch.from_numpy(audio.astype(np.float32))[None])[0]
    np.testing.assert_allclose(cpc[at].astype(np.float32), expected.numpy(), rtol=1e-2, atol=1e-2)
    assert not np.allclose(cpc[at], random[at], atol=1e-2)
    built["paths"]["embeddings"] = str(folder.with_name("again"))
    run_stage("embed", built, item={"run": 0})
    np.testing.assert_array_equal(load_embeddings(folder.with_name("again") / "run0", "random")[1], random)
    # each run's control is its own init (embed.seed + run), from its own model
    _, other, _ = load_embeddings(folder / "run1", "random")
    assert not np.allclose(other[at], random[at], atol=1e-2)


@pytest.mark.check
def test_logmel_frames_are_100_hz_and_find_the_pitch():
    t = np.arange(16_000) / 16_000
    tone = torch.tensor(np.sin(2 * np.pi * 440 * t), dtype=torch.float32)[None]
    frames = LogMel()(tone)
    assert frames.shape == (1, 100, 128)
    import torchaudio

    centres = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 128, 16_000).argmax(0) * 8000 / 512
    peak = centres[frames[0, 50].argmax()].item()
    assert abs(np.log2(peak / 440)) < 0.1


@pytest.mark.check
def test_pooling_mean_meanstd_meanmax():
    from jtm.features.embed import pool

    frames = torch.tensor([[[1.0, -2.0], [3.0, 4.0]]])  # (1 window, 2 frames, 2 dims)
    torch.testing.assert_close(pool(frames, "mean"), torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(pool(frames, "meanstd"), torch.tensor([[2.0, 1.0, 1.0, 3.0]]))
    torch.testing.assert_close(pool(frames, "meanmax"), torch.tensor([[2.0, 1.0, 3.0, 4.0]]))
