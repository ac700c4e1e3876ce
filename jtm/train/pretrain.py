"""CPC pretraining: a plain function of the config that returns metrics.

One code path for CPU, one GPU (bf16 autocast, optional torch.compile) and several processes
under `torchrun` (jtm/train/distributed.py). All randomness is a pure function of (seed, epoch,
step): the batches, window shifts and negatives, so a resumed run (jtm/train/checkpoint.py)
ends with the same weights on CPU. A non-finite loss stops training with a TrainingError naming
the step, before any checkpoint could keep the poisoned weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from jtm.atomic import atomic_dir
from jtm.codedeps import code_digest
from jtm.config import PretrainConfig, output_fields
from jtm.errors import TrainingError
from jtm.loading.prefetch import prefetched
from jtm.loading.sampling import plan_epoch
from jtm.loading.windows import WindowDataset, as_batch, load_windows
from jtm.models.artifact import save_model
from jtm.models.encoder import DOWNSAMPLING
from jtm.models.registry import build_cpc
from jtm.models.spec import spec_of
from jtm.train.augment import augment_past
from jtm.train.checkpoint import TrainState, restore_training, save_training
from jtm.train.distributed import Distributed, barrier, gather_frames, setup_distributed, wrap
from jtm.train.infonce import draw_negatives, draw_same_window, draw_subpool, info_nce, scorer_for
from jtm.train.sources import Sources, tables_digest, training_sources
from jtm.train.streams import new_state, select_state, store_state

log = logging.getLogger(__name__)


def lr_factor(step: int, warmup_steps: int, decay_every: int, decay_gamma: float) -> float:
    """Linear warm-up over `warmup_steps`, then x`decay_gamma` every `decay_every` steps."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * (decay_gamma ** (step // decay_every) if decay_every > 0 else 1.0)


def numerics(cfg: PretrainConfig, device: torch.device, world: int) -> dict:
    """What the weights depend on beyond the params' values: the resolved device and precision
    (bf16 autocast runs on CUDA only), torch.compile, the process count, torch's version, the
    CPU kernels' instruction set, and the code (this module and all it imports:
    jtm/codedeps.py). Part of the checkpoint's key and recorded in the model's config.json, so
    a CPU model is never passed off as a GPU one."""
    return {
        "device": device.type,
        "precision": "bf16-autocast" if cfg.bf16 and device.type == "cuda" else "fp32",
        "compile": cfg.compile,
        "processes": world,
        "torch": torch.__version__,
        # the instruction set of torch's CPU kernels: AVX-512 and AVX2 give other float sums
        # (benchmarks/reproducibility.py), so a model records it and a checkpoint is keyed on it
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "code": code_digest(__name__),
    }


def _fingerprint(cfg: PretrainConfig, index_dir: Path, unlabeled: tuple[Path, Path] | None, run: dict) -> str:
    """Identifies a training run: every key that can change the output (the stage's DVC params,
    the same list), the exact index tables (their tracks carry each array's digest, so other
    audio of the same lengths is another run), the ingested corpora's tables and `numerics`."""
    values = {name: getattr(cfg, name) for name in output_fields(PretrainConfig)} | {"numerics": run}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode())
    for table in ("tracks.parquet", "windows.parquet"):
        digest.update((index_dir / table).read_bytes())
    digest.update(tables_digest(unlabeled))
    return digest.hexdigest()


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step]).integers(2**62)))


