"""InfoNCE over k = 1..K future steps, scored without materialising the negatives.

For every frame t and step k the prediction W_k c_t is scored against the true z_{t+k} and
N negatives drawn from a pool of frames (the batch's, or the global batch's under DDP). The
straightforward formulation (the seed study's and CPC_audio's) builds a (positions x (1 + N) x H)
candidates tensor for every k and multiplies it by the predictions (about 3 GB of candidates
per step at the seed study's config, as much again for the product). Here each step k is one
matrix product against the pool, (positions x P), then a gather of N scores per row: memory
grows with the pool size, never with N x H.

With a sub-pool (`pretrain.negative_pool`), each step first draws a random subset of S pool
frames and its negatives among them: the product is (positions x S), so the loss costs S / P of
the whole pool's, and every negative is still a uniform draw from the pool; a draw that lands on
the positive's own frame is masked out of the softmax.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def draw_negatives(
    generator: torch.Generator, rows: int, length: int, n_negatives: int, pool: int
) -> torch.Tensor:
    """Uniform draws in [0, pool - 1), shape (rows, length, N); shifted past the positive later,
    so a positive is never its own negative. Drawn on the CPU from `generator`: the same seed
    and step give the same negatives on any device and any number of processes."""
    return torch.randint(0, pool - 1, (rows, length, n_negatives), generator=generator)


def draw_subpool(
    subpool_generator: torch.Generator,
    draw_generator: torch.Generator,
    rows: int,
    length: int,
    n_negatives: int,
    pool: int,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sub-pool (size,), draws (rows, length, N)): `size` distinct pool rows in [0, pool), and
    uniform draws in [0, size) that index it (a draw of the positive's own frame is masked in
    `info_nce`, not skipped). Drawn on the CPU, like `draw_negatives`."""
    subpool = torch.randperm(pool, generator=subpool_generator)[:size]
    return subpool, torch.randint(0, size, (rows, length, n_negatives), generator=draw_generator)


def info_nce(
    frames: torch.Tensor,
    predictions: torch.Tensor,
    pool: torch.Tensor,
    draws: torch.Tensor,
    row_offset: int = 0,
    materialise: bool = False,
    subpool: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean InfoNCE loss over k, and per-k loss and accuracy (both shape (K,)).

    frames: (B, T, H) targets z; predictions: (B, T, K, H); pool: (P, H) candidate negatives,
    where this batch's frames are rows [row_offset * T, (row_offset + B) * T) of the pool;
    draws: (B, T, N) from `draw_negatives`. `materialise=True` is the straightforward
    formulation, kept for the benchmark and as the reference in tests. With `subpool` (S,)
    and its draws from `draw_subpool`, draws index the sub-pool.
    """
    b, t, k_max, h = predictions.shape
    n = draws.shape[-1]
    draws = draws.to(frames.device)
    if subpool is not None:
        subpool = subpool.to(frames.device)
        pool = pool[subpool]
    rows = torch.arange(b, device=frames.device).unsqueeze(1) + row_offset
    losses, accuracies = [], []
    for k in range(1, k_max + 1):
        span = t - k
        predicted = predictions[:, :span, k - 1].reshape(-1, h)
        target = frames[:, k:].reshape(-1, h)
        positive = (predicted * target).sum(-1, keepdim=True)
        where = (rows * t + torch.arange(k, t, device=frames.device)).reshape(-1, 1)
        index = draws[:, :span].reshape(-1, n)
        if subpool is None:
            index = index + (index >= where).long()  # skip over the positive
        if materialise:
            # CPC_audio's way: a (rows, 1 + N, H) candidates tensor times the prediction.
            negatives = (pool[index] * predicted.unsqueeze(1)).sum(-1)
        else:
            negatives = (predicted @ pool.T).gather(1, index)
        if subpool is not None:  # a draw of the positive's own frame is no negative
            negatives = negatives.masked_fill(subpool[index] == where, float("-inf"))
        logits = torch.cat([positive, negatives], dim=1).float()
        zeros = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        losses.append(F.cross_entropy(logits, zeros))
        accuracies.append((logits.argmax(1) == 0).float().mean())
    per_k_loss = torch.stack(losses)
    return per_k_loss.mean(), per_k_loss.detach(), torch.stack(accuracies).detach()
