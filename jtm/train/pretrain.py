"""CPC pretraining: a plain function of the config that returns metrics.

One code path for CPU, one GPU (bf16 autocast, optional torch.compile) and several processes
under `torchrun` (DistributedDataParallel; NCCL on GPUs, gloo on CPU). Under DDP the global
batch is split across ranks and negatives come from the whole global batch (frames are
all-gathered with autograd), so N processes compute the same loss and gradients as one process
with the same global batch.

All randomness is a pure function of (seed, epoch, step): the batches, window shifts and
negatives. A checkpoint therefore needs only the model, optimiser, scheduler, position and the
sequential streams' carried state, and a resumed run ends with the same weights on CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from jtm.atomic import atomic_dir
from jtm.config import PretrainConfig
from jtm.data.sampling import STRATEGIES, plan_epoch, split_for_rank
from jtm.data.windows import WindowDataset, load_windows
from jtm.models.encoder import DOWNSAMPLING
from jtm.models.registry import ModelSpec, build_cpc
from jtm.train.checkpoint import load_checkpoint, save_checkpoint
from jtm.train.infonce import draw_negatives, info_nce

log = logging.getLogger(__name__)

# Fields that do not change what is computed: a checkpoint stays valid when they change.
_BOOKKEEPING = {"workers", "log_every", "val_every", "val_batches", "checkpoint_every", "device", "compile"}


@dataclasses.dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def model_spec(cfg: PretrainConfig) -> ModelSpec:
    """The model part of the pretrain section (ModelSpec's fields are a subset of its keys)."""
    return ModelSpec(**{field.name: getattr(cfg, field.name) for field in dataclasses.fields(ModelSpec)})


def lr_factor(step: int, warmup_steps: int, decay_every: int, decay_gamma: float) -> float:
    """Linear warm-up over `warmup_steps`, then x`decay_gamma` every `decay_every` steps."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * (decay_gamma ** (step // decay_every) if decay_every > 0 else 1.0)


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        target = torch.device("cuda", local)
    else:
        target = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world, target)


def _fingerprint(cfg: PretrainConfig, index_dir: Path) -> str:
    """Identifies a training run: the config (bookkeeping aside) and the exact index tables."""
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _BOOKKEEPING}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode())
    for table in ("tracks.parquet", "windows.parquet"):
        digest.update((index_dir / table).read_bytes())
    return digest.hexdigest()


def _new_state(model, batch_size: int, device):
    """Zero carried state for every sequential stream, or None for a transformer context."""
    rnn = getattr(model.context, "net", None)
    if not isinstance(rnn, torch.nn.RNNBase):
        return None
    shape = (rnn.num_layers, batch_size, rnn.hidden_size)
    if isinstance(rnn, torch.nn.LSTM):
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))
    return torch.zeros(shape, device=device)


def _select_state(state, streams: torch.Tensor, resets: torch.Tensor):
    """The carried state of these streams, zeroed where a stream starts a new track."""
    if state is None:
        return None
    keep = (~resets).to(streams.device).float().view(1, -1, 1)
    if isinstance(state, tuple):
        return tuple((s[:, streams] * keep).contiguous() for s in state)
    return (state[:, streams] * keep).contiguous()


def _store_state(state, streams: torch.Tensor, new) -> None:
    if state is None:
        return
    pairs = zip(state, new, strict=True) if isinstance(state, tuple) else [(state, new)]
    for full, part in pairs:
        full[:, streams] = part.detach()


@torch.no_grad()
def evaluate(model, windows, tracks, cfg: PretrainConfig, device) -> tuple[np.ndarray, np.ndarray]:
    """Per-k loss and accuracy on the first `val_batches` uniform batches of the val split."""
    model.eval()
    batches = plan_epoch(windows, "uniform", cfg.batch_size, cfg.seed, epoch=0)[: cfg.val_batches]
    dataset = WindowDataset(windows, tracks)
    losses, accuracies = [], []
    for step, batch in enumerate(batches):
        audio = torch.stack([dataset[ref][0] for ref in batch]).to(device)
        frames, _, predictions, _ = model(audio)
        frames = frames.float()
        length = frames.shape[1]
        draws = draw_negatives(
            _generator(cfg.seed + 1, step), len(batch), length, cfg.n_negatives, len(batch) * length
        )
        _, loss_k, acc_k = info_nce(frames, predictions.float(), frames.reshape(-1, frames.shape[-1]), draws)
        losses.append(loss_k.cpu().numpy())
        accuracies.append(acc_k.cpu().numpy())
    model.train()
    return np.mean(losses, axis=0), np.mean(accuracies, axis=0)


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step]).integers(2**62)))


def _gather(frames: torch.Tensor, world: int) -> torch.Tensor:
    """The global batch's frames as a (P, H) pool; gradients flow back to every rank."""
    if world == 1:
        return frames.reshape(-1, frames.shape[-1])
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(frames), dim=0).reshape(-1, frames.shape[-1])


