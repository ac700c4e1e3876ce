"""Fixed front-ends (log-mel, log constant-Q) and the CPC encoders built on them
(`pretrain.encoder: logmel | cqt`).

Why an encoder over log-mel frames: on a CPU, the raw-waveform encoder spends most of a CPC
step in its first two convolutions at 3.2 kHz and 800 Hz (see benchmarks/profile_cpc_step.py), while
an STFT costs almost nothing; the same CPU second then buys many more steps. CPC_audio
supports filterbank inputs for the same reason.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jtm.models.encoder import DOWNSAMPLING, make_norm

SAMPLE_RATE = 16_000
FLOOR = 1e-6  # added before the log: silence reads log(1e-6) = -13.8, never -inf


class LogMel(nn.Module):
    """(B, L) audio -> (B, L // 160, bands) log-mel frames every 10 ms, centred windows of
    `window` samples (1024: 64 ms), Hann-windowed power spectra on `bands` mel bands."""

    def __init__(self, bands: int = 128, window: int = 1024):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=window, hop_length=DOWNSAMPLING, n_mels=bands, center=True
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // DOWNSAMPLING  # centred framing gives one extra frame at the end
        with torch.autocast(audio.device.type, enabled=False):  # an STFT wants float32
            power = self.mel(audio.float())
        return torch.log(power + FLOOR)[:, :, :frames].transpose(1, 2)


class LogMelEncoder(nn.Module):
    """(B, L) audio -> (B, L // 160, hidden): the fixed log-mel frames, then `layers` learned
    per-frame layers (1x1 convolution, norm, ReLU), so each frame sees only its own STFT
    window, as a raw-waveform frame sees only its receptive field."""

    def __init__(self, hidden: int, norm: str = "layer", bands: int = 128, window: int = 1024, layers=3):
        super().__init__()
        self.logmel = LogMel(bands, window)
        stack: list[nn.Module] = []
        for i in range(layers):
            stack += [nn.Conv1d(bands if i == 0 else hidden, hidden, 1), make_norm(norm, hidden), nn.ReLU()]
        self.net = nn.Sequential(*stack)
        self.hidden = hidden

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(self.logmel(audio).transpose(1, 2)).transpose(1, 2)


CQT_FMIN = 440.0 * 2 ** ((24 - 69) / 12)  # C1, MIDI note 24: 32.70 Hz
CQT_BINS_PER_OCTAVE = 12  # one bin a semitone
CQT_FMAX = 7_600.0  # the highest bin's centre stays below this (Nyquist: 8 kHz)
CQT_BINS = int(CQT_BINS_PER_OCTAVE * math.log2(CQT_FMAX / CQT_FMIN)) + 1  # 95: C1 .. A#8 (7.46 kHz)


def cqt_frequencies() -> np.ndarray:
    """(CQT_BINS,) centre frequencies, Hz: bin k is MIDI note 24 + k (C1 = 32.70 Hz upwards)."""
    return CQT_FMIN * 2.0 ** (np.arange(CQT_BINS) / CQT_BINS_PER_OCTAVE)


def cqt_kernels(lookahead: int = 512) -> tuple[np.ndarray, int]:
    """(kernels (2 * CQT_BINS, K) float32, first): each bin's Hann-windowed complex exponential
    (real parts, then imaginary parts) placed in K taps, tap j reading sample `first + j` of a
    frame's time (tap -first is the frame's own sample). Bin k spans Q * sr / f_k samples,
    Q = 1 / (2^(1/12) - 1) = 16.8: a semitone's resolution at every pitch (Brown 1991), up to
    8 221 samples (0.51 s) at C1, normalised so a unit sine at f_k reads 0.5 whatever its
    length. No bin reads more than `lookahead` samples past its frame (the log-mel's half
    window): a kernel that fits is centred on the frame, a longer one ends `lookahead` samples
    after it, so CPC cannot read the frames it predicts from its input."""
    q = 1.0 / (2 ** (1 / CQT_BINS_PER_OCTAVE) - 1)
    lengths = np.ceil(q * SAMPLE_RATE / cqt_frequencies()).astype(int) | 1  # odd: a centre tap
    centres = np.minimum(0, lookahead - lengths // 2)  # each kernel's centre, samples from the frame
    first, last = int((centres - lengths // 2).min()), int((centres + lengths // 2).max())
    first, last = min(first, 0), max(last, 0)
    kernels = np.zeros((2, CQT_BINS, last - first + 1), np.float64)
    for k, (f, n, c) in enumerate(zip(cqt_frequencies(), lengths, centres, strict=True)):
        t = np.arange(n) - n // 2
        window = np.hanning(n + 2)[1:-1] / np.hanning(n + 2)[1:-1].sum()
        begin = c - n // 2 - first
        kernels[0, k, begin : begin + n] = window * np.cos(2 * np.pi * f * t / SAMPLE_RATE)
        kernels[1, k, begin : begin + n] = window * np.sin(2 * np.pi * f * t / SAMPLE_RATE)
    return kernels.reshape(2 * CQT_BINS, -1).astype(np.float32), first


class LogCQT(nn.Module):
    """(B, L) audio -> (B, L // 160, 95) log constant-Q power every 10 ms: 12 bins an octave
    from C1 (32.70 Hz) to A#8 (7.46 kHz), bin k = MIDI note 24 + k. A pitch-resolving
    front-end: a 64 ms STFT's bins are 15.6 Hz apart, wider than a semitone below 270 Hz; here
    every semitone has its bin, low notes through long kernels that reach back up to 0.48 s
    and forward no further than `lookahead` samples (`cqt_kernels`). One strided convolution
    with fixed kernels (not saved with a model's weights: rebuilt from these constants)."""

    def __init__(self, lookahead: int = 512):
        super().__init__()
        kernels, first = cqt_kernels(lookahead)
        self.register_buffer("kernels", torch.from_numpy(kernels).unsqueeze(1), persistent=False)
        self.pad = (-first, kernels.shape[1] - 1 + first)  # zeros before and after the audio

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // DOWNSAMPLING
        with torch.autocast(audio.device.type, enabled=False):
            padded = F.pad(audio.float().unsqueeze(1), self.pad)
            out = F.conv1d(padded, self.kernels, stride=DOWNSAMPLING)
        real, imag = out[:, :CQT_BINS, :frames], out[:, CQT_BINS:, :frames]
        return torch.log(real * real + imag * imag + FLOOR).transpose(1, 2)


class CQTEncoder(nn.Module):
    """(B, L) audio -> (B, L // 160, hidden): `LogCQT` frames, then `layers` learned per-frame
    layers (1x1 convolution, norm, ReLU), as `LogMelEncoder` does on log-mel frames; its
    kernels look `lookahead` samples ahead at most (`pretrain.mel_window` / 2, the log-mel's)."""

    def __init__(self, hidden: int, norm: str = "layer", lookahead: int = 512, layers=3):
        super().__init__()
        self.cqt = LogCQT(lookahead)
        stack: list[nn.Module] = []
        for i in range(layers):
            stack += [
                nn.Conv1d(CQT_BINS if i == 0 else hidden, hidden, 1),
                make_norm(norm, hidden),
                nn.ReLU(),
            ]
        self.net = nn.Sequential(*stack)
        self.hidden = hidden

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(self.cqt(audio).transpose(1, 2)).transpose(1, 2)
