"""What a probe cell must hold in memory, checked against `downstream.memory_gb` before it loads.

A probe trains full-batch (L-BFGS: jtm/downstream/probe.py), so its training matrix is in memory
by design, and grows with the labelled windows: the one thing in the study that does. Per job
(float32, n examples: windows, or windows x frames for transcription)::

    train   n x (2 dim + 4 outputs)   inputs as read and standardised; logits, loss, gradients
    val     n x (dim + outputs)       inputs and probabilities
    test    n x (dim + 2 outputs)     inputs, probabilities and their sorted copy for scoring

A cell runs `downstream.threads` such jobs side by side (forked workers), beside the task's
targets (shared). The estimate is the figure an out-of-memory failure would otherwise be.
"""

from __future__ import annotations

import numpy as np

from jtm.config import DownstreamConfig
from jtm.errors import ConfigError
from jtm.features.embed import load_embeddings

FLOAT = 4
GB = 1e9


def _examples(rows: int, framewise: bool, frames: int, stride: int) -> int:
    return rows * (len(range(0, frames, stride)) if framewise else 1)


def probe_cell_bytes(cell, features: list[str], cfg: DownstreamConfig, processes: int) -> int:
    """Estimated peak bytes of a probe cell (`cell`: jtm.downstream.inputs.CellInputs) whose
    methods read `features`, run in `processes` workers."""
    labels = cell.data.labels
    framewise, outputs = labels.framewise, len(labels.classes)
    shapes = [load_embeddings(cell.embeddings, f)[1 if framewise else 2].shape for f in features]
    dim, frames = max(s[-1] for s in shapes), shapes[0][1] if framewise else 1
    stride = cfg.frame_stride if framewise else 1
    train = _examples(len(cell.train), framewise, frames, stride)
    val = _examples(len(cell.val), framewise, frames, stride)
    test = _examples(len(cell.test), framewise, frames, 1)
    job = FLOAT * (train * (2 * dim + 4 * outputs) + val * (dim + outputs) + test * (dim + 2 * outputs))
    return job * max(processes, 1) + int(np.asarray(labels.targets).nbytes)


def check_probe_memory(cell, features: list[str], cfg: DownstreamConfig, processes: int) -> None:
    """Raise a ConfigError naming the params to change when the cell would need more than
    `downstream.memory_gb`."""
    need = probe_cell_bytes(cell, features, cfg, processes)
    if need <= cfg.memory_gb * GB:
        return
    task = cell.data.labels.task
    fixes = ["raise downstream.memory_gb (if the machine has it)"]
    if processes > 1:
        fixes.append(
            f"lower downstream.threads ({processes} probes train side by side, each with its own matrix)"
        )
    if cell.data.labels.framewise:
        fixes.append(
            f"raise downstream.frame_stride (now {cfg.frame_stride}: every frame_stride-th frame trains)"
        )
    raise ConfigError(
        f"the {task} probes would need about {need / GB:.1f} GB, "
        f"over downstream.memory_gb = {cfg.memory_gb:g} "
        f"({len(cell.train)} labelled train windows, {len(cell.test)} test windows): " + "; or ".join(fixes)
    )