@torch.no_grad()
def evaluate(model, windows, tracks, cfg: PretrainConfig, device) -> tuple[np.ndarray, np.ndarray]:
    """Per-k loss and accuracy (K,) on the first `val_batches` uniform batches of the val split:
    the training objective (its share of same-window negatives too) on clean audio."""
    model.eval()
    batches = plan_epoch(windows, "uniform", cfg.batch_size, cfg.seed, epoch=0)[: cfg.val_batches]
    dataset = WindowDataset(windows, tracks)
    losses, accuracies = [], []
    for step, batch in enumerate(batches):
        audio = torch.stack([dataset[ref][0] for ref in batch]).to(device)
        frames, _, predictions, _ = model(audio)
        frames = frames.float()
        length = frames.shape[1]
        same_count = same_window_count(cfg)
        draws = draw_negatives(
            _generator(cfg.seed + 1, step),
            len(batch),
            length,
            cfg.n_negatives - same_count,
            len(batch) * length,
        )
        same = (
            draw_same_window(_generator(cfg.seed + 5, step), len(batch), length, same_count)
            if same_count
            else None
        )
        pool = frames.reshape(-1, frames.shape[-1])
        _, loss_k, acc_k = info_nce(
            frames, predictions.float(), pool, draws, scorer=scorer_for(device), same=same
        )
        losses.append(loss_k.cpu().numpy())
        accuracies.append(acc_k.cpu().numpy())
    model.train()
    return np.mean(losses, axis=0), np.mean(accuracies, axis=0)


@dataclasses.dataclass
class Batch:
    """One rank's share of a global batch: audio (b, L), streams and resets (b,), the global
    batch's size and where this share starts in it; its negatives (`step_draws`: this share's
    rows (b, T, N), and the sub-pool (S,) or None), already on their way to the device."""

    audio: torch.Tensor
    streams: torch.Tensor
    resets: torch.Tensor
    size: int
    offset: int
    position: int  # the batch's index in its epoch's plan
    draws: torch.Tensor
    subpool: torch.Tensor | None
    same: torch.Tensor | None  # (b, T, M) draws of same-window negatives, or None


def same_window_count(cfg: PretrainConfig) -> int:
    """M: how many of the N negatives each prediction draws from its own window."""
    return round(cfg.same_track_share * cfg.n_negatives)


