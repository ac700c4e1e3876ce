"""The CPC levers (docs/pretraining.md): augmentation of the past leaves the predicted frames
clean, same-window negatives are what they say, the CQT front-end puts a note in its bin and
reads no further ahead than the log-mel, every arm gets the same front-end, and the effective
rank measures what it says."""

import dataclasses

import numpy as np
import pytest
import torch

from jtm import choices
from jtm.config import EmbedConfig, PretrainConfig, load_params, section
from jtm.features.embed import build_extractor
from jtm.features.rank import effective_rank
from jtm.models.artifact import save_model
from jtm.models.frontend import CQT_BINS, LogCQT, cqt_frequencies
from jtm.models.registry import build_cpc
from jtm.models.spec import spec_of
from jtm.train import augment
from jtm.train.infonce import _same_window_scores, draw_same_window, info_nce
from jtm.train.pretrain import same_window_count, step_draws

pytestmark = pytest.mark.check

SR = 16_000


def _config(**changes) -> PretrainConfig:
    params = load_params("params.yaml")
    cfg = section(params, "pretrain", PretrainConfig)
    return dataclasses.replace(cfg, hidden=16, n_predicts=3, **changes)


def _music(batch: int = 3, length: int = 20_480, seed: int = 0) -> torch.Tensor:
    """Windows of two-note chords whose pitches change every 80 ms, at different levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    out = []
    for i in range(batch):
        notes = rng.integers(48, 84, size=(length // 1280 + 1, 2))
        freqs = 440 * 2 ** ((np.repeat(notes, 1280, axis=0)[:length] - 69) / 12)
        out.append((0.1 + 0.2 * i) * np.sin(2 * np.pi * freqs * t[:, None]).sum(1))
    return torch.tensor(np.array(out), dtype=torch.float32)


@pytest.mark.parametrize("name", choices.AUGMENTS)
def test_each_augmentation_changes_the_past_and_is_a_function_of_seed_step_and_row(name):
    cfg = _config(augment=(name,))
    audio = _music()
    torch.manual_seed(1)
    first = augment.augment_past(audio, cfg, step=5, offset=2)
    torch.manual_seed(2)  # the global seed does not enter
    again = augment.augment_past(audio, cfg, step=5, offset=2)
    other_step = augment.augment_past(audio, cfg, step=6, offset=2)
    assert first.shape == audio.shape and torch.equal(first, again)
    for i in range(len(audio)):
        assert not torch.allclose(first[i], audio[i], atol=1e-4)  # every window changed
        assert not torch.equal(first[i], other_step[i])
    # row i of the local batch is row offset + i of the global one: a rank holding rows 3..4
    # augments them as one process holding 2..4 does (but for mix, whose partner is local)
    if name != "mix":
        assert torch.equal(augment.augment_past(audio[1:], cfg, step=5, offset=3), first[1:])


def test_augmentations_keep_the_level_they_should():
    x = _music(1)[0]
    g = torch.Generator().manual_seed(0)
    rms = x.pow(2).mean().sqrt()
    for out in (augment.band_reject(x, g, (0.5, 1.0)), augment.reverb(x, g, (0.3, 0.8))):
        assert out.pow(2).mean().sqrt() == pytest.approx(float(rms), rel=1e-3)
    noisy = augment.add_noise(x, g, (10.0, 10.0))
    assert (noisy - x).pow(2).mean().sqrt() == pytest.approx(float(rms) * 10 ** (-10 / 20), rel=1e-3)
    gaps = augment.dropout(x, g, (20.0, 20.0))
    silenced = int((gaps == 0).sum() - (x == 0).sum())
    assert 320 <= silenced <= 3 * 320  # up to 3 gaps of 20 ms in 1.28 s (they may overlap)
    response = augment.room_response(g, 0.5)
    assert len(response) == SR // 2 and response[0] == 1
    tail = response[1:].pow(2)
    assert tail.sum() == pytest.approx(1.0, rel=1e-4)  # as much energy as the direct sound
    assert tail[: SR // 20].sum() > 10 * tail[-SR // 20 :].sum()  # and it decays


def test_band_reject_removes_its_band_only():
    t = torch.arange(20_480) / SR
    out = augment.reject_band(
        torch.sin(2 * torch.pi * 200 * t) + torch.sin(2 * torch.pi * 3000 * t), 2500, 3500
    )
    spectrum = torch.fft.rfft(out).abs()
    freqs = torch.fft.rfftfreq(len(out), 1 / SR)
    assert spectrum[(freqs - 3000).abs().argmin()] < 1e-3 * spectrum[(freqs - 200).abs().argmin()]
    assert spectrum[(freqs - 200).abs().argmin()] > 0.4 * len(out) / 2  # 200 Hz kept


def test_augmenting_the_past_leaves_the_predicted_frames_clean():
    torch.manual_seed(0)
    model = build_cpc(spec_of(_config(encoder="logmel"))).eval()
    audio = _music()
    past = augment.augment_past(audio, _config(augment=("reverb", "noise")), step=0, offset=0)
    with torch.no_grad():
        frames, context, predictions, _ = model(audio)
        frames_aug, context_aug, predictions_aug, _ = model(audio, past=past)
        assert torch.equal(frames, frames_aug)  # the targets: the clean audio's frames
        assert not torch.allclose(context, context_aug, atol=1e-4)  # the context read the past
        assert torch.equal(context_aug, model(past)[1])


def test_same_window_negatives_come_from_the_window_and_never_the_positive():
    cfg = _config(same_track_share=0.25, n_negatives=16, negative_pool=0)
    m = same_window_count(cfg)
    assert m == 4
    draws, subpool, same = step_draws(cfg, step=3, size=5, length=20)
    assert draws.shape == (5, 20, 12) and same.shape == (5, 20, 4) and subpool is None
    assert step_draws(_config(n_negatives=16, negative_pool=0), 3, 5, 20)[2] is None
    # the shift past the positive: over many draws, every other frame of the window and never
    # the positive, about uniformly
    length, k = 20, 2
    many = draw_same_window(torch.Generator().manual_seed(0), 1, length, 20_000)
    position = 5
    index = many[0, position]
    index = index + (index >= position + k).long()
    counts = np.bincount(index.numpy(), minlength=length)
    assert counts[position + k] == 0
    others = np.delete(counts, position + k)
    assert others.min() > 0.8 * 20_000 / (length - 1) and others.max() < 1.2 * 20_000 / (length - 1)


def test_same_window_scores_are_the_products_with_the_drawn_frames():
    g = torch.Generator().manual_seed(0)
    b, t, h, k = 3, 10, 4, 2
    frames = torch.randn(b, t, h, generator=g)
    predictions = torch.randn(b, t, 3, h, generator=g)
    same = draw_same_window(g, b, t, 5)
    scores = _same_window_scores(predictions[:, : t - k, k - 1], frames, same, k)
    for i in range(b):
        for p in range(t - k):
            for j in range(5):
                f = int(same[i, p, j]) + int(same[i, p, j] >= p + k)
                expected = predictions[i, p, k - 1] @ frames[i, f]
                assert scores[i * (t - k) + p, j] == pytest.approx(float(expected), abs=1e-5)
    # share 1: every negative from the window, the loss still finite and its chance level right
    empty = torch.zeros(b, t, 0, dtype=torch.long)
    loss, loss_k, _ = info_nce(frames, predictions, frames.reshape(-1, h), empty, same=same)
    assert torch.isfinite(loss) and loss_k.shape == (3,)


@pytest.mark.parametrize("midi", [24, 31, 45, 60, 81, 105, 118])
def test_a_sine_lands_in_its_cqt_bin(midi):
    f = 440 * 2 ** ((midi - 69) / 12)
    t = np.arange(20_480) / SR
    frames = LogCQT()(torch.tensor(np.sin(2 * np.pi * f * t), dtype=torch.float32)[None])[0]
    assert frames.shape == (128, CQT_BINS)
    assert cqt_frequencies()[midi - 24] == pytest.approx(f)
    middle = frames[64]
    assert int(middle.argmax()) == midi - 24
    # a unit sine reads 0.5 (near Nyquist its mirror image adds a little)
    assert float(torch.exp(middle.max())) == pytest.approx(0.25, rel=0.01 if midi < 110 else 0.05)


@pytest.mark.parametrize("lookahead", [200, 512])
def test_the_cqt_reads_no_further_ahead_than_the_log_mel(lookahead):
    cqt = LogCQT(lookahead)
    audio = torch.randn(1, 20_480, generator=torch.Generator().manual_seed(0))
    changed = audio.clone()
    changed[:, 8_000:] = 0
    moved = (cqt(audio) - cqt(changed)).abs().amax(-1)[0] > 1e-4
    first = int(moved.nonzero()[0])
    assert first == (8_000 - lookahead - 1) // 160 + 1  # the first frame whose reach covers 8 000


def test_the_control_and_the_raw_baseline_get_the_cqt_model_s_front_end(tmp_path):
    cfg = _config(encoder="cqt")
    torch.manual_seed(0)
    save_model(tmp_path, build_cpc(spec_of(cfg)), spec_of(cfg), 20_480, {"pretrain": dataclasses.asdict(cfg)})
    embed_cfg = section(load_params("params.yaml"), "embed", EmbedConfig)
    audio = _music(2)
    raw = build_extractor("cqt", tmp_path, embed_cfg)(audio)
    for name in ("cpc", "random"):
        front = build_extractor(name, tmp_path, embed_cfg).cpc.encoder.cqt
        assert torch.equal(front(audio), raw)


def test_effective_rank_counts_the_directions_that_carry_variance():
    rng = np.random.default_rng(0)
    assert effective_rank(rng.normal(size=(20_000, 16))) == pytest.approx(16, rel=0.02)
    line = rng.normal(size=(5_000, 1)) * rng.normal(size=(1, 16))
    assert effective_rank(line + 1e-6 * rng.normal(size=(5_000, 16))) == pytest.approx(1, abs=0.01)
    scaled = rng.normal(size=(20_000, 8)) * np.array([1, 1, 1, 1, 1e-4, 1e-4, 1e-4, 1e-4])
    assert effective_rank(scaled) == pytest.approx(4, rel=0.02)
