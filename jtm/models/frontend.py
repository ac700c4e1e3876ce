"""A fixed log-mel front-end, and the CPC encoder built on it (`pretrain.encoder: logmel`).

Why an encoder over log-mel frames: on a CPU, the raw-waveform encoder spends most of a CPC
step in its first two convolutions at 3.2 kHz and 800 Hz (see benchmarks/profile_cpc_step.py), while
an STFT costs almost nothing; the same CPU second then buys many more steps. CPC_audio
supports filterbank inputs for the same reason.
"""

from __future__ import annotations

import torch
from torch import nn

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
