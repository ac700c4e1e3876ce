"""End-to-end baselines: CPC's encoder + context network and a linear head, trained on labels.

`supervised` starts from a seeded random init (the seed study's fully supervised baseline),
`finetune` from the pretrained CPC weights. Window tasks pool the context frames (mean over
time) before the head; transcription applies the head to every 100 Hz frame. The best
validation pass's weights are kept, as for the probes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from jtm import choices
from jtm.devices import autocast
from jtm.downstream.probe import Fit, loss_function, probabilities
from jtm.loading.windows import WindowDataset, WindowRef
from jtm.models.artifact import load_model, load_spec
from jtm.models.cpc import AudioEmbedder


class EndToEnd(nn.Module):
    """audio (B, L) -> logits (B, outputs), or (B, L // 160, outputs) with `framewise`."""

    def __init__(self, embedder: AudioEmbedder, dim: int, outputs: int, framewise: bool):
        super().__init__()
        self.embedder, self.head, self.framewise = embedder, nn.Linear(dim, outputs), framewise

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.embedder(audio)
        return self.head(features if self.framewise else features.mean(1))


def build_model(init: str, model_dir: Path, outputs: int, framewise: bool, seed: int) -> EndToEnd:
    """The pretrained model's architecture, randomly initialised (`supervised`) or loaded."""
    if init not in choices.INITS:
        raise ValueError(f"unknown end-to-end baseline {init!r}: use one of {choices.INITS}")
    torch.manual_seed(seed)
    cpc = load_model(model_dir, weights=init == "finetune")
    return EndToEnd(AudioEmbedder(cpc, "context"), load_spec(model_dir).hidden, outputs, framewise)


class AudioBatches:
    """Audio of index windows, in batches: (B, L) float32 tensors for rows of `windows`, on the
    CPU, or on the device `on` names (bf16 autocast there under its `bf16`: `context()`)."""

    def __init__(self, windows: pd.DataFrame, tracks: pd.DataFrame):
        self.dataset, self.device, self.bf16 = WindowDataset(windows, tracks), torch.device("cpu"), False

    def __call__(self, rows: np.ndarray) -> torch.Tensor:
        return torch.stack([self.dataset[WindowRef(int(i), 0)][0] for i in rows]).to(self.device)

    def on(self, device: torch.device, bf16: bool) -> AudioBatches:
        """The same windows, delivered to `device`, with bf16 autocast there under `bf16`."""
        moved = copy.copy(self)
        moved.device, moved.bf16 = device, bf16
        return moved

    def context(self) -> torch.autocast:
        return autocast(self.device, self.bf16)


def fit_end_to_end(
    model: EndToEnd,
    audio: AudioBatches,
    train_rows: np.ndarray,
    y_train: np.ndarray,
    val_rows: np.ndarray,
    y_val: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    val_every: int,
    seed: int,
) -> Fit:
    """Train on the windows `train_rows` (targets `y_train`, row for row) for `steps` steps."""
    multilabel = y_train.dtype == bool
    loss_fn = loss_function(multilabel)
    dtype = torch.float32 if multilabel else torch.int64
    model.to(audio.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    fit = Fit(model, {"train_loss": [], "val_loss": []})
    best_loss, best_state, order, running = float("inf"), copy.deepcopy(model.state_dict()), [], []
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(train_rows))]).astype(np.int64)
        picked, order = order[:batch_size], order[batch_size:]
        model.train()
        with audio.context():
            logits = model(audio(train_rows[picked])).float()
        loss = loss_fn(logits, torch.as_tensor(y_train[picked], dtype=dtype, device=audio.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        if step % val_every == 0 or step == steps:
            val_loss = _mean_loss(model, audio, val_rows, y_val, loss_fn, dtype, batch_size)
            fit.curves["train_loss"].append(float(np.mean(running)))
            fit.curves["val_loss"].append(val_loss)
            running = []
            if val_loss < best_loss:
                best_loss, best_state, fit.best = val_loss, copy.deepcopy(model.state_dict()), step
    model.load_state_dict(best_state)
    return fit


@torch.no_grad()
def _mean_loss(model, audio, rows, targets, loss_fn, dtype, batch_size) -> float:
    model.eval()
    total = 0.0
    for begin in range(0, len(rows), batch_size):
        chunk = slice(begin, begin + batch_size)
        with audio.context():
            logits = model(audio(rows[chunk])).float()
        target = torch.as_tensor(targets[chunk], dtype=dtype, device=audio.device)
        total += loss_fn(logits, target).item() * len(rows[chunk])
    return total / max(len(rows), 1)


@torch.no_grad()
def predict_audio(model: EndToEnd, audio: AudioBatches, rows: np.ndarray, multilabel: bool, batch: int = 16):
    """Probabilities for the windows `rows`: (n, outputs) or (n, frames, outputs)."""
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        with audio.context():
            logits = model(audio(rows[i : i + batch])).float()
        out.append(probabilities(logits, multilabel).cpu())
    return torch.cat(out).numpy()
