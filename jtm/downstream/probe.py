"""Probes: a linear or one-hidden-layer MLP head trained on frozen features, to convergence.

The protocol (fixed, as linear-evaluation protocols in the SSL literature are): inputs are
standardised with the labelled subset's mean and std (stored in the model, so prediction needs
nothing else), which puts log-mel and network features on equal footing. For each L2 strength
of a small grid, strongest first (the linear head warm-started from the previous solution,
the MLP each time from the same seeded init), the head is trained full-batch with L-BFGS
(strong Wolfe line search) on

    mean loss over the labelled examples + l2 / 2 * (squared weights, biases excluded)

until the gradient or the change in loss is below tolerance, or `max_iter` iterations: the
objective of scikit-learn's LogisticRegression with C = 1 / (l2 * n) for the linear head.
The caller then keeps the strength whose model scores best on the validation split by the
task's headline metric. Nothing stops early on a validation loss: on works the training
split does not hold, the validation loss reaches its minimum within a few epochs while the
model is still far from its optimum (docs/study.md, "Downstream evaluation").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from jtm import choices


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
    """A trained model and its curves (per L2 strength for probes, per validation pass for
    end-to-end models); `best` indexes the kept one."""

    model: nn.Module
    curves: dict[str, list[float]] = field(default_factory=dict)
    best: int = 0


def _init_head(head: nn.Module, kind: str, y: torch.Tensor, multilabel: bool) -> None:
    """Zero weights for the (convex) linear head; output biases at each label's base rate
    (multi-label: far fewer iterations for sparse labels than p = 0.5) or zero."""
    output_layer = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        if kind == "linear":
            output_layer.weight.zero_()
        if multilabel:
            rate = y.mean(0).clamp(1e-4, 1 - 1e-4)
            output_layer.bias.copy_(torch.log(rate / (1 - rate)))
        else:
            output_layer.bias.zero_()


CHUNK = 1 << 18  # examples a forward and backward pass (the demo's probes: one chunk)


def _minimize(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, l2: float, max_iter: int, chunk: int = CHUNK
) -> list[float]:
    """Full-batch L-BFGS on mean loss + l2 / 2 * squared weights, in place; the objective at
    each evaluation. A training set over `chunk` examples is passed through in chunks, their
    losses (weighted by their share) and gradients summed: the same objective, with one chunk's
    activations in memory, not the whole set's."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    optimizer = torch.optim.LBFGS(
        list(model.parameters()),
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-5,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    objective: list[float] = []

    def closure():
        optimizer.zero_grad(set_to_none=True)
        penalty = l2 / 2 * sum(w.pow(2).sum() for w in weights)
        if len(x) <= chunk:
            loss = loss_fn(model(x), y) + penalty
            loss.backward()
            objective.append(loss.item())
            return loss
        penalty.backward()
        total = penalty.item()
        for begin in range(0, len(x), chunk):
            part = loss_fn(model(x[begin : begin + chunk]), y[begin : begin + chunk])
            part = part * (len(x[begin : begin + chunk]) / len(x))
            part.backward()
            total += part.item()
        objective.append(total)
        return torch.tensor(total)

    optimizer.step(closure)
    return objective


def fit_path(
    x_train: np.ndarray,
    y_train: np.ndarray,
    head: str,
    outputs: int,
    *,
    hidden: int,
    l2_grid: tuple[float, ...],
    max_iter: int,
    seed: int,
    consume: bool = False,
    chunk: int = CHUNK,
) -> list[tuple[float, nn.Module, list[float]]]:
    """[(l2, trained model, objective per L-BFGS evaluation)] for each strength, strongest first.

    `x_train`: (n, dim) float32 features, standardised in place where `consume` (the caller
    hands it over: one copy of the training matrix in memory, not two); `y_train`: class ids
    (n,) or multi-hot (n, outputs); `chunk`: examples a pass (see `_minimize`).
    """
    multilabel = y_train.ndim == 2
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.float32 if multilabel else torch.int64)
    torch.manual_seed(seed)
    standardize = Standardize(x.mean(0), x.std(0, unbiased=False).clamp_min(1e-5))
    if (
        consume
        and isinstance(x_train, np.ndarray)
        and x_train.flags.writeable
        and x_train.dtype == np.float32
    ):
        x = x.sub_(standardize.mean).div_(standardize.std)  # as Standardize computes it, in place
    else:
        x = standardize(x)  # once, not at every evaluation
    start = build_head(head, x.shape[1], outputs, hidden)
    _init_head(start, head, y, multilabel)
    model = start
    loss_fn = loss_function(multilabel)
    path = []
    for l2 in sorted(l2_grid, reverse=True):
        if head != "linear":  # non-convex: a strong L2 drives the MLP to zero, a poor warm start
            model = copy.deepcopy(start)
        objective = _minimize(model, x, y, loss_fn, l2, max_iter, chunk)
        path.append((l2, nn.Sequential(copy.deepcopy(standardize), copy.deepcopy(model)).eval(), objective))
    return path


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, multilabel: bool, batch: int = 8192) -> np.ndarray:
    """(n, outputs) probabilities for (n, dim) features."""
    model.eval()
    out = [
        probabilities(model(torch.as_tensor(x[i : i + batch], dtype=torch.float32)), multilabel)
        for i in range(0, len(x), batch)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
