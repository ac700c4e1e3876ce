"""Why jtm's old linear probe scored below scikit-learn's logistic regression, on the demo's own
embeddings (run `make demo` first): the old protocol beside sklearn and the current one.

The old protocol (before the study-power work): Adam (lr 3e-3, batches of 64, at least 10
steps an epoch), early stopping when the validation loss has not improved for `patience`
epochs, the best epoch kept. For each feature set it prints the test accuracy of the ensemble
task at all labels, the epoch the old protocol kept, and the epoch at which the validation
*accuracy* peaked: the validation split holds works the training split does not, so its loss
turns up (confident errors on unseen works) long before the model reaches its optimum.

    python benchmarks/probe_protocol.py [--task ensemble|composer] [--index ...] [--embeddings ...]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jtm.downstream.inputs import load_cell
from jtm.downstream.probe import Standardize, fit_path, predict
from jtm.features.embed import load_embeddings


def old_protocol(x, y, xv, yv, classes, patience, seed=0, lr=3e-3, batch=64, max_epochs=100):
    """The pre-#12 probe: returns (model, kept epoch, per-epoch val loss, per-epoch val accuracy)."""
    torch.manual_seed(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    xv, yv = torch.as_tensor(xv), torch.as_tensor(yv)
    model = nn.Sequential(
        Standardize(x.mean(0), x.std(0, unbiased=False).clamp_min(1e-5)), nn.Linear(x.shape[1], classes)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn, generator = nn.CrossEntropyLoss(), torch.Generator().manual_seed(seed)
    best, best_state, waited, kept, losses, accuracies = float("inf"), None, 0, 0, [], []
    for epoch in range(max_epochs):
        model.train()
        steps = max(-(-len(x) // batch), 10)
        order = torch.cat(
            [torch.randperm(len(x), generator=generator) for _ in range(-(-steps * batch // len(x)))]
        )
        for step in range(steps):
            rows = order[step * batch : (step + 1) * batch]
            loss = loss_fn(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            losses.append(loss_fn(logits, yv).item())
            accuracies.append((logits.argmax(1) == yv).float().mean().item())
        if losses[-1] < best - 1e-6:
            best, best_state, waited, kept = losses[-1], copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return model, kept, losses, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="ensemble", choices=("ensemble", "composer"))
    parser.add_argument("--index", default="data/index")
    parser.add_argument("--embeddings", default="results/embeddings")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(2)
    cell = load_cell(Path(args.index), Path(args.embeddings), None, args.task, probes=True)
    labels, rows = cell.data.labels, cell.data.rows
    classes = len(labels.classes)
    print(
        f"{args.task} accuracy on the test split ({len(cell.test)} windows), "
        f"all labels ({len(cell.train)} windows)"
    )
    print("feature  old p=3 (epoch kept, val-acc peak)  old p=20  sklearn C=1  jtm now (l2 chosen)")
    for feature in ("cpc", "random", "logmel"):
        pooled = load_embeddings(Path(args.embeddings), feature)[2]
        x, xv, xt = (np.asarray(pooled[rows[r]], dtype=np.float32) for r in (cell.train, cell.val, cell.test))
        y, yv, yt = (labels.targets[r] for r in (cell.train, cell.val, cell.test))
        out = []
        for patience in (3, 20):
            model, kept, _, accuracies = old_protocol(x, y, xv, yv, classes, patience)
            accuracy = (predict(model, xt, False).argmax(1) == yt).mean()
            out.append(f"{accuracy:.3f} ({kept:2d}, {int(np.argmax(accuracies)):2d})")
        scaler = StandardScaler().fit(x)
        sk = LogisticRegression(max_iter=5000).fit(scaler.transform(x), y)
        out.append(f"{(sk.predict(scaler.transform(xt)) == yt).mean():.3f}")
        path = fit_path(x, y, "linear", classes, hidden=1, l2_grid=(3e-2, 3e-3, 3e-4), max_iter=200, seed=0)
        val = [(predict(m, xv, False).argmax(1) == yv).mean() for _, m, _ in path]
        l2, model, _ = path[int(np.argmax(val))]
        out.append(f"{(predict(model, xt, False).argmax(1) == yt).mean():.3f} ({l2:g})")
        print(f"{feature:8s} " + "  ".join(out))


if __name__ == "__main__":
    main()
