"""CPC = encoder + context network + prediction heads, composed from parts passed in."""

from __future__ import annotations

import torch
from torch import nn

from jtm import choices


class CPC(nn.Module):
    """audio (B, L) -> frames z (B, T, H), context c (B, T, H), predictions (B, T, K, H).

    With `reverse`, time runs backwards through the context network, so the heads predict
    the past; outputs are returned in that reversed order (the loss needs no special case).
    With `past` (B, L), an augmented copy of `audio`, the context network reads the encoder's
    frames of `past` while the frames z returned (the targets) stay those of `audio`.
    """

    def __init__(self, encoder: nn.Module, context: nn.Module, heads: nn.Module, reverse: bool = False):
        super().__init__()
        self.encoder, self.context, self.heads, self.reverse = encoder, context, heads, reverse

    def forward(self, audio: torch.Tensor, state=None, past: torch.Tensor | None = None):
        frames = self.encoder(audio)
        read = frames if past is None else self.encoder(past)
        if self.reverse:
            frames, read = frames.flip(1), read.flip(1)
        context, state = self.context(read, state)
        return frames, context, self.heads(context), state


class AudioEmbedder(nn.Module):
    """What `jtm.load_encoder` returns: audio (B, L) at 16 kHz -> features (B, L // 160, H).

    `layer="context"` gives the context network's output (the default for downstream tasks),
    `layer="encoder"` the encoder's frames, `layer="both"` the two side by side (B, T, 2H).
    """

    def __init__(self, cpc: CPC, layer: str = "context"):
        super().__init__()
        if layer not in choices.LAYERS:
            raise ValueError(f"layer must be one of {choices.LAYERS}, got {layer!r}")
        self.cpc, self.layer = cpc, layer

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames, context, _, _ = self.cpc(audio)
        if self.layer == "both":
            features = torch.cat([context, frames], -1)
        else:
            features = context if self.layer == "context" else frames
        return features.flip(1) if self.cpc.reverse else features
