"""InfoNCE over k = 1..K future steps, scored without materialising the negatives.

For every frame t and step k the prediction W_k c_t is scored against the true z_{t+k} and
N negatives drawn from a pool of frames (the batch's, or the global batch's under DDP). The
straightforward formulation (the seed study's and CPC_audio's) builds a (positions x (1 + N) x H)
candidates tensor for every k and multiplies it by the predictions (about 3 GB of candidates
per step at the seed study's config, as much again for the product). Here each step k is one
matrix product against the pool, (positions x P), then a gather of N scores per row; for a pool
far larger than N (under DDP: the global batch's frames) a gather of each row's N candidates
instead; either in row chunks (`PoolScores`), so what the loss keeps for backward grows with
positions x N, never with N x H or with the pool.

With a sub-pool (`pretrain.negative_pool`), each step first draws a random subset of S pool
frames and its negatives among them: the product is (positions x S), so the loss costs S / P of
the whole pool's, and every negative is still a uniform draw from the pool; a draw that lands on
the positive's own frame is masked out of the softmax.

Three scoring paths give the same loss (`SCORERS`): `lean` (above: on a CPU, the product or the
gather by pool size), `gemm` (always the product, its operands in bf16 on a GPU, where a gather's
backward, an `index_add_` of atomics, is the slow part: 31 % of a step on an H200) and
`materialise` (the reference). `scorer_for` picks one per device.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

CHUNK = 1 << 24  # floats per chunk of the scores' intermediate: 64 MB of float32 at a time
GATHER_ABOVE = 16  # lean: pools over 16 x N frames: gather the N drawn rows rather than score every frame
SCORERS = ("lean", "gemm", "materialise")


def scorer_for(device: torch.device) -> str:
    """`gemm` on CUDA, `lean` elsewhere. On an H200 at the seed config (P = 4 096 and 16 384
    frames, N = 128) a bf16 product against the pool plus a gather took 9.3 and 41 ms a step
    against the lean loss's gather path's 57 and 225 ms (issue #24's profile); on a CPU the lean
    loss is the measured fastest (benchmarks/bench_cpc.py)."""
    return "gemm" if device.type == "cuda" else "lean"


class PoolScores(torch.autograd.Function):
    """`(predicted @ pool.T).gather(1, index)`, (R, N): each row's scores against its N drawn
    pool rows, without keeping any (R x P) or (R x N x H) intermediate for backward.

    Autograd's own gather saves its whole input: every k's full product would stay alive until
    the backward pass (12 x 4 096 x 32 768 floats, 6.4 GB, at a DDP-sized pool). Here forward
    and backward go through row chunks of at most `CHUNK` floats, each freed at once. With
    `gathered` False the pool is scored by one matrix product per chunk (backward scatters into
    a chunk-sized matrix and multiplies as autograd's mm does: a single chunk in float32 gives
    autograd's values bit for bit), its operands cast to `dtype` (bf16 on a GPU: the products
    accumulate in float32, the scores are rounded to bf16); with `gathered` True, where the
    product would cost P / N times the work, each row's N candidates are gathered (R x N x H per
    chunk, recomputed in backward), in float32.
    """

    @staticmethod
    def forward(ctx, predicted, pool, index, gathered: bool, dtype: torch.dtype) -> torch.Tensor:
        ctx.save_for_backward(predicted, pool, index)
        ctx.gathered, ctx.dtype = gathered, dtype
        low, low_pool = predicted.to(dtype), pool.to(dtype)
        parts = []
        for s in _chunks(predicted, pool, index, gathered):
            if gathered:
                parts.append(torch.bmm(pool[index[s]], predicted[s].unsqueeze(-1)).squeeze(-1))
            else:
                parts.append((low[s] @ low_pool.T).gather(1, index[s]))
        return torch.cat(parts).to(predicted.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        predicted, pool, index = ctx.saved_tensors
        gathered, dtype = ctx.gathered, ctx.dtype
        grad_predicted, grad_pool = [], None if not gathered else torch.zeros_like(pool)
        low, low_pool = predicted.to(dtype), pool.to(dtype)
        for s in _chunks(predicted, pool, index, gathered):
            if gathered:
                grad_predicted.append(torch.bmm(grad[s].unsqueeze(1), pool[index[s]]).squeeze(1))
                rows = (grad[s].unsqueeze(-1) * predicted[s].unsqueeze(1)).reshape(-1, pool.shape[1])
                grad_pool.index_add_(0, index[s].reshape(-1), rows)
                continue
            scattered = grad.new_zeros(len(index[s]), len(pool)).scatter_add_(1, index[s], grad[s]).to(dtype)
            grad_predicted.append(scattered.mm(low_pool).to(predicted.dtype))
            part = low[s].t().mm(scattered).t().to(pool.dtype)
            grad_pool = part if grad_pool is None else grad_pool + part
        return torch.cat(grad_predicted), grad_pool, None, None, None


def _chunks(predicted: torch.Tensor, pool: torch.Tensor, index: torch.Tensor, gathered: bool) -> list[slice]:
    """Row slices whose intermediate, (rows x P) or (rows x N x H), holds at most `CHUNK` floats."""
    per_row = index.shape[1] * pool.shape[1] if gathered else len(pool)
    step = max(1, CHUNK // max(1, per_row))
    return [slice(i, i + step) for i in range(0, len(predicted), step)]


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


def draw_same_window(generator: torch.Generator, rows: int, length: int, count: int) -> torch.Tensor:
    """Uniform draws in [0, length - 1), shape (rows, length, count): frames of each row's own
    window (the same track), shifted past the positive in `info_nce`. Drawn on the CPU."""
    return torch.randint(0, length - 1, (rows, length, count), generator=generator)


def _same_window_scores(
    predicted: torch.Tensor, frames: torch.Tensor, same: torch.Tensor, k: int
) -> torch.Tensor:
    """(B * span, M) scores of predictions (B, span, H) for step k against frames (B, T, H) of
    their own window: the `same` draws (B, T, M) of each position, shifted past its positive
    frame t + k."""
    b, span, _ = predicted.shape
    scores = torch.bmm(predicted, frames.transpose(1, 2))  # (B, span, T)
    index = same[:, :span]
    positive = torch.arange(k, k + span, device=frames.device).view(1, span, 1)
    index = index + (index >= positive).long()
    return scores.gather(2, index).reshape(b * span, -1)


def info_nce(
    frames: torch.Tensor,
    predictions: torch.Tensor,
    pool: torch.Tensor,
    draws: torch.Tensor,
    row_offset: int = 0,
    scorer: str = "lean",
    subpool: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    same: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean InfoNCE loss over k, and per-k loss and accuracy (both shape (K,)).

    frames: (B, T, H) targets z; predictions: (B, T, K, H); pool: (P, H) candidate negatives,
    where this batch's frames are rows [row_offset * T, (row_offset + B) * T) of the pool;
    draws: (B, T, N) from `draw_negatives`. `scorer` is one of `SCORERS`: `materialise` is the
    straightforward formulation, kept for the benchmark and as the reference in tests; `gemm`
    casts the scoring products' operands to `dtype` (the positives stay in float32). With
    `subpool` (S,) and its draws from `draw_subpool`, draws index the sub-pool. With `same`
    (B, T, M) from `draw_same_window`, each row also gets M negatives from its own window's
    frames (the positive's frame skipped), scored against that window only (B x T x T
    products); `draws` may then be (B, T, 0).
    """
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    b, t, k_max, h = predictions.shape
    n = draws.shape[-1]
    draws = draws.to(frames.device, non_blocking=True)
    if same is not None:
        same = same.to(frames.device, non_blocking=True)
    if subpool is not None:
        subpool = subpool.to(frames.device, non_blocking=True)
        pool = pool[subpool]
    rows = torch.arange(b, device=frames.device).unsqueeze(1) + row_offset
    losses, accuracies = [], []
    for k in range(1, k_max + 1):
        span = t - k
        predicted = predictions[:, :span, k - 1].reshape(-1, h)
        target = frames[:, k:].reshape(-1, h)
        positive = (predicted * target).sum(-1, keepdim=True)
        where = (rows * t + torch.arange(k, t, device=frames.device)).reshape(-1, 1)
        index = draws[:, :span].reshape(b * span, n)
        if subpool is None:
            index = index + (index >= where).long()  # skip over the positive
        if n == 0:
            negatives = predicted.new_zeros(len(predicted), 0)
        elif scorer == "materialise":
            # CPC_audio's way: a (rows, 1 + N, H) candidates tensor times the prediction.
            negatives = (pool[index] * predicted.unsqueeze(1)).sum(-1)
        elif scorer == "gemm":
            negatives = PoolScores.apply(predicted, pool, index, False, dtype)
        else:
            gathered = len(pool) > GATHER_ABOVE * n
            negatives = PoolScores.apply(predicted, pool, index, gathered, predicted.dtype)
        if subpool is not None:  # a draw of the positive's own frame is no negative
            negatives = negatives.masked_fill(subpool[index] == where, float("-inf"))
        if same is not None:
            negatives = torch.cat(
                [negatives, _same_window_scores(predictions[:, :span, k - 1], frames, same, k)], 1
            )
        logits = torch.cat([positive, negatives], dim=1).float()
        zeros = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        losses.append(F.cross_entropy(logits, zeros))
        accuracies.append((logits.argmax(1) == 0).float().mean())
    per_k_loss = torch.stack(losses)
    return per_k_loss.mean(), per_k_loss.detach(), torch.stack(accuracies).detach()
