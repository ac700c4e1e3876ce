"""Prediction heads W_k, k = 1..K: context c_t (B, T, H) -> predictions of z_{t+k}, (B, T, K, H)."""

from __future__ import annotations

import torch
from torch import nn

from jtm import choices


class LinearHeads(nn.Module):
    """One linear map per step k, computed as a single (H -> K*H) matmul."""

    def __init__(self, hidden: int, n_predicts: int):
        super().__init__()
        self.n_predicts = n_predicts
        self.proj = nn.Linear(hidden, n_predicts * hidden, bias=False)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        b, t, h = context.shape
        return self.proj(context).view(b, t, self.n_predicts, h)


class TransformerHeads(nn.Module):
    """CPC_audio's option: a causal one-layer transformer over c, then the linear maps."""

    def __init__(self, hidden: int, n_predicts: int, attention_heads: int):
        super().__init__()
        from jtm.models.context import CausalTransformer

        self.mix = CausalTransformer(hidden, layers=1, heads=attention_heads)
        self.linear = LinearHeads(hidden, n_predicts)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        mixed, _ = self.mix(context)
        return self.linear(mixed)


def build_heads(kind: str, hidden: int, n_predicts: int, attention_heads: int) -> nn.Module:
    if kind == "linear":
        return LinearHeads(hidden, n_predicts)
    if kind == "transformer":
        return TransformerHeads(hidden, n_predicts, attention_heads)
    raise ValueError(f"unknown prediction head {kind!r}: use one of {choices.PREDICTORS}")