def pretrain(
    index_dir: str | Path,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    cfg: PretrainConfig,
    tracker=None,
) -> dict:
    """Train CPC on the index's train split; write model.pt, config.json, metrics.json to out_dir.

    `tracker` (jtm.tracking) receives per-step curves and the final artifacts; may be None.
    Returns final metrics (per-k train and val loss/accuracy, windows/s).
    """
    index_dir, out_dir, checkpoint_dir = Path(index_dir), Path(out_dir), Path(checkpoint_dir)
    if cfg.sampling not in STRATEGIES:
        raise ValueError(f"pretrain.sampling={cfg.sampling!r}: use one of {STRATEGIES}")
    dist = setup_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # float sums depend on the thread count
    torch.manual_seed(cfg.seed)
    model = build_cpc(model_spec(cfg)).to(dist.device)
    trained = model
    if dist.world > 1:
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if cfg.compile:
        trained = torch.compile(trained)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.decay_every, cfg.decay_gamma)
    )
    windows, tracks = load_windows(index_dir, ("train",))
    val_windows, val_tracks = load_windows(index_dir, ("val",))
    if windows.empty:
        raise ValueError(f"{index_dir}: no train windows")
    dataset = WindowDataset(windows, tracks)
    fingerprint = _fingerprint(cfg, index_dir)
    checkpoint_path = checkpoint_dir / f"rank{dist.rank}-of-{dist.world}.pt"
    step, epoch, position = 0, 0, 0
    history: dict[str, list[dict]] = {"train": [], "val": []}  # the curves written beside the model
    carried = _new_state(model, cfg.batch_size, dist.device) if cfg.sampling == "sequential" else None
    saved = load_checkpoint(checkpoint_path)
    if saved is not None and saved["fingerprint"] == fingerprint:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        step, epoch, position, carried = saved["step"], saved["epoch"], saved["position"], saved["carried"]
        history = saved.get("history", history)
        carried = None if carried is None else _to(carried, dist.device)
        log.info("resuming from %s at step %d", checkpoint_path, step)
    elif saved is not None:
        log.warning("ignoring %s: it belongs to another config or index", checkpoint_path)

    autocast = torch.autocast(
        dist.device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and dist.device.type == "cuda"
    )
    running = {"loss": [], "acc": []}
    window_count, clock = 0, time.perf_counter()
    train_loss_k = train_acc_k = np.zeros(cfg.n_predicts)
    if history["train"]:  # resumed: the last logged training figures, even if no step is left
        last = history["train"][-1]
        train_loss_k = np.array([last[f"loss_k{k + 1}"] for k in range(cfg.n_predicts)], np.float32)
        train_acc_k = np.array([last[f"acc_k{k + 1}"] for k in range(cfg.n_predicts)], np.float32)
    while step < cfg.steps:
        plan = plan_epoch(windows, cfg.sampling, cfg.batch_size, cfg.seed, epoch, cfg.category, cfg.jitter)
        shares = [(j, split_for_rank(b, dist.rank, dist.world), len(b)) for j, b in enumerate(plan)]
        if not any(s is not None for _, s, _ in shares):
            raise ValueError(f"no batch of {cfg.sampling!r} sampling divides among {dist.world} processes")
        shares = [(j, s, size) for j, s, size in shares if s is not None and j >= position]
        loader = DataLoader(
            dataset,
            batch_sampler=[s[0] for _, s, _ in shares],
            num_workers=cfg.workers,
            pin_memory=dist.device.type == "cuda",
            persistent_workers=False,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for (audio, streams, resets), (j, (_, offset), size) in zip(loader, shares, strict=True):
            if step >= cfg.steps:
                break
            audio = audio.to(dist.device, non_blocking=True)
            state = _select_state(carried, streams, resets)
            with autocast:
                frames, _, predictions, new_state = trained(audio, state)
            _store_state(carried, streams, new_state)
            frames = frames.float()  # the loss in float32 whatever the autocast dtype
            length = frames.shape[1]
            draws = draw_negatives(_generator(cfg.seed, step), size, length, cfg.n_negatives, size * length)
            loss, loss_k, acc_k = info_nce(
                frames,
                predictions.float(),
                _gather(frames, dist.world),
                draws[offset : offset + len(audio)],
                offset,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step, position = step + 1, j + 1
            window_count += size
            # Kept on the device: copying to the host here would stall a GPU every step.
            running["loss"].append(loss_k)
            running["acc"].append(acc_k)
            if step % cfg.log_every == 0 or step == cfg.steps:
                train_loss_k = torch.stack(running["loss"]).mean(0).cpu().numpy()
                train_acc_k = torch.stack(running["acc"]).mean(0).cpu().numpy()
                speed = window_count / (time.perf_counter() - clock)
                running, window_count, clock = {"loss": [], "acc": []}, 0, time.perf_counter()
                if dist.main:
                    log.info(
                        "step %d: loss %.3f, k=1 accuracy %.3f, %.1f windows/s",
                        step,
                        train_loss_k.mean(),
                        train_acc_k[0],
                        speed,
                    )
                    _track(
                        history,
                        tracker,
                        "train",
                        train_loss_k,
                        train_acc_k,
                        step,
                        {"windows_per_s": speed, "lr": scheduler.get_last_lr()[0]},
                    )
            if dist.main and not val_windows.empty and (step % cfg.val_every == 0 or step == cfg.steps):
                val_loss_k, val_acc_k = evaluate(model, val_windows, val_tracks, cfg, dist.device)
                _track(history, tracker, "val", val_loss_k, val_acc_k, step, {})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(
                    checkpoint_path,
                    {
                        "fingerprint": fingerprint,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "position": position,
                        "carried": _to(carried, "cpu"),
                        "history": history,
                        "torch_rng": torch.get_rng_state(),
                        "config": dataclasses.asdict(cfg),
                    },
                )
        else:
            epoch, position = epoch + 1, 0
    metrics: dict = {"steps": step, "epochs": epoch}
    if dist.main:
        val_loss_k, val_acc_k = (
            evaluate(model, val_windows, val_tracks, cfg, dist.device)
            if not val_windows.empty
            else (train_loss_k, train_acc_k)
        )
        metrics.update(_per_k("train", train_loss_k, train_acc_k) | _per_k("val", val_loss_k, val_acc_k))
        metrics["chance_accuracy"] = 1 / (1 + cfg.n_negatives)
        _write_model(out_dir, model, cfg, windows, metrics, history)
        if tracker is not None:
            tracker.artifacts(out_dir)
        print("per-k accuracy (val): " + " ".join(f"k{k + 1}={a:.3f}" for k, a in enumerate(val_acc_k)))
    if dist.world > 1:
        torch.distributed.barrier()
    return metrics


def _to(state, device):
    if state is None:
        return None
    return tuple(s.to(device) for s in state) if isinstance(state, tuple) else state.to(device)


def _per_k(prefix: str, loss_k: np.ndarray, acc_k: np.ndarray) -> dict:
    out = {f"{prefix}_loss": float(np.mean(loss_k)), f"{prefix}_acc_k1": float(acc_k[0])}
    out.update({f"{prefix}_loss_k{k + 1}": float(v) for k, v in enumerate(loss_k)})
    out.update({f"{prefix}_acc_k{k + 1}": float(v) for k, v in enumerate(acc_k)})
    return out


def _track(history: dict, tracker, prefix: str, loss_k, acc_k, step: int, extra: dict) -> None:
    values = _per_k(prefix, loss_k, acc_k) | extra
    # The speed is a measurement, not a result: MLflow gets it, the curves file (an output that
    # must be identical across runs) does not.
    kept = {k.removeprefix(f"{prefix}_"): v for k, v in values.items() if k != "windows_per_s"}
    history[prefix].append({"step": step} | kept)
    if tracker is not None:
        tracker.metrics(values, step=step)


def _write_model(out_dir: Path, model, cfg: PretrainConfig, windows, metrics: dict, history: dict) -> None:
    """model.pt (a weights-only state dict), config.json (how to rebuild it), metrics.json, and
    curves_train.csv / curves_val.csv (step, loss, acc_k1, per-k loss_k*/acc_k*, ...)."""
    length = int(windows["length"].iloc[0])
    with atomic_dir(out_dir) as tmp:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(state, tmp / "model.pt")
        config = {
            "model": dataclasses.asdict(model_spec(cfg)),
            "sample_rate": 16_000,
            "window": length,
            "frames_per_window": length // DOWNSAMPLING,
            "pretrain": dataclasses.asdict(cfg),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        for split, rows in history.items():
            pd.DataFrame(rows, columns=None if rows else ["step", "loss", "acc_k1"]).to_csv(
                tmp / f"curves_{split}.csv", index=False
            )


def load_encoder(path: str | Path, layer: str = "context") -> torch.nn.Module:
    """A module that embeds 16 kHz audio (B, L) -> (B, L // 160, H), in eval mode.

    `path` is the pretrain output folder (or its model.pt); `layer` "context" or "encoder".
    """
    from jtm.models.cpc import AudioEmbedder

    path = Path(path)
    folder = path.parent if path.suffix == ".pt" else path
    config = json.loads((folder / "config.json").read_text())
    model = build_cpc(ModelSpec(**config["model"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return AudioEmbedder(model, layer).eval()


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
