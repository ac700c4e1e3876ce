"""Augmentation of the past (Kharitonov et al. 2021, "Data augmenting contrastive learning of
speech representations in the time domain", arXiv 2007.00991): the context network reads an
augmented copy of each window while the frames it must predict come from the clean one, so
the model has to predict the music through the nuisance rather than from it.

`pretrain.augment` lists the transforms (applied in `choices.AUGMENTS`' order, whatever the
list's): `bandreject` (a band of 0.25-1 octave removed, its centre log-uniform in 100 Hz -
6 kHz), `dropout` (two gaps a second silenced), `reverb` (a synthetic room: direct sound plus an
exponentially decaying noise tail of equal energy), `noise` (pink noise at an SNR), `mix` (the
batch's next window added, some dB below). Pitch shift is left out: it would teach the
transposition invariance that transcription does not want.

Each window draws its settings and noise from its own generator, a pure function of
(seed, step, row of the global batch): the same on any device, any process count and any
global `torch` seed. The transforms run on the audio's device; the output keeps each window's
RMS but for `noise` and `mix`, which add to it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from jtm import choices

SAMPLE_RATE = 16_000
BAND_CENTRES_HZ = (100.0, 6_000.0)  # bandreject: the band's centre, log-uniform between these
GAPS_PER_SECOND = 2  # dropout
EPS = 1e-8


def window_generator(seed: int, step: int, row: int) -> torch.Generator:
    """The CPU generator of one window's augmentation: row `row` of the global batch of `step`."""
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step, row]).integers(2**62)))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean().sqrt()


def reject_band(x: torch.Tensor, low_hz: float, high_hz: float) -> torch.Tensor:
    """(L,) -> (L,): the FFT bins from `low_hz` to `high_hz` zeroed, RMS restored."""
    spectrum = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(len(x), 1 / SAMPLE_RATE, device=x.device)
    out = torch.fft.irfft(spectrum.masked_fill((freqs >= low_hz) & (freqs <= high_hz), 0), n=len(x))
    return out * (_rms(x) / (_rms(out) + EPS))


def band_reject(x: torch.Tensor, generator: torch.Generator, octaves: tuple[float, float]) -> torch.Tensor:
    """(L,) -> (L,): one band removed (`reject_band`), its width `octaves` (uniform), its centre
    log-uniform in `BAND_CENTRES_HZ`."""
    low, high = (math.log(f) for f in BAND_CENTRES_HZ)
    centre, width = math.exp(_uniform(generator, low, high)), _uniform(generator, *octaves)
    return reject_band(x, centre * 2 ** (-width / 2), centre * 2 ** (width / 2))


def dropout(x: torch.Tensor, generator: torch.Generator, gap_ms: tuple[float, float]) -> torch.Tensor:
    """(L,) -> (L,): `GAPS_PER_SECOND` gaps a second (at least one) silenced, each of a length
    uniform in `gap_ms`, at a uniform start."""
    out = x.clone()
    for _ in range(max(1, round(GAPS_PER_SECOND * len(x) / SAMPLE_RATE))):
        length = int(_uniform(generator, *gap_ms) * SAMPLE_RATE / 1000)
        start = int(torch.randint(0, max(1, len(x) - length), (), generator=generator))
        out[start : start + length] = 0
    return out


def room_response(generator: torch.Generator, rt60: float) -> torch.Tensor:
    """(n,) impulse response, n = rt60 seconds: a unit direct sound, then Gaussian noise decaying
    60 dB over rt60 (exponentially), scaled to the direct sound's energy."""
    n = max(2, int(rt60 * SAMPLE_RATE))
    t = torch.arange(n, dtype=torch.float32) / SAMPLE_RATE
    tail = torch.randn(n, generator=generator) * torch.exp(-math.log(1000.0) * t / rt60)
    tail[0] = 0
    response = tail / (tail.norm() + EPS)
    response[0] = 1.0
    return response


def reverb(x: torch.Tensor, generator: torch.Generator, rt60: tuple[float, float]) -> torch.Tensor:
    """(L,) -> (L,): convolved with `room_response` (causal, FFT), RMS restored."""
    response = room_response(generator, _uniform(generator, *rt60)).to(x.device)
    n = len(x) + len(response) - 1
    out = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(response, n=n), n=n)[: len(x)]
    return out * (_rms(x) / (_rms(out) + EPS))


def pink(generator: torch.Generator, length: int) -> torch.Tensor:
    """(length,) pink (1/f power) noise of unit RMS: white Gaussian noise shaped in the FFT."""
    spectrum = torch.fft.rfft(torch.randn(length, generator=generator))
    freqs = torch.fft.rfftfreq(length, 1 / SAMPLE_RATE)
    spectrum = spectrum / freqs.clamp(min=freqs[1]).sqrt()
    noise = torch.fft.irfft(spectrum, n=length)
    return noise / (_rms(noise) + EPS)


def add_noise(x: torch.Tensor, generator: torch.Generator, snr_db: tuple[float, float]) -> torch.Tensor:
    """(L,) -> (L,): plus pink noise `snr_db` (uniform) below the window's RMS."""
    snr = _uniform(generator, *snr_db)
    return x + pink(generator, len(x)).to(x.device) * _rms(x) * 10 ** (-snr / 20)


def mix(
    x: torch.Tensor, generator: torch.Generator, other: torch.Tensor, mix_db: tuple[float, float]
) -> torch.Tensor:
    """(L,) -> (L,): plus `other` (L,) scaled to `mix_db` (uniform) below x's RMS."""
    level = _uniform(generator, *mix_db)
    return x + other * (_rms(x) * 10 ** (-level / 20) / (_rms(other) + EPS))


def augment_past(audio: torch.Tensor, cfg, step: int, offset: int) -> torch.Tensor:
    """(B, L) windows -> (B, L) their augmented copies for the context network, per
    `cfg.augment` (a PretrainConfig's augment keys). Window i is row `offset + i` of the global
    batch of `step`; `mix` adds window (i + 1) mod B of the same (local) batch, clean."""
    clean = audio.float()
    out = []
    for i, x in enumerate(clean):
        generator = window_generator(cfg.seed + 4, step, offset + i)
        for name in (n for n in choices.AUGMENTS if n in cfg.augment):
            if name == "bandreject":
                x = band_reject(x, generator, cfg.augment_band_octaves)
            elif name == "dropout":
                x = dropout(x, generator, cfg.augment_dropout_ms)
            elif name == "reverb":
                x = reverb(x, generator, cfg.augment_rt60)
            elif name == "noise":
                x = add_noise(x, generator, cfg.augment_snr_db)
            elif name == "mix" and len(clean) > 1:
                x = mix(x, generator, clean[(i + 1) % len(clean)], cfg.augment_mix_db)
        out.append(x)
    return torch.stack(out).to(audio.dtype)
