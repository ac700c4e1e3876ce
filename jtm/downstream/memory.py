"""What a probe cell must hold in memory, checked against `downstream.memory_gb` before it loads.

A probe trains full-batch (L-BFGS: jtm/downstream/probe.py), so its training matrix is in memory
by design, and grows with the labelled windows: the one thing in the study that does. Per job
(float32, n examples: windows, or windows x frames for transcription)::

    train   n x (dim + 2 outputs)     inputs (standardised in place); targets
            + c x 4 outputs           logits, loss and gradients of one chunk (c <= 262 144)
    val     n x (dim + outputs)       inputs and probabilities
    test    n x (dim + 4 outputs)     inputs; probabilities, as batches and joined; the rolls
                                      mir_eval scores (transcription)

A cell runs `downstream.threads` such jobs side by side (forked workers), beside the task's
targets (shared). The estimate is the figure an out-of-memory failure would otherwise be.
"""

from __future__ import annotations

import numpy as np

from jtm.config import DownstreamConfig
from jtm.downstream.probe import CHUNK
from jtm.errors import ConfigError
from jtm.features.embed import load_embeddings

FLOAT = 4
GB = 1e9


def _examples(rows: int, framewise: bool, frames: int, stride: int) -> int:
    return rows * (len(range(0, frames, stride)) if framewise else 1)


def probe_bytes(
    windows: tuple[int, int, int],
    framewise: bool,
    frames: int,
    stride: int,
    dim: int,
    outputs: int,
    processes: int,
) -> int:
    """Estimated peak bytes of `processes` probe jobs side by side, each on (train, val, test)
    `windows` of `frames` frames (every `stride`-th trains) of `dim` features, `outputs` labels;
    the task's targets (shared) not included."""
    train, val, test = windows
    train = _examples(train, framewise, frames, stride)
    val = _examples(val, framewise, frames, stride)
    test = _examples(test, framewise, frames, 1)
    job = FLOAT * (
        train * (dim + 2 * outputs) + min(train, CHUNK) * 4 * outputs
        + val * (dim + outputs) + test * (dim + 4 * outputs)
    )  # fmt: skip
    return job * max(processes, 1)


def probe_cell_bytes(cell, features: list[str], cfg: DownstreamConfig, processes: int) -> int:
    """Estimated peak bytes of a probe cell (`cell`: jtm.downstream.inputs.CellInputs) whose
    methods read `features`, run in `processes` workers, with its targets."""
    labels = cell.data.labels
    framewise = labels.framewise
    shapes = [load_embeddings(cell.embeddings, f)[1 if framewise else 2].shape for f in features]
    dim, frames = max(s[-1] for s in shapes), shapes[0][1] if framewise else 1
    stride = cfg.frame_stride if framewise else 1
    windows = (len(cell.train), len(cell.val), len(cell.test))
    need = probe_bytes(windows, framewise, frames, stride, dim, len(labels.classes), processes)
    return need + int(np.asarray(labels.targets).nbytes)


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
