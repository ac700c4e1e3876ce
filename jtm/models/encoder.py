"""g_enc: raw 16 kHz audio -> 100 Hz frames, a 160x downsampling in five 1-D convolutions.

Kernels 10/8/4/4/4, strides 5/4/2/2/2, paddings 3/2/1/1/1 (as in CPC_audio), so a window of
20 480 samples gives exactly 128 frames. The first layer is a plain convolution or a SincNet
layer (Ravanelli & Bengio 2018): learnable band-pass filters, two parameters each.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KERNELS = (10, 8, 4, 4, 4)
STRIDES = (5, 4, 2, 2, 2)
PADDINGS = (3, 2, 1, 1, 1)
DOWNSAMPLING = math.prod(STRIDES)  # 160 samples per frame: 100 Hz at 16 kHz


class ChannelNorm(nn.Module):
    """Layer norm over channels at every time step, with a per-channel affine: (B, C, T)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "layer":
        return ChannelNorm(channels)
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "instance":
        return nn.InstanceNorm1d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use layer, batch, instance or none")


def _hz_to_mel(hz: float) -> float:
    return 2595 * math.log10(1 + hz / 700)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700 * (10 ** (mel / 2595) - 1)


class SincConv(nn.Module):
    """Band-pass filters g[n] = 2 f2 sinc(2 pi f2 n) - 2 f1 sinc(2 pi f1 n), Hamming-windowed.

    Learns a low cut-off and a band width per filter (Hz, mel-spaced at init). Input (B, 1, L),
    output (B, out_channels, L') with the same length arithmetic as a Conv1d.
    """

    def __init__(
        self,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        sample_rate: int = 16_000,
        min_low_hz: float = 30.0,
        min_band_hz: float = 50.0,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SincConv kernel_size must be odd, got {kernel_size}")
        self.stride, self.padding = stride, padding
        self.sample_rate, self.min_low_hz, self.min_band_hz = sample_rate, min_low_hz, min_band_hz
        edges = _mel_to_hz(
            torch.linspace(
                _hz_to_mel(min_low_hz), _hz_to_mel(sample_rate / 2 - min_band_hz), out_channels + 1
            )
        )
        self.low_hz = nn.Parameter((edges[:-1] - min_low_hz).unsqueeze(1))
        self.band_hz = nn.Parameter(torch.diff(edges).unsqueeze(1))
        half = kernel_size // 2
        # Time axis in seconds (n / sr) for the right half; the kernel is symmetric.
        self.register_buffer(
            "n", 2 * math.pi * torch.arange(1, half + 1).float() / sample_rate, persistent=False
        )
        self.register_buffer(
            "window", torch.hamming_window(kernel_size, periodic=False)[half + 1 :], persistent=False
        )

    def kernels(self) -> torch.Tensor:
        """The current filters, shape (out_channels, 1, kernel_size), peak-normalised."""
        low = self.min_low_hz + self.low_hz.abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz.abs(), self.min_low_hz, self.sample_rate / 2)
        band = high - low
        right = (torch.sin(high * self.n) - torch.sin(low * self.n)) / (self.n / 2) * self.window
        centre = 2 * band
        kernel = torch.cat([right.flip(1), centre, right], dim=1) / (2 * band)
        return kernel.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv1d(x, self.kernels(), stride=self.stride, padding=self.padding)


class Encoder(nn.Module):
    """(B, L) audio at 16 kHz -> (B, L // 160, hidden) frames."""

    def __init__(self, hidden: int, norm: str = "layer", sinc: bool = False, sinc_kernel: int = 251):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (kernel, stride, padding) in enumerate(zip(KERNELS, STRIDES, PADDINGS, strict=True)):
            if i == 0 and sinc:
                # Same frame count as the plain first layer: (L + 2p - k) // 5 + 1 with p = (k - 1) / 2.
                layers.append(SincConv(hidden, sinc_kernel, stride, (sinc_kernel - 1) // 2))
            else:
                layers.append(nn.Conv1d(1 if i == 0 else hidden, hidden, kernel, stride, padding))
            layers += [make_norm(norm, hidden), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)
        self.hidden = hidden

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(audio.unsqueeze(1)).transpose(1, 2)
