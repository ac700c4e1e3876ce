"""Resumable training state, saved atomically: a crash mid-save never leaves a checkpoint a
resume would trust.

Everything random in pretraining is a pure function of (seed, epoch, step), so a checkpoint
holds the model, the optimiser and scheduler, the position in the epoch, the sequential streams'
carried state, the curves so far, torch's global RNG (restored too) and the resolved config.
`fingerprint` ties it to one config and index: a checkpoint of another run is ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path

import torch

from jtm.atomic import readable
from jtm.train.streams import move_state

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """Where a training run is: steps done, epoch, batches of the epoch done, carried state,
    the curves ({"train": [...], "val": [...]}, rows of step and per-k figures) and the per-k
    training figures of the steps since the last logged row (`pending`: {"loss", "accuracy"},
    each (steps, K) on the CPU; set at a checkpoint, so a resumed run logs the same averages)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    carried: object = None
    history: dict = dataclasses.field(default_factory=lambda: {"train": [], "val": []})
    pending: dict | None = None


def save_checkpoint(path: str | Path, state: dict) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        readable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def save_training(path: Path, fingerprint: str, parts: dict, state: TrainState, config: dict) -> None:
    """Checkpoint `parts` (model, optimizer, scheduler: anything with a state_dict) and `state`."""
    save_checkpoint(
        path,
        {
            "fingerprint": fingerprint,
            **{name: part.state_dict() for name, part in parts.items()},
            # a shallow copy: asdict would deep-copy the carried state on its device first
            **{f.name: getattr(state, f.name) for f in dataclasses.fields(state)},
            "carried": move_state(state.carried, "cpu"),
            "torch_rng": torch.get_rng_state(),
            "config": config,
        },
    )


def restore_training(path: Path, fingerprint: str, parts: dict, device) -> TrainState | None:
    """Load the checkpoint at `path` into `parts` and torch's RNG; its TrainState, or None if
    there is none or it belongs to another config or index."""
    saved = load_checkpoint(path)
    if saved is None:
        return None
    if saved["fingerprint"] != fingerprint:
        log.warning("ignoring %s: it belongs to another config or index", path)
        return None
    for name, part in parts.items():
        part.load_state_dict(saved[name])
    torch.set_rng_state(saved["torch_rng"])
    fields = {f.name: saved[f.name] for f in dataclasses.fields(TrainState)}
    log.info("resuming from %s at step %d", path, saved["step"])
    return TrainState(**fields | {"carried": move_state(saved["carried"], device)})
