"""Where a stage runs its networks: the `device` params (cpu | cuda | auto) and bf16 autocast.

The lowest layer beside jtm/errors.py: pretraining, `embed` and the end-to-end baselines share it.
"""

from __future__ import annotations

import torch

from jtm.errors import ConfigError


def resolve_device(name: str, param: str) -> torch.device:
    """`cpu`, `cuda` (the current CUDA device) or `auto` (CUDA when torch sees one, else the CPU).
    `cuda` where torch sees no CUDA device is a ConfigError naming the param `param`."""
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"{param} is cuda, but torch sees no CUDA device here: use cpu (or auto)")
    return torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on CUDA when `bf16`; a no-op context on the CPU (float32 there, always)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
