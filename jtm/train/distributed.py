"""Several processes under `torchrun`: which rank this is, on which device, and the global pool.

Under DistributedDataParallel the global batch is split across ranks and negatives come from
the whole global batch (frames are all-gathered with autograd), so N processes compute the
same loss and gradients as one process with the same global batch. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from jtm.devices import resolve_device


@dataclasses.dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = resolve_device(device, "pretrain.device").type == "cuda"
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        target = torch.device("cuda", local)
    else:
        target = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world, target)


def wrap(model: torch.nn.Module, dist: Distributed, compile_model: bool) -> torch.nn.Module:
    """The module the loop calls: DDP across ranks, torch.compile'd if asked (same weights)."""
    trained = model
    if dist.world > 1:
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(trained) if compile_model else trained


def gather_frames(frames: torch.Tensor, world: int) -> torch.Tensor:
    """The global batch's frames (B, T, H) as a (P, H) pool; gradients flow back to every rank."""
    if world == 1:
        return frames.reshape(-1, frames.shape[-1])
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(frames), dim=0).reshape(-1, frames.shape[-1])


def barrier(dist: Distributed) -> None:
    if dist.world > 1:
        torch.distributed.barrier()
