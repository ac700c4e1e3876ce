"""Every name a params choice can take, listed once.

The params schema (jtm/config/schema.py) offers exactly these, and each builder reads its
list from here (the models registry, the sampling strategies, the feature sets, the probes,
...), so a name can never be valid in one place and unknown in the other.
"""

from __future__ import annotations

SOURCES = ("demo", "musicnet", "local")  # data.source
BOOTSTRAP_UNITS = ("work", "track")  # downstream.bootstrap_unit: what the test bootstrap resamples
ENSEMBLE_CHOICES = ("balanced", "random", "original")  # demo.ensemble_choice
RESAMPLE_DTYPES = ("float32", "int16")  # resample.dtype
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")  # resample.quality (soxr)
# pretrain.encoder: raw waveform (conv, sinc), log-mel or log-CQT frames
ENCODERS = ("conv", "sinc", "logmel", "cqt")
CONTEXTS = ("gru", "lstm", "rnn", "transformer")  # pretrain.context
PREDICTORS = ("linear", "transformer")  # pretrain.predictor: the prediction heads W_k
NORMS = ("layer", "batch", "instance", "none")  # pretrain.norm
AUGMENTS = ("bandreject", "dropout", "reverb", "noise", "mix")  # pretrain.augment: of the past, in this order
SAMPLINGS = ("uniform", "samesequence", "samecategory", "sequential")  # pretrain.sampling
CATEGORIES = ("ensemble", "composer")  # pretrain.category
SPLITS_GUARDED = ("test", "val")  # leakage.splits: the index splits ingested audio must not hold
DEVICES = ("auto", "cpu", "cuda")  # pretrain.device, embed.device, downstream.e2e_device
LOADERS = ("global", "sharded")  # pretrain.loader
# embed.features, downstream.features (logmel, cqt: the raw front-ends' frames)
FEATURES = ("cpc", "random", "logmel", "cqt")
LEARNED_FEATURES = ("cpc", "random")  # feature sets each pretraining run has its own of (model, init)
LAYERS = ("context", "encoder", "both")  # embed.layer: both = context and encoder side by side
POOLINGS = ("mean", "meanstd", "meanmax")  # embed.pooling: a window's frames -> one vector
TASKS = ("ensemble", "composer", "instruments", "transcription")  # downstream.tasks
PROBES = ("linear", "mlp")  # downstream.probes: the probe heads on frozen features
INITS = ("supervised", "finetune")  # downstream.end_to_end
RECORDERS = ("auto", "process", "inline", "none")  # mlflow.recorder: where a stage's MLflow calls run
