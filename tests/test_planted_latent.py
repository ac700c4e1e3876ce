"""CPC learns predictive structure: a planted latent that changes slowly (a Markov chain over
melodic direction: a scale run up or down, one note every 50 ms, the direction kept for the next
note with probability 0.93, rendered through the project's synthesiser) is decoded by a linear
probe on the CPC context after a short pretraining clearly better than on the same network
untrained; and the same check fails for a model whose loss ignores the context (prediction heads
that see a constant), so it tells learning from not learning.

No single frame tells the direction (every pitch is reached both ways), and an untrained network
holds the current and previous pitch only in a form a linear probe reads poorly (0.79 on the held
out tracks, chance 0.5); predicting the next notes (k = 5..12 frames ahead) needs the direction,
so CPC's context learns it (0.92 after 300 steps, about 25 s on 2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from jtm.demo.synth import default_soundfont, synthesize
from jtm.models.registry import build_cpc
from jtm.models.spec import ModelSpec
from jtm.train.infonce import draw_negatives, info_nce

RATE = 16_000
SCALE = (55, 57, 59, 60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79)  # G3 to G5, C major
NOTE_SECONDS = 0.05  # one scale step every 50 ms: the next notes lie within the K = 12 frames predicted
STAY = 0.93  # the chain keeps its direction for the next note with this probability (it turns at the ends)
WINDOW = 12_800  # samples: 80 frames at 100 Hz
SPEC = ModelSpec(
    encoder="logmel", sinc_kernel=31, mel_bands=64, mel_window=1024, hidden=16, norm="layer",
    context="gru", context_layers=1, attention_heads=2, predictor="linear", n_predicts=12, reverse=False,
)  # fmt: skip


def planted_track(seed: int, seconds: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """(audio (samples,) at 16 kHz, direction per 10 ms frame (samples // 160,): 0 down, 1 up)."""
    rng = np.random.default_rng(seed)
    notes = int(seconds / NOTE_SECONDS)
    where, up, pitch, ups = int(rng.integers(len(SCALE))), bool(rng.integers(2)), [], []
    for _ in range(notes):
        if rng.random() > STAY or not 0 <= where + (1 if up else -1) < len(SCALE):
            up = not up
        where += 1 if up else -1
        pitch.append(SCALE[where])
        ups.append(up)
    step = int(NOTE_SECONDS * RATE)
    start = np.arange(notes) * step
    n_samples = notes * step
    audio = synthesize(
        default_soundfont(), [1], np.zeros(notes, int), np.array(pitch), np.full(notes, 90), start,
        np.minimum(start + 2 * step, n_samples), n_samples, RATE,
    )  # fmt: skip
    frame_up = np.repeat(np.array(ups, dtype=int), step // 160)[: n_samples // 160]
    return audio.astype(np.float32), frame_up


class BlindHeads(nn.Module):
    """Prediction heads that ignore the context: a learned constant per step k."""

    def __init__(self, steps: int, hidden: int):
        super().__init__()
        self.constant = nn.Parameter(torch.randn(steps, hidden) * 0.1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.constant.expand(*context.shape[:2], -1, -1)


def pretrain(model: nn.Module, tracks: list[np.ndarray], steps: int, seed: int = 0) -> nn.Module:
    """Adam on jtm's InfoNCE over random windows of `tracks`, batches of 8."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(steps):
        picks = rng.integers(len(tracks), size=8)
        audio = torch.tensor(
            np.stack([tracks[i][(s := rng.integers(len(tracks[i]) - WINDOW)) : s + WINDOW] for i in picks])
        )
        frames, _, predictions, _ = model(audio)
        pool = frames.reshape(-1, frames.shape[-1])
        draws = draw_negatives(torch.Generator().manual_seed(step), 8, frames.shape[1], 32, len(pool))
        loss, _, _ = info_nce(frames, predictions, pool, draws)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def decoding_accuracy(model, train: list, test: list) -> float:
    """Test accuracy of a logistic regression from context frames (every 4th, first 20 of a
    window skipped: the GRU starts empty) to the planted direction."""

    def features(pairs):
        xs, ys = [], []
        for audio, latent in pairs:
            for start in range(0, len(audio) - WINDOW + 1, WINDOW):
                _, context, _, _ = model(torch.tensor(audio[None, start : start + WINDOW]))
                first = start // 160
                xs.append(context[0, 20::4].numpy())
                ys.append(latent[first + 20 : first + WINDOW // 160 : 4])
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = features(train)
    x_test, y_test = features(test)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    probe = LogisticRegression(max_iter=2000).fit((x_train - mean) / std, y_train)
    return float(probe.score((x_test - mean) / std, y_test))


@pytest.fixture(scope="module")
def corpus():
    pairs = [planted_track(seed) for seed in range(8)]
    return pairs[:6], pairs[6:]


def _model(blind: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_cpc(SPEC)
    if blind:
        model.heads = BlindHeads(SPEC.n_predicts, SPEC.hidden)
    return model


@pytest.mark.parametrize("blind", [False, True], ids=["cpc", "context-ignored"])
def test_cpc_context_decodes_a_planted_latent_better_than_untrained(corpus, blind):
    train, test = corpus
    untrained = decoding_accuracy(_model(blind).eval(), train, test)
    trained = decoding_accuracy(pretrain(_model(blind), [a for a, _ in train], steps=300), train, test)
    print(f"planted direction, test accuracy: untrained {untrained:.3f}, trained {trained:.3f} (chance 0.5)")
    if blind:
        assert trained < untrained + 0.05, "a loss that ignores the context must not teach it the latent"
    else:
        assert trained > untrained + 0.1, "CPC must learn the planted latent clearly better than its init"
