"""Sharded loading for many GPUs (jtm/loading/partition.py): files dealt to ranks whole and
without overlap, reshuffled per epoch from the seed; two real gloo ranks never read the same
window or file; threads fetching ahead change nothing in the trained model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from jtm.config import set_dotted
from jtm.loading.partition import deal_files, sharded_epoch
from jtm.loading.prefetch import prefetched
from jtm.runner import run_stage

REPO = Path(__file__).resolve().parents[1]


def toy_windows(files_per_source=(7, 5), seed=0) -> tuple[pd.DataFrame, dict]:
    """Windows of files of 1-9 windows each in two sources; each file its own storage path."""
    rng = np.random.default_rng(seed)
    rows, paths, track = [], {}, 0
    for source, files in zip(("musicnet", "radio"), files_per_source, strict=True):
        for _ in range(files):
            track += 1
            paths[track] = f"/{source}/{track}.npy"
            rows += [(track, 100 * w, 100, source) for w in range(int(rng.integers(1, 10)))]
    return pd.DataFrame(rows, columns=["id", "start", "length", "source"]), paths


@pytest.mark.check
@pytest.mark.parametrize("world", [1, 2, 3])
def test_files_are_dealt_whole_to_one_rank_each_and_balanced_per_source(world):
    windows, paths = toy_windows()
    parts = deal_files(windows, paths, world, seed=0, epoch=0)
    every = np.concatenate(parts)
    assert len(every) == len(windows) and set(every) == set(range(len(windows)))  # each row once
    owners = {}
    for rank, rows in enumerate(parts):
        for path in windows["id"].iloc[rows].map(paths):
            assert owners.setdefault(path, rank) == rank  # no file split between ranks
    biggest = windows.groupby("id").size().max()
    for source in ("musicnet", "radio"):
        loads = [int((windows["source"].iloc[rows] == source).sum()) for rows in parts]
        assert max(loads) - min(loads) <= biggest  # greedy dealing: within one file of even


@pytest.mark.check
def test_a_source_with_fewer_files_than_ranks_is_split_by_windows_so_every_rank_holds_it():
    """A corpus in one shard: dealt whole, one rank alone could draw it and the mixture's weights
    would fail (#25: musicnet then took 57 % of the windows for a 14 % weight)."""
    windows, paths = toy_windows((7, 1))
    radio = np.flatnonzero(windows["source"].to_numpy() == "radio")
    for epoch in range(3):
        parts = deal_files(windows, paths, 2, seed=0, epoch=epoch)
        assert sorted(np.concatenate(parts)) == list(range(len(windows)))  # each row once
        shares = [np.intersect1d(rows, radio) for rows in parts]
        assert all(len(share) >= len(radio) // 2 for share in shares)
        assert all(np.all(np.diff(share) == 1) for share in shares)  # a contiguous run each


@pytest.mark.check
def test_the_deal_changes_every_epoch_and_repeats_for_the_same_seed():
    windows, paths = toy_windows((12, 12))
    deal = [tuple(map(tuple, deal_files(windows, paths, 2, seed=0, epoch=e))) for e in range(4)]
    assert len(set(deal)) > 1
    assert deal[1] == tuple(map(tuple, deal_files(windows, paths, 2, seed=0, epoch=1)))
    assert deal[1] != tuple(map(tuple, deal_files(windows, paths, 2, seed=1, epoch=1)))


@pytest.mark.check
@pytest.mark.parametrize("strategy", ["uniform", "samesequence", "sequential"])
def test_every_rank_steps_the_same_number_of_full_batches_of_its_own_windows(strategy):
    windows, paths = toy_windows((9, 9))
    plans = sharded_epoch(windows, paths, {"musicnet": 1.0, "radio": 1.0}, strategy, 4, 0, 0, world=2)
    assert len(plans[0]) == len(plans[1]) > 0
    seen = [{ref.index for batch in plan for ref in batch} for plan in plans]
    assert not seen[0] & seen[1]
    assert all(len(batch) == 2 for plan in plans for batch in plan)
    deal = deal_files(windows, paths, 2, 0, 0)
    assert seen[0] <= set(deal[0]) and seen[1] <= set(deal[1])


@pytest.mark.check
def test_a_batch_size_the_ranks_cannot_share_is_an_error():
    windows, paths = toy_windows()
    with pytest.raises(ValueError, match="multiple of the process count"):
        sharded_epoch(windows, paths, {"musicnet": 1.0}, "uniform", 5, 0, 0, world=2)
    with pytest.raises(ValueError, match="no full batch"):  # one-track batches of 9 windows at most
        sharded_epoch(windows, paths, {"musicnet": 1.0}, "samesequence", 40, 0, 0, world=2)


@pytest.mark.check
def test_prefetched_batches_come_in_order_whatever_the_threads():
    def fetch(i):
        time.sleep(0.001 * ((7 * i) % 5))  # later batches often finish first
        return i, threading.current_thread().name

    for threads in (1, 3):
        got = list(prefetched(fetch, range(40), threads))
        assert [i for i, _ in got] == list(range(40))
        assert all(name.startswith("jtm-fetch") for _, name in got)


@pytest.mark.check
def test_prefetching_runs_as_many_fetches_at_once_as_it_has_threads():
    """The first three fetches wait for each other: they pass only if three threads run them at
    once (a pool of one would wait out the barrier's timeout and fail)."""
    barrier = threading.Barrier(3, timeout=60)

    def fetch(i):
        if i < 3:
            barrier.wait()
        return i

    assert list(prefetched(fetch, range(10), 3)) == list(range(10))


def write_corpus(folder: Path, files: int = 6) -> None:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(files):  # distinct noise: no two files alike, so none is a duplicate
        sf.write(folder / f"{i}.wav", 0.1 * rng.standard_normal(16_000 * (2 + i % 3)), 16_000)


def sharded_params(built: dict, tmp_path: Path) -> Path:
    write_corpus(tmp_path / "library")
    set_dotted(
        built, "ingest.corpora", [{"name": "library", "paths": [str(tmp_path / "library")], "weight": 1.0}]
    )
    set_dotted(built, "ingest.shard_mb", 0.1)  # ~1.6 s of float32 per shard: a shard per file
    run_stage("ingest", built)
    run_stage("leakage", built)
    set_dotted(built, "pretrain.loader", "sharded")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(built))
    return params_file


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def test_two_gloo_ranks_read_their_own_files_and_never_the_same_window(built, tmp_path):
    params_file = sharded_params(built, tmp_path)
    result = torchrun(str(REPO / "tests" / "rank_reads.py"), str(params_file), str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in (0, 1):
        files = [set(rank["epochs"][epoch]["files"]) for rank in ranks]
        assert not files[0] & files[1]  # in an epoch, a rank opens only the files dealt to it
        assert all(any(f.endswith(".f32") for f in opened) for opened in files)
        assert all(any(f.endswith(".npy") for f in opened) for opened in files)
        batches = [rank["epochs"][epoch]["batches"] for rank in ranks]
        windows = [[i for batch in b for i in batch] for b in batches]
        assert len(batches[0]) == len(batches[1]) > 0
        assert not set(windows[0]) & set(windows[1])  # (a rank repeats a small source: the weights)
        local = built["pretrain"]["batch_size"] // 2
        for rank, data in enumerate(ranks):  # what the loader delivered: this rank's rows
            assert data["epochs"][epoch]["loaded"] == [[local, rank * local, 2 * local, local]] * len(
                batches[0]
            )
    assert ranks[0]["epochs"][0]["batches"] != ranks[0]["epochs"][1]["batches"]  # reshuffled


def _weights(folder) -> dict:
    return torch.load(Path(folder) / "model.pt", weights_only=True)


def test_sharded_pretraining_runs_on_two_gloo_ranks_and_fetch_threads_change_nothing(built, tmp_path):
    params_file = sharded_params(built, tmp_path)
    params = yaml.safe_load(params_file.read_text())
    result = torchrun("-m", "jtm.cli", "pretrain", "0", "--params", str(params_file))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((Path(params["paths"]["pretrain"]) / "run0" / "metrics.json").read_text())
    assert metrics["steps"] == params["pretrain"]["steps"] and set(metrics["corpora"]) == {
        "musicnet",
        "library",
    }
    # One process: reading in the training process and fetching with two threads agree exactly.
    models = {}
    for threads in (0, 2):
        set_dotted(params, "pretrain.fetch_threads", threads)
        set_dotted(params, "paths.pretrain", str(tmp_path / f"threads{threads}"))
        set_dotted(params, "paths.checkpoints", str(tmp_path / f"ck{threads}"))
        run_stage("pretrain", params, item={"run": 0})
        models[threads] = _weights(tmp_path / f"threads{threads}" / "run0")
    for key in models[0]:
        torch.testing.assert_close(models[0][key], models[2][key], rtol=0, atol=0)
