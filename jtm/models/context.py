"""g_ar: frames (B, T, H) -> context vectors (B, T, H), each seeing only frames up to t.

Recurrent networks return their final state so that `sequential` sampling can carry context
from one window to the next; the causal transformer carries nothing (state is None).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Recurrent(nn.Module):
    """GRU, LSTM or Elman RNN over frames; `state` is the recurrent hidden state (or None)."""

    def __init__(self, kind: str, hidden: int, layers: int):
        super().__init__()
        cells = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
        self.net = cells[kind](hidden, hidden, num_layers=layers, batch_first=True)

    def forward(self, frames: torch.Tensor, state=None):
        out, state = self.net(frames, state)
        return out, state


class CausalTransformer(nn.Module):
    """Masked self-attention (pre-norm), sinusoidal positions: frame t attends to frames <= t."""

    def __init__(self, hidden: int, layers: int, heads: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=4 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        self.net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    @staticmethod
    def positions(length: int, hidden: int, device) -> torch.Tensor:
        position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
        rate = torch.exp(
            torch.arange(0, hidden, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / hidden)
        )
        table = torch.zeros(length, hidden, device=device)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)[:, : hidden // 2]
        return table

    def forward(self, frames: torch.Tensor, state=None):
        length = frames.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(
            length, device=frames.device, dtype=frames.dtype
        )
        x = frames + self.positions(length, frames.shape[2], frames.device).to(frames.dtype)
        return self.norm(self.net(x, mask=mask, is_causal=True)), None


def build_context(kind: str, hidden: int, layers: int, heads: int) -> nn.Module:
    if kind in ("gru", "lstm", "rnn"):
        return Recurrent(kind, hidden, layers)
    if kind == "transformer":
        return CausalTransformer(hidden, layers, heads)
    raise ValueError(f"unknown context network {kind!r}: use gru, lstm, rnn or transformer")
