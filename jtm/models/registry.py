"""Names -> builders, so stages and tests can enumerate every encoder x context combination."""

from __future__ import annotations

import dataclasses
import itertools

from jtm.models.context import build_context
from jtm.models.cpc import CPC
from jtm.models.encoder import Encoder
from jtm.models.heads import build_heads

ENCODERS = ("conv", "sinc")
CONTEXTS = ("gru", "lstm", "rnn", "transformer")
HEADS = ("linear", "transformer")
NORMS = ("layer", "batch", "instance", "none")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a CPC model (saved beside its weights)."""

    encoder: str
    hidden: int
    norm: str
    sinc_kernel: int
    context: str
    context_layers: int
    heads: int
    head: str
    n_predicts: int
    reverse: bool


def build_cpc(spec: ModelSpec) -> CPC:
    if spec.encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {spec.encoder!r}: use one of {ENCODERS}")
    encoder = Encoder(spec.hidden, spec.norm, sinc=spec.encoder == "sinc", sinc_kernel=spec.sinc_kernel)
    context = build_context(spec.context, spec.hidden, spec.context_layers, spec.heads)
    heads = build_heads(spec.head, spec.hidden, spec.n_predicts, spec.heads)
    return CPC(encoder, context, heads, spec.reverse)


def all_combinations(**fixed) -> list[ModelSpec]:
    """One spec per encoder x context network, with the given fixed fields."""
    return [ModelSpec(encoder=e, context=c, **fixed) for e, c in itertools.product(ENCODERS, CONTEXTS)]
