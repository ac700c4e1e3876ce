"""Names -> builders, so stages and tests can enumerate every encoder x context combination.

The names themselves are listed once in jtm.choices (what params may say); a test checks
that every listed name builds.
"""

from __future__ import annotations

import itertools

from torch import nn

from jtm import choices
from jtm.models.context import build_context
from jtm.models.cpc import CPC
from jtm.models.encoder import Encoder
from jtm.models.frontend import CQTEncoder, LogMelEncoder
from jtm.models.heads import build_heads
from jtm.models.spec import ModelSpec


def build_cpc(spec: ModelSpec) -> CPC:
    if spec.encoder not in choices.ENCODERS:
        raise ValueError(f"unknown encoder {spec.encoder!r}: use one of {choices.ENCODERS}")
    encoder = build_encoder(spec)  # first: the seeded init draws encoder, context, heads in order
    context = build_context(spec.context, spec.hidden, spec.context_layers, spec.attention_heads)
    heads = build_heads(spec.predictor, spec.hidden, spec.n_predicts, spec.attention_heads)
    return CPC(encoder, context, heads, spec.reverse)


def build_encoder(spec: ModelSpec) -> nn.Module:
    """g_enc: (B, L) audio at 16 kHz -> (B, L // 160, hidden) frames."""
    if spec.encoder == "logmel":
        return LogMelEncoder(spec.hidden, spec.norm, spec.mel_bands, spec.mel_window)
    if spec.encoder == "cqt":
        return CQTEncoder(spec.hidden, spec.norm, lookahead=spec.mel_window // 2)
    return Encoder(spec.hidden, spec.norm, sinc=spec.encoder == "sinc", sinc_kernel=spec.sinc_kernel)


def all_combinations(**fixed) -> list[ModelSpec]:
    """One spec per encoder x context network, with the given fixed fields."""
    pairs = itertools.product(choices.ENCODERS, choices.CONTEXTS)
    return [ModelSpec(encoder=e, context=c, **fixed) for e, c in pairs]
