"""What a CPC model is, as data: the fields params' pretrain section and a saved model share.

Torch-free, so params can be checked (and Snakemake can load) without importing torch.
"""

from __future__ import annotations

import dataclasses

from jtm import choices


def _one_of(names: tuple[str, ...]) -> dataclasses.Field:
    return dataclasses.field(metadata={"choices": names})


def _at_least(minimum: int) -> dataclasses.Field:
    return dataclasses.field(metadata={"minimum": minimum})


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a CPC model (saved beside its weights, in config.json)."""

    encoder: str = _one_of(choices.ENCODERS)
    sinc_kernel: int = _at_least(1)  # taps of the SincNet band-pass filters (odd)
    mel_bands: int = _at_least(1)  # encoder logmel: mel bands of the fixed front-end
    mel_window: int = _at_least(160)  # encoder logmel: STFT window, samples at 16 kHz (centred)
    hidden: int = _at_least(1)
    norm: str = _one_of(choices.NORMS)
    context: str = _one_of(choices.CONTEXTS)
    context_layers: int = _at_least(1)
    attention_heads: int = _at_least(1)  # of the transformer context or predictor
    predictor: str = _one_of(choices.PREDICTORS)  # the prediction heads W_k
    n_predicts: int = _at_least(1)
    reverse: bool


# Names a model folder written before the rename may still use (config.json "model").
LEGACY_FIELDS = {"heads": "attention_heads", "head": "predictor"}
# Fields added since: what a model folder written before them was (unused by its encoder).
ADDED_FIELDS = {"mel_bands": 128, "mel_window": 1024}


def spec_of(config: object) -> ModelSpec:
    """The model part of any object that has ModelSpec's fields (a PretrainConfig, say)."""
    return ModelSpec(**{f.name: getattr(config, f.name) for f in dataclasses.fields(ModelSpec)})


def spec_from_dict(values: dict) -> ModelSpec:
    """A ModelSpec from config.json's "model" mapping, old field names accepted."""
    return ModelSpec(**(ADDED_FIELDS | {LEGACY_FIELDS.get(k, k): v for k, v in values.items()}))
