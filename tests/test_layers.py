"""The package's layers: no module imports from a layer above its own (lazy imports included),
and every name params may choose (jtm.choices) is one its builder knows."""

from pathlib import Path

import pytest

from jtm import choices
from jtm.codedeps import imports, module_files

# Lowest first; a module may import its own layer or any below it. The data packages (MusicNet,
# the demo corpus, the 16 kHz corpus, loading) and models never import each other.
LAYERS = [
    (
        "jtm.errors",
        "jtm.choices",
        "jtm.progress",
        "jtm.atomic",
        "jtm.codedeps",
        "jtm.devices",
        "jtm.models.spec",
    ),
    ("jtm.config",),
    ("jtm.tracking",),
    ("jtm.musicnet", "jtm.models"),
    ("jtm.demo",),
    ("jtm.corpus",),
    ("jtm.loading",),
    ("jtm.ingest",),
    ("jtm.leakage",),
    ("jtm.train", "jtm.features"),
    ("jtm.downstream",),
    ("jtm.report",),
    ("jtm.stages", "jtm.runner"),
    ("jtm.cli", "jtm.workflow", "jtm"),
]
DATA = ("jtm.musicnet", "jtm.demo", "jtm.corpus", "jtm.loading")
APART = [(data, "jtm.models") for data in DATA] + [("jtm.train", "jtm.features")]


def _layer(module: str) -> tuple[int, str]:
    """(rank, prefix) of the most specific layer prefix that `module` falls under."""
    best = (-1, "")
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[1]):
                best = (rank, prefix)
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


@pytest.mark.check
@pytest.mark.parametrize("module", list(module_files()))
def test_no_module_imports_from_a_layer_above_it(module):
    rank, prefix = _layer(module)
    for imported in imports(module):  # the module's import statements, lazy ones too
        if imported == "jtm":  # the package itself: its version, nothing else
            continue
        their_rank, their_prefix = _layer(imported)
        assert their_rank <= rank, f"{module} ({prefix}) imports {imported} ({their_prefix}, a layer above)"
        for a, b in APART:
            assert {prefix, their_prefix} != {a, b}, f"{module} imports {imported}: {a} and {b} stay apart"


@pytest.mark.check
def test_every_model_choice_builds():
    import torch

    from jtm.models.registry import build_cpc
    from jtm.models.spec import ModelSpec

    for encoder in choices.ENCODERS:
        for context in choices.CONTEXTS:
            for predictor in choices.PREDICTORS:
                for norm in choices.NORMS:
                    spec = ModelSpec(encoder, 31, 16, 400, 8, norm, context, 1, 2, predictor, 2, False)
                    frames, _, predictions, _ = build_cpc(spec)(torch.randn(2, 3200))
                    assert frames.shape == (2, 20, 8) and predictions.shape == (2, 20, 2, 8)


def test_every_probe_feature_and_sampling_choice_is_known_to_its_builder(built):
    import numpy as np

    from jtm.config import EmbedConfig, section
    from jtm.downstream.probe import build_head
    from jtm.features.embed import build_extractor
    from jtm.loading.sampling import plan_epoch
    from jtm.loading.windows import load_windows

    for probe in choices.PROBES:
        assert build_head(probe, 4, 3, 5)(__import__("torch").zeros(2, 4)).shape == (2, 3)
    cfg = section(built, "embed", EmbedConfig)
    for feature in choices.FEATURES:
        build_extractor(feature, Path(built["paths"]["pretrain"]) / "run0", cfg)
    windows, _ = load_windows(built["paths"]["index"], ("train",))
    for sampling in choices.SAMPLINGS:
        for category in choices.CATEGORIES:
            batches = plan_epoch(windows, sampling, 4, 0, 0, category, 0)
            assert sum(len(b) for b in batches) > 0 and np.all([len(b) > 0 for b in batches])
