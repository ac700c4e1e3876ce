"""CPC pretraining end to end: it learns, every strategy trains, a killed run resumes to the same
weights, two gloo processes match one, and the saved model loads weights-only."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from jtm import choices, load_encoder
from jtm.config import PretrainConfig, section, set_dotted
from jtm.loading.sampling import STRATEGIES
from jtm.loading.windows import WindowDataset
from jtm.models.registry import build_cpc
from jtm.models.spec import spec_of
from jtm.runner import run_stage
from jtm.train.checkpoint import TrainState
from jtm.train.distributed import setup_distributed
from jtm.train.infonce import draw_negatives, draw_subpool
from jtm.train.pretrain import _generator, epoch_batches, lr_factor, pretrain, step_draws
from jtm.train.sources import training_sources

REPO = Path(__file__).resolve().parents[1]


class Curves:
    """Collects what pretraining reports (the same interface as jtm.tracking.Tracker)."""

    def __init__(self):
        self.rows: list[tuple[int, dict]] = []

    def metrics(self, values: dict, step: int | None = None) -> None:
        self.rows.append((step, values))

    def artifacts(self, folder) -> None:
        self.folder = Path(folder)

    def series(self, key: str) -> list[float]:
        return [v[key] for _, v in self.rows if key in v]


def _configure(params: dict, **changes) -> PretrainConfig:
    for key, value in changes.items():
        set_dotted(params, f"pretrain.{key}", value)
    return section(params, "pretrain", PretrainConfig)


def _weights(folder) -> dict:
    return torch.load(Path(folder) / "model.pt", weights_only=True)


def test_cpc_learns_on_the_demo_corpus(built, tmp_path):
    cfg = _configure(
        built,
        encoder="sinc",
        hidden=32,
        n_negatives=16,
        batch_size=8,
        lr=2e-3,
        steps=300,
        log_every=50,
        val_every=300,
        val_batches=4,
    )
    curves = Curves()
    metrics = pretrain(built["paths"]["index"], tmp_path / "model", tmp_path / "ck", cfg, curves)
    chance = 1 / (1 + cfg.n_negatives)
    assert metrics["chance_accuracy"] == pytest.approx(chance)
    assert metrics["train_acc_k1"] > 5 * chance
    assert metrics["val_acc_k1"] > 5 * chance
    losses = curves.series("train_loss")
    assert losses[-1] < 0.6 * losses[0]
    assert len(curves.series("val_acc_k1")) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_moves_every_weight_of_encoder_context_and_heads(built, tmp_path, strategy):
    """Each parameter of the saved model differs from the seeded init: fails when the optimiser
    never steps, or when the loss does not reach a part of the model (predictions that ignore
    the context leave the context network's weights where they started)."""
    cfg = _configure(
        built,
        sampling=strategy,
        encoder="sinc",
        hidden=16,
        n_negatives=8,
        batch_size=4,
        lr=3e-3,
        warmup_steps=0,
        steps=6,
        log_every=3,
        val_batches=1,
        context="lstm" if strategy == "sequential" else "gru",
    )
    pretrain(built["paths"]["index"], tmp_path / "model", tmp_path / "ck", cfg)
    torch.manual_seed(cfg.seed)  # as pretrain() seeds its model
    init = build_cpc(spec_of(cfg)).state_dict()
    trained = _weights(tmp_path / "model")
    moved = {name for name, value in init.items() if not torch.equal(value, trained[name])}
    learnable = {name for name, _ in build_cpc(spec_of(cfg)).named_parameters()}
    assert learnable - moved == set()
    assert {name.split(".")[0] for name in learnable} == {"encoder", "context", "heads"}


@pytest.mark.parametrize("subpool", [0, 100], ids=["whole-pool", "sub-pool"])
@pytest.mark.parametrize("threads", [0, 2], ids=["in-line", "fetch-threads"])
def test_each_batch_brings_the_negatives_of_its_own_step(built, subpool, threads):
    """Negatives are drawn ahead with the batch (off the GPU step's path): from a mid-epoch
    resume (step 7, batch 2 of the epoch) batch j carries step 7 + j's draws, as training drew
    them in the step before: the same seeded generators, so CPU results do not move."""
    cfg = _configure(built, negative_pool=subpool, fetch_threads=threads, workers=0)
    sources = training_sources(Path(built["paths"]["index"]), None, cfg)
    dataset = WindowDataset(sources.windows, sources.tracks)
    length = int(sources.windows["length"].iloc[0]) // 160
    state = TrainState(step=7, epoch=1, position=2)
    batches = list(epoch_batches(dataset, sources, cfg, setup_distributed("cpu"), state, length))[:3]
    assert [b.position for b in batches] == [2, 3, 4]
    for j, batch in enumerate(batches):
        size, step = batch.size, 7 + j
        if subpool:
            generators = _generator(cfg.seed + 2, step), _generator(cfg.seed, step)
            expected_subpool, draws = draw_subpool(
                *generators, size, length, cfg.n_negatives, size * length, subpool
            )
            assert torch.equal(batch.subpool, expected_subpool)
        else:
            draws = draw_negatives(_generator(cfg.seed, step), size, length, cfg.n_negatives, size * length)
            assert batch.subpool is None
        assert batch.draws.shape == (len(batch.audio), length, cfg.n_negatives)
        assert torch.equal(batch.draws, draws[batch.offset : batch.offset + len(batch.audio)])
        assert torch.equal(step_draws(cfg, step, size, length)[0], draws)


def test_the_learning_rate_follows_the_warm_up_and_decay_params(built, tmp_path):
    assert [lr_factor(s, 4, 0, 0.5) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [lr_factor(s, 0, 10, 0.5) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cfg = _configure(built, lr=1e-3, warmup_steps=4, decay_every=3, decay_gamma=0.5, steps=8, log_every=1)
    curves = Curves()
    pretrain(built["paths"]["index"], tmp_path / "model", tmp_path / "ck", cfg, curves)
    # the rate the next step will use, logged after each of steps 1..8
    expected = [1e-3 * lr_factor(step, 4, 3, 0.5) for step in range(1, 9)]
    assert curves.series("lr") == pytest.approx(expected)


def test_saved_model_loads_weights_only_and_embeds_audio(built):
    run_stage("pretrain", built, item={"run": 0})
    folder = Path(built["paths"]["pretrain"]) / "run0"
    state = torch.load(folder / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    for layer in ("context", "encoder"):
        embedder = load_encoder(folder, layer=layer)
        with torch.no_grad():
            features = embedder(torch.randn(2, 16_000))
        assert features.shape == (2, 100, built["pretrain"]["hidden"])


def test_the_model_records_the_device_and_precision_it_was_trained_with(built):
    """bf16 is asked for, but autocast runs on CUDA only: a CPU model says fp32 (#23)."""
    set_dotted(built, "pretrain.bf16", True)
    run_stage("pretrain", built, item={"run": 0})
    config = json.loads((Path(built["paths"]["pretrain"]) / "run0" / "config.json").read_text())
    numerics = config["pretrain"]["numerics"]
    assert numerics["device"] == "cpu" and numerics["precision"] == "fp32" and numerics["processes"] == 1
    assert numerics["torch"] == torch.__version__ and len(numerics["code"]) == 64
    assert numerics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize(
    "stage,key,item",
    [("pretrain", "pretrain.device", {"run": 0}), ("embed", "embed.device", {"run": 0}),
     ("end_to_end", "downstream.e2e_device", {"task": "ensemble", "init": "finetune", "run": 0})],
)  # fmt: skip
def test_each_stage_that_runs_a_network_uses_cuda_when_asked_or_says_it_cannot(
    built, tmp_path, stage, key, item
):
    from jtm.devices import resolve_device
    from jtm.errors import ConfigError
    from jtm.runner import stage_paths
    from jtm.stages import STAGES

    if torch.cuda.is_available():
        assert resolve_device("cuda", key).type == "cuda"
        return
    params = json.loads(json.dumps(built))
    set_dotted(params, key, "cuda")
    outputs = {role: tmp_path / "out" / role for role in stage_paths(STAGES[stage], params, item)[1]}
    with pytest.raises(ConfigError, match=f"{key} is cuda, but torch sees no CUDA device"):
        run_stage(stage, params, outputs=outputs, item=item)
    assert not (tmp_path / "out").exists()
    set_dotted(params, key, "auto")  # auto: the CPU here
    assert resolve_device("auto", key) == torch.device("cpu")


def _cli(params_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jtm.cli", "pretrain", "0", "--params", str(params_file), *extra]


def _params_file(params: dict, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(params))
    return path


def _variant(params: dict, root: Path, name: str) -> dict:
    """The same params with the model and its checkpoints under root/name and root/ck-name."""
    paths = {**params["paths"], "pretrain": str(root / name), "checkpoints": str(root / f"ck-{name}")}
    return dict(params, paths=paths)


def test_a_killed_run_resumes_to_the_same_outputs(built, tmp_path):
    """Killed at a checkpoint, rerun: every output file is byte for byte an uninterrupted run's.
    Checkpoints every 5 steps, a logged row every 7: the kill lands inside a logged window
    (unless at step 35), whose row must average the steps before the kill too."""
    set_dotted(built, "pretrain.steps", 60)
    set_dotted(built, "pretrain.checkpoint_every", 5)
    set_dotted(built, "pretrain.log_every", 7)
    set_dotted(built, "pretrain.val_every", 1000)
    uninterrupted, killed = _variant(built, tmp_path, "a"), _variant(built, tmp_path, "b")
    run_stage("pretrain", uninterrupted, item={"run": 0})
    params_file = _params_file(killed, tmp_path / "params.yaml")
    process = subprocess.Popen(_cli(params_file), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "ck-b" / "run0" / "rank0-of-1.pt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["step"] >= 15:
            break
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    step = torch.load(checkpoint, weights_only=False)["step"]
    assert 15 <= step < 60 and not (tmp_path / "b" / "run0").exists()
    result = subprocess.run(_cli(params_file), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"resuming from {checkpoint} at step" in result.stderr
    a, b = _weights(tmp_path / "a" / "run0"), _weights(tmp_path / "b" / "run0")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    whole = tmp_path / "a"
    files = {p.relative_to(whole): p.read_bytes() for p in whole.rglob("*") if p.is_file()}
    assert {Path("run0/curves_train.csv"), Path("run0/metrics.json"), Path("run0/model.pt")} <= files.keys()
    for name, content in files.items():
        assert (tmp_path / "b" / name).read_bytes() == content, f"{name} differs after the resume"
    # Run again with nothing left to train: the same model and the same reported figures.
    result = subprocess.run(_cli(params_file), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    first = json.loads((tmp_path / "a" / "run0" / "metrics.json").read_text())
    again = json.loads((tmp_path / "b" / "run0" / "metrics.json").read_text())
    assert again["train_loss"] > 0 and again == first


def test_two_gloo_processes_match_one(built, tmp_path):
    for key, value in {
        "steps": 3,
        "batch_size": 4,
        "checkpoint_every": 100,
        "val_every": 100,
        "log_every": 1,
    }.items():
        set_dotted(built, f"pretrain.{key}", value)
    single, double = _variant(built, tmp_path, "one"), _variant(built, tmp_path, "two")
    run_stage("pretrain", single, item={"run": 0})
    params_file = _params_file(double, tmp_path / "params.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "jtm.cli", "pretrain", "0", "--params", str(params_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = _weights(tmp_path / "one" / "run0"), _weights(tmp_path / "two" / "run0")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-6)
    torch.manual_seed(built["pretrain"]["seed"])
    initial = build_cpc(spec_of(section(built, "pretrain", PretrainConfig))).state_dict()
    assert any(not torch.equal(initial[k], one[k]) for k in one), "three steps must move the weights"


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(built, tmp_path, capsys):
    from jtm.cli import main

    # Adam moves every weight by about lr at step 1: at 1e30 the second forward pass overflows.
    variant = _variant(built, tmp_path, "nan")
    for key, value in {"lr": 1e30, "steps": 6, "checkpoint_every": 1, "log_every": 3}.items():
        set_dotted(variant, f"pretrain.{key}", value)
    params_file = _params_file(variant, tmp_path / "params.yaml")
    assert main(["pretrain", "0", "--params", str(params_file)]) == 2
    err = capsys.readouterr().err
    assert "loss became non-finite at step 2" in err, err
    saved = torch.load(tmp_path / "ck-nan" / "run0" / "rank0-of-1.pt", weights_only=False)
    assert saved["step"] == 1  # written after step 1, never overwritten by the poisoned weights
    assert not (tmp_path / "nan" / "run0").exists()


def test_changing_val_batches_retrains_so_curves_and_metrics_agree(built, tmp_path):
    """A params key DVC reruns the stage for is also part of the checkpoint's fingerprint."""
    params = _variant(built, tmp_path, "model")
    set_dotted(params, "pretrain.val_every", params["pretrain"]["steps"])
    run_stage("pretrain", params, item={"run": 0})
    set_dotted(params, "pretrain.val_batches", 1)
    run_stage("pretrain", params, item={"run": 0})
    import pandas as pd

    curves = pd.read_csv(tmp_path / "model" / "run0" / "curves_val.csv")
    metrics = json.loads((tmp_path / "model" / "run0" / "metrics.json").read_text())
    assert curves["acc_k1"].iloc[-1] == pytest.approx(metrics["val_acc_k1"])
    assert curves["loss"].iloc[-1] == pytest.approx(metrics["val_loss"])


def test_a_resume_restores_torch_global_rng(tmp_path):
    from jtm.train.checkpoint import TrainState, restore_training, save_training

    model = torch.nn.Linear(2, 2)
    torch.manual_seed(123)
    save_training(tmp_path / "ck.pt", "f", {"model": model}, TrainState(step=3), {})
    expected = torch.rand(4)
    torch.manual_seed(999)
    state = restore_training(tmp_path / "ck.pt", "f", {"model": model}, "cpu")
    assert state.step == 3 and torch.equal(torch.rand(4), expected)
    assert restore_training(tmp_path / "ck.pt", "other", {"model": model}, "cpu") is None


LEVERS = {
    "same-track-half": {"same_track_share": 0.5},
    "same-track-all": {"same_track_share": 1.0},
    "augment": {"augment": list(choices.AUGMENTS)},
    "cqt": {"encoder": "cqt"},
}


@pytest.mark.parametrize("lever", LEVERS)
def test_each_lever_trains_reproducibly_and_changes_the_model(built, tmp_path, lever):
    """A lever (docs/pretraining.md) trains, gives the same weights twice (its draws are seeded
    by params, not by the global seed) and other weights than the default recipe."""
    small = dict(hidden=16, n_negatives=8, batch_size=4, steps=4, log_every=2, val_batches=1, warmup_steps=0)
    index = built["paths"]["index"]
    weights = {}
    for name, changes in (("default", {}), ("lever", LEVERS[lever]), ("again", LEVERS[lever])):
        cfg = _configure(copy.deepcopy(built), **small, **changes)
        torch.manual_seed(123 if name == "again" else 0)  # pretrain seeds itself
        metrics = pretrain(index, tmp_path / name, tmp_path / f"ck-{name}", cfg)
        assert np.isfinite(metrics["train_loss"])
        weights[name] = _weights(tmp_path / name)
    same = weights["lever"].keys() == weights["again"].keys()
    assert same and all(torch.equal(weights["lever"][k], weights["again"][k]) for k in weights["lever"])
    shared = weights["lever"].keys() & weights["default"].keys()
    assert any(not torch.equal(weights["lever"][k], weights["default"][k]) for k in shared)