def step_draws(
    cfg: PretrainConfig, step: int, size: int, length: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The negatives of `step` for a global batch of `size` windows of `length` frames: pool
    draws (size, length, N - M), the sub-pool (S,) when `pretrain.negative_pool` is below the
    pool (else None), and the same-window draws (size, length, M) when M > 0 (else None; M from
    `pretrain.same_track_share`). A pure function of (seed, step), drawn on the CPU: the same on
    any device."""
    pool, draw_generator, m = size * length, _generator(cfg.seed, step), same_window_count(cfg)
    n = cfg.n_negatives - m
    same = draw_same_window(_generator(cfg.seed + 3, step), size, length, m) if m else None
    if 0 < cfg.negative_pool < pool:  # negatives from a seeded random subset of the pool
        subpool_generator = _generator(cfg.seed + 2, step)
        subpool, draws = draw_subpool(
            subpool_generator, draw_generator, size, length, n, pool, cfg.negative_pool
        )
        return draws, subpool, same
    return draw_negatives(draw_generator, size, length, n, pool), None, same


def epoch_batches(
    dataset, sources: Sources, cfg: PretrainConfig, dist: Distributed, state: TrainState, length: int
):
    """The batches of `state.epoch` from `state.position` on: this rank's rows of each, read by
    `cfg.workers` DataLoader processes, or `cfg.fetch_threads` threads of this one, or here;
    windows of `length` frames. Each batch's negatives are drawn ahead with it, in page-locked
    memory on CUDA, so the step neither waits for the CPU nor copies from pageable memory."""
    shares = sources.rank_batches(cfg, state.epoch, dist.rank, dist.world)
    jobs = [
        (share, state.step + j) for j, share in enumerate(s for s in shares if s.position >= state.position)
    ]
    cuda = dist.device.type == "cuda"
    pin = (lambda x: x if x is None else x.pin_memory()) if cuda else (lambda x: x)

    def negatives(job):
        share, step = job
        draws, subpool, same = step_draws(cfg, step, share.size, length)
        rows = slice(share.offset, share.offset + len(share.refs))
        return pin(draws[rows]), pin(subpool), pin(None if same is None else same[rows])

    if cfg.workers == 0 and cfg.fetch_threads > 0:

        def fetch(job):
            audio, streams, resets = dataset.__getitems__(job[0].refs)
            return (pin(audio), streams, resets), negatives(job)

        loaded = prefetched(fetch, jobs, cfg.fetch_threads)
    else:
        loader = DataLoader(
            dataset,
            batch_sampler=[share.refs for share, _ in jobs],
            num_workers=cfg.workers,
            collate_fn=as_batch,
            pin_memory=cuda,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        loaded = zip(loader, prefetched(negatives, jobs, 1) if cuda else map(negatives, jobs), strict=True)
    device = dist.device
    for ((audio, streams, resets), (draws, subpool, same)), (share, _) in zip(loaded, jobs, strict=True):
        subpool, same = (None if x is None else x.to(device, non_blocking=True) for x in (subpool, same))
        yield Batch(audio.to(device, non_blocking=True), streams, resets, share.size, share.offset,
                    share.position, draws.to(device, non_blocking=True), subpool, same)  # fmt: skip


def train_step(trained, optimizer, scheduler, batch: Batch, state: TrainState, cfg, dist, autocast):
    """One optimiser step on `batch`; per-k loss and accuracy (K,), left on the device. The
    loss is scored in float32, but for the GPU's GEMM scorer's bf16 products under `bf16`."""
    carried = select_state(state.carried, batch.streams, batch.resets)
    past = augment_past(batch.audio, cfg, state.step, batch.offset) if cfg.augment else None
    with autocast:
        frames, _, predictions, new = trained(batch.audio, carried, past)
    store_state(state.carried, batch.streams, new)
    frames = frames.float()
    if frames.shape[1] != batch.draws.shape[1]:
        raise ValueError(
            f"the model gave {frames.shape[1]} frames a window, its draws {batch.draws.shape[1]}"
        )
    loss, loss_k, acc_k = info_nce(
        frames,
        predictions.float(),
        gather_frames(frames, dist.world),
        batch.draws,
        batch.offset,
        scorer=scorer_for(dist.device),
        subpool=batch.subpool,
        same=batch.same,
        dtype=torch.bfloat16 if cfg.bf16 and dist.device.type == "cuda" else torch.float32,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    state.step, state.position = state.step + 1, batch.position + 1
    return loss_k.detach(), acc_k.detach()


MEASUREMENTS = ("windows_per_s", "gpu_peak_gb")  # logged to MLflow, kept out of the curves files


class Progress:
    """Per-k training figures since the last log step, the curves and the speed (windows/s; on
    CUDA also the peak GPU memory so far, GB)."""

    def __init__(self, cfg: PretrainConfig, state: TrainState, tracker, main: bool, device: torch.device):
        self.cfg, self.state, self.tracker, self.main, self.device = cfg, state, tracker, main, device
        # a resumed run's steps since the last logged row, so the next row averages the same steps
        pending = state.pending or {"loss": torch.zeros(0), "accuracy": torch.zeros(0)}
        self.losses = list(pending["loss"].to(device).unbind(0))
        self.accuracies = list(pending["accuracy"].to(device).unbind(0))
        self.first = state.step + 1 - len(self.losses)
        self.windows, self.clock = 0, time.perf_counter()
        self.loss_k = self.acc_k = np.zeros(cfg.n_predicts)
        if state.history["train"]:  # resumed: the last logged figures, even if no step is left
            last = state.history["train"][-1]
            self.loss_k = np.array([last[f"loss_k{k + 1}"] for k in range(cfg.n_predicts)], np.float32)
            self.acc_k = np.array([last[f"acc_k{k + 1}"] for k in range(cfg.n_predicts)], np.float32)

    def add(self, loss_k: torch.Tensor, acc_k: torch.Tensor, windows: int) -> None:
        self.losses.append(loss_k)
        self.accuracies.append(acc_k)
        self.windows += windows

    def keep_pending(self) -> None:
        """Put the figures of the steps since the last logged row into the state, on the CPU,
        for the checkpoint about to be saved."""
        stacked = (torch.stack(x).cpu() if x else torch.zeros(0) for x in (self.losses, self.accuracies))
        self.state.pending = dict(zip(("loss", "accuracy"), stacked, strict=True))

    def check_finite(self) -> None:
        """Raise TrainingError naming the first step since the last check whose loss is not finite."""
        if not self.losses:
            return
        finite = torch.stack(self.losses).isfinite().all(1).cpu().numpy()
        if not finite.all():
            step = self.first + int(np.argmin(finite))
            raise TrainingError(
                f"pretraining loss became non-finite at step {step}: stopped; the last checkpoint "
                f"(before step {step}) is kept. Lower pretrain.lr or check the audio."
            )

    def log(self, lr: float) -> None:
        self.check_finite()
        self.loss_k = torch.stack(self.losses).mean(0).cpu().numpy()
        self.acc_k = torch.stack(self.accuracies).mean(0).cpu().numpy()
        speed = self.windows / (time.perf_counter() - self.clock)
        self.losses, self.accuracies, self.first = [], [], self.state.step + 1
        self.windows, self.clock = 0, time.perf_counter()
        if self.main:
            log.info(
                "step %d: loss %.3f, k=1 accuracy %.3f, %.1f windows/s",
                self.state.step,
                self.loss_k.mean(),
                self.acc_k[0],
                speed,
            )
            extra = {"windows_per_s": speed, "lr": lr}
            if self.device.type == "cuda":
                extra["gpu_peak_gb"] = torch.cuda.max_memory_allocated(self.device) / 1e9
            self.record("train", self.loss_k, self.acc_k, extra)

    def record(self, prefix: str, loss_k, acc_k, extra: dict) -> None:
        values = per_k(prefix, loss_k, acc_k) | extra
        # Speed and memory are measurements, not results: MLflow gets them, the curves file (an
        # output that must be identical across runs) does not.
        kept = {k.removeprefix(f"{prefix}_"): v for k, v in values.items() if k not in MEASUREMENTS}
        self.state.history[prefix].append({"step": self.state.step} | kept)
        if self.tracker is not None:
            self.tracker.metrics(values, step=self.state.step)


def pretrain(
    index_dir: str | Path,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    cfg: PretrainConfig,
    tracker=None,
    unlabeled: tuple[str | Path, str | Path] | None = None,
) -> dict:
    """Train CPC on the index's train split and the ingested corpora, if any (`unlabeled`: the
    ingest and leakage stages' folders; files the leakage guard matched are left out); write
    the model folder (jtm/models/artifact.py), metrics.json and curves_{train,val}.csv to
    out_dir.

    `tracker` (jtm.tracking) receives per-step curves and the final artifacts; may be None.
    Returns final metrics (per-k train and val loss/accuracy).
    """
    index_dir, out_dir, checkpoint_dir = Path(index_dir), Path(out_dir), Path(checkpoint_dir)
    unlabeled = tuple(Path(p) for p in unlabeled) if unlabeled is not None else None
    dist = setup_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # float sums depend on the thread count
    torch.manual_seed(cfg.seed)
    model = build_cpc(spec_of(cfg)).to(dist.device)
    trained = wrap(model, dist, cfg.compile)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.decay_every, cfg.decay_gamma)
    )
    sources = training_sources(index_dir, unlabeled, cfg)
    val_windows, val_tracks = load_windows(index_dir, ("val",))
    if sources.windows.empty:
        raise ValueError(f"{index_dir}: no train windows")
    window = int(sources.windows["length"].iloc[0])
    dataset = WindowDataset(sources.windows, sources.tracks)
    run = numerics(cfg, dist.device, dist.world)
    fingerprint = _fingerprint(cfg, index_dir, unlabeled, run)
    resolved = dataclasses.asdict(cfg) | {"numerics": run}
    checkpoint = checkpoint_dir / f"rank{dist.rank}-of-{dist.world}.pt"
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    state = restore_training(checkpoint, fingerprint, parts, dist.device) or TrainState(
        carried=new_state(model, cfg.batch_size, dist.device) if cfg.sampling == "sequential" else None
    )
    autocast = torch.autocast(
        dist.device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and dist.device.type == "cuda"
    )
    progress = Progress(cfg, state, tracker, dist.main, dist.device)
    while state.step < cfg.steps:
        for batch in epoch_batches(dataset, sources, cfg, dist, state, window // DOWNSAMPLING):
            if state.step >= cfg.steps:
                break
            progress.add(
                *train_step(trained, optimizer, scheduler, batch, state, cfg, dist, autocast), batch.size
            )
            last = state.step == cfg.steps
            if state.step % cfg.log_every == 0 or last:
                progress.log(scheduler.get_last_lr()[0])
            if dist.main and not val_windows.empty and (state.step % cfg.val_every == 0 or last):
                progress.record("val", *evaluate(model, val_windows, val_tracks, cfg, dist.device), {})
            if state.step % cfg.checkpoint_every == 0 or last:
                progress.check_finite()
                progress.keep_pending()
                save_training(checkpoint, fingerprint, parts, state, resolved)
        else:
            state.epoch, state.position = state.epoch + 1, 0
    metrics: dict = {"steps": state.step, "epochs": state.epoch, "corpora": sources.summary}
    if dist.main:
        val_loss_k, val_acc_k = (
            evaluate(model, val_windows, val_tracks, cfg, dist.device)
            if not val_windows.empty
            else (progress.loss_k, progress.acc_k)
        )
        metrics |= per_k("train", progress.loss_k, progress.acc_k) | per_k("val", val_loss_k, val_acc_k)
        metrics["chance_accuracy"] = 1 / (1 + cfg.n_negatives)
        _write_outputs(out_dir, model, cfg, resolved, window, metrics, state.history)
        if tracker is not None:
            tracker.artifacts(out_dir)
        print("per-k accuracy (val): " + " ".join(f"k{k + 1}={a:.3f}" for k, a in enumerate(val_acc_k)))
    barrier(dist)
    return metrics


def per_k(prefix: str, loss_k: np.ndarray, acc_k: np.ndarray) -> dict:
    out = {f"{prefix}_loss": float(np.mean(loss_k)), f"{prefix}_acc_k1": float(acc_k[0])}
    out.update({f"{prefix}_loss_k{k + 1}": float(v) for k, v in enumerate(loss_k)})
    out.update({f"{prefix}_acc_k{k + 1}": float(v) for k, v in enumerate(acc_k)})
    return out


def _write_outputs(
    out_dir: Path, model, cfg: PretrainConfig, resolved: dict, window: int, metrics: dict, history: dict
) -> None:
    """The model folder (model.pt, config.json: `resolved`, the params and `numerics`),
    metrics.json, and curves_train.csv / curves_val.csv (step, loss, acc_k1, per-k loss_k*/acc_k*, ...)."""
    with atomic_dir(out_dir) as tmp:
        save_model(tmp, model, spec_of(cfg), window, resolved)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        for split, rows in history.items():
            pd.DataFrame(rows, columns=None if rows else ["step", "loss", "acc_k1"]).to_csv(
                tmp / f"curves_{split}.csv", index=False
            )


def summarize_model(folder: str | Path) -> str | None:
    """One line for people about a trained model, from its metrics.json (None if absent)."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    last = max(int(k.rsplit("_k", 1)[1]) for k in m if k.startswith("val_acc_k"))
    return (
        f"CPC model {path.parent}: {m['steps']} steps, val accuracy k=1 {m['val_acc_k1']:.3f}, "
        f"k={last} {m[f'val_acc_k{last}']:.3f} (chance {m['chance_accuracy']:.3f})"
    )
