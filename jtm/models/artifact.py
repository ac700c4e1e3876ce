"""A trained model on disk, written and read in one place.

A model folder (the pretrain stage's output, or any copy of it)::

    model.pt       a plain state dict: torch.load(path, weights_only=True) opens it
    config.json    {"model": ModelSpec fields, "sample_rate": 16000, "window": samples,
                    "frames_per_window": frames, "pretrain": the resolved pretrain section}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from jtm.errors import DataError
from jtm.models.cpc import CPC, AudioEmbedder
from jtm.models.encoder import DOWNSAMPLING
from jtm.models.registry import build_cpc
from jtm.models.spec import ModelSpec, spec_from_dict

SAMPLE_RATE = 16_000


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.suffix == ".pt" else path


def save_model(folder: Path, model: CPC, spec: ModelSpec, window: int, training: dict) -> None:
    """Write model.pt and config.json into `folder` (an existing, usually temporary, folder)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, folder / "model.pt")
    config = {
        "model": dataclasses.asdict(spec),
        "sample_rate": SAMPLE_RATE,
        "window": window,
        "frames_per_window": window // DOWNSAMPLING,
        "pretrain": training,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def model_config(path: str | Path) -> dict:
    """config.json of the model folder (or model.pt) at `path`; a clear error if `path` is not
    one (naming the runs inside, when it is the pretraining stage's folder of runs)."""
    config = _folder(path) / "config.json"
    if not config.is_file():
        runs = sorted(p.name for p in _folder(path).glob("run*") if (p / "config.json").is_file())
        hint = (
            f": it holds the runs {', '.join(runs)}; name one, e.g. {_folder(path) / runs[0]}" if runs else ""
        )
        raise DataError(_folder(path), f"not a pretrained model's folder (no config.json){hint}")
    return json.loads(config.read_text())


def load_spec(path: str | Path) -> ModelSpec:
    """The architecture of the model folder (or model.pt) at `path`."""
    return spec_from_dict(model_config(path)["model"])


def load_model(path: str | Path, weights: bool = True) -> CPC:
    """The model at `path`: its trained weights, or (`weights=False`) the same architecture
    freshly initialised from torch's current RNG (seed it first)."""
    model = build_cpc(load_spec(path))
    if weights:
        state = torch.load(_folder(path) / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


def load_encoder(path: str | Path, layer: str = "encoder") -> AudioEmbedder:
    """A module that embeds 16 kHz audio (B, L) -> (B, L // 160, H), in eval mode.

    `path` is a pretraining run's folder (or its model.pt); `layer` "encoder" (the default, as
    the study's `embed.layer` reads out), "context" or "both" (B, L // 160, 2H).
    """
    return AudioEmbedder(load_model(path), layer).eval()
