"""Probes: a linear or one-hidden-layer MLP head trained on frozen features.

Inputs are standardised with the labelled subset's mean and std (stored in the model, so
prediction needs nothing else), which puts log-mel and network features on equal footing.
Training stops when the validation loss has not improved for `patience` epochs; the best
epoch's weights are kept. Everything random comes from `seed`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from jtm import choices

# A few labelled windows would make an epoch one step, and early stopping after `patience`
# epochs meaningless: an epoch is at least this many steps (the subset cycled through).
MIN_STEPS_PER_EPOCH = 10


class Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_head(kind: str, dim: int, outputs: int, hidden: int) -> nn.Module:
    """(n, dim) -> (n, outputs) logits."""
    if kind == "linear":
        return nn.Linear(dim, outputs)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
    raise ValueError(f"unknown probe head {kind!r}: use one of {choices.PROBES}")


def loss_function(multilabel: bool) -> nn.Module:
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


@dataclass
class Fit:
    """A trained model and its per-epoch (or per-validation) curves."""

    model: nn.Module
    curves: dict[str, list[float]] = field(default_factory=dict)
    best: int = 0  # epoch (or step) whose weights were kept


@torch.no_grad()
def _mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch: int) -> float:
    model.eval()
    total = sum(
        loss_fn(model(x[i : i + batch]), y[i : i + batch]).item() * len(x[i : i + batch])
        for i in range(0, len(x), batch)
    )
    return total / max(len(x), 1)


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    head: str,
    outputs: int,
    *,
    hidden: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
) -> Fit:
    """Train `head` on (n, dim) features; `y` are class ids (n,) or multi-hot (n, outputs)."""
    multilabel = y_train.ndim == 2
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.float32 if multilabel else torch.int64)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    yv = torch.as_tensor(y_val, dtype=torch.float32 if multilabel else torch.int64)
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-5)
    model = nn.Sequential(Standardize(mean, std), build_head(head, x.shape[1], outputs, hidden))
    if multilabel:  # start from each label's base rate, not p = 0.5: far fewer epochs for sparse labels
        rate = y.mean(0).clamp(1e-4, 1 - 1e-4)
        output_layer = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            output_layer.bias.copy_(torch.log(rate / (1 - rate)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = loss_function(multilabel)
    generator = torch.Generator().manual_seed(seed)
    fit = Fit(model, {"train_loss": [], "val_loss": []})
    best_loss, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(max_epochs):
        model.train()
        steps = max(-(-len(x) // batch_size), MIN_STEPS_PER_EPOCH)
        laps = -(-steps * batch_size // len(x))
        order = torch.cat([torch.randperm(len(x), generator=generator) for _ in range(laps)])
        total, seen = 0.0, 0
        for step in range(steps):
            rows = order[step * batch_size : (step + 1) * batch_size]
            loss = loss_fn(model(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(rows), seen + len(rows)
        val_loss = _mean_loss(model, xv, yv, loss_fn, 8192) if len(xv) else total / seen
        fit.curves["train_loss"].append(total / seen)
        fit.curves["val_loss"].append(val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, best_state, waited, fit.best = val_loss, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return fit


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, multilabel: bool, batch: int = 8192) -> np.ndarray:
    """(n, outputs) probabilities for (n, dim) features."""
    model.eval()
    out = [
        probabilities(model(torch.as_tensor(x[i : i + batch], dtype=torch.float32)), multilabel)
        for i in range(0, len(x), batch)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
