"""What pretraining reads: MusicNet's train windows and every ingested corpus (stage `ingest`),
and how each epoch's batches are drawn from them.

With MusicNet alone, batches are planned as they always were (jtm/loading/sampling.py); with
ingested corpora, each source (MusicNet's train split weighted by `pretrain.musicnet_weight`,
each corpus by its `ingest.corpora` weight) feeds the batches in proportion to its weight
(jtm/loading/mixture.py). Evaluation stays on MusicNet's labelled tasks either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow.parquet as pq

from jtm.config import PretrainConfig
from jtm.errors import ConfigError
from jtm.loading.mixture import MixturePlan
from jtm.loading.partition import sharded_epoch
from jtm.loading.sampling import plan_epoch, split_for_rank
from jtm.loading.windows import WindowRef, load_unlabeled, load_windows

MUSICNET = "musicnet"
RATE = 16_000


class RankBatch(NamedTuple):
    """One rank's rows of a global batch: the batch's place in its epoch, the rows' windows, the
    global batch's size and where the rows start in it."""

    position: int
    refs: list[WindowRef]
    size: int
    offset: int


@dataclass
class Sources:
    """Training windows and tracks (MusicNet's first, then the corpora's), each source's weight
    and a summary for the report: source -> {weight, hours, windows}."""

    windows: pd.DataFrame
    tracks: pd.DataFrame
    weights: dict[str, float]
    summary: dict[str, dict]
    mixture: MixturePlan | None = None

    def plan(self, cfg: PretrainConfig, epoch: int) -> list[list[WindowRef]]:
        """The global batches of `epoch` (`pretrain.loader: global`)."""
        if self.mixture is None:
            return plan_epoch(
                self.windows, cfg.sampling, cfg.batch_size, cfg.seed, epoch, cfg.category, cfg.jitter
            )
        return self.mixture.epoch(epoch)

    def rank_batches(self, cfg: PretrainConfig, epoch: int, rank: int, world: int) -> list[RankBatch]:
        """This rank's batches of `epoch`: its share of each global batch (`global`), or its own
        batches over the files dealt to it (`sharded`, jtm/loading/partition.py)."""
        if cfg.loader == "sharded":
            paths = dict(zip(self.tracks["id"], self.tracks["path"], strict=True))
            plans = sharded_epoch(self.windows, paths, self.weights, cfg.sampling, cfg.batch_size, cfg.seed,
                                  epoch, world, cfg.category, cfg.jitter)  # fmt: skip
            local = cfg.batch_size // world
            return [RankBatch(j, refs, cfg.batch_size, rank * local) for j, refs in enumerate(plans[rank])]
        plan = self.plan(cfg, epoch)
        shares = [(j, split_for_rank(b, rank, world), len(b)) for j, b in enumerate(plan)]
        if not any(share is not None for _, share, _ in shares):
            raise ValueError(f"no batch of {cfg.sampling!r} sampling divides among {world} processes")
        return [RankBatch(j, share[0], size, share[1]) for j, share, size in shares if share is not None]


def training_sources(index_dir: Path, unlabeled: tuple[Path, Path] | None, cfg: PretrainConfig) -> Sources:
    """MusicNet's train windows, and those of `unlabeled` = (ingest folder, leakage folder) less
    the files the leakage guard matched."""
    windows, tracks = load_windows(index_dir, ("train",))
    windows, weights = windows.assign(source=MUSICNET), {MUSICNET: cfg.musicnet_weight}
    tracks = tracks.assign(source=MUSICNET)
    if unlabeled is not None and (unlabeled[0] / "manifest.parquet").is_file():
        ingest_dir, leakage_dir = unlabeled
        excluded = pd.read_parquet(leakage_dir / "matches.parquet")["path"]
        extra_windows, extra_tracks = load_unlabeled(ingest_dir, excluded)
        corpora = json.loads((ingest_dir / "corpora.json").read_text())["corpora"]
        weights |= {name: corpus["weight"] for name, corpus in corpora.items()}
        windows = pd.concat([windows, extra_windows], ignore_index=True)
        tracks = pd.concat([tracks, extra_tracks], ignore_index=True)
    used = {s for s, w in weights.items() if w > 0 and (windows["source"] == s).any()}
    if not used:
        raise ConfigError(
            "pretraining has no audio: pretrain.musicnet_weight is 0 and no ingested corpus holds windows"
        )
    summary = {
        source: {
            "weight": weight,
            "hours": float(tracks.loc[tracks["source"] == source, "samples"].sum()) / RATE / 3600,
            "windows": int((windows["source"] == source).sum()),
        }
        for source, weight in weights.items()
        if source in used
    }
    if used == {MUSICNET}:
        windows = windows[windows["source"] == MUSICNET]
        return Sources(windows, tracks, weights, summary)
    mixture = MixturePlan(windows, weights, cfg.sampling, cfg.batch_size, cfg.seed, cfg.category, cfg.jitter)
    return Sources(windows, tracks, weights, summary, mixture)


def tables_digest(unlabeled: tuple[Path, Path] | None) -> bytes:
    """The ingested and excluded tables' bytes, for the run's fingerprint (empty when nothing was
    ingested: a run on MusicNet alone does not depend on the empty tables' format)."""
    if unlabeled is None or not (unlabeled[0] / "manifest.parquet").is_file():
        return b""
    if pq.read_metadata(unlabeled[0] / "manifest.parquet").num_rows == 0:
        return b""
    ingest_dir, leakage_dir = unlabeled
    tables = [ingest_dir / name for name in ("manifest.parquet", "windows.parquet", "corpora.json")]
    return b"".join(table.read_bytes() for table in [*tables, leakage_dir / "matches.parquet"])
