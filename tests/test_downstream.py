"""The downstream study on the tiny corpus: every cell (task x method), budget, seed and metric,
and stage `downstream` gathering them with intervals and paired comparisons."""

import itertools
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from jtm.config import ConfigError
from jtm.downstream import end_to_end
from jtm.downstream.metrics import HEADLINE
from jtm.downstream.subsets import budget_name
from jtm.runner import run_stage

METRICS = {
    "ensemble": {"accuracy", "balanced_accuracy", "macro_f1"},
    "composer": {"accuracy", "balanced_accuracy", "macro_f1"},
    "instruments": {"micro_ap", "macro_ap", "micro_f1", "macro_f1", "threshold"},
    "transcription": {
        "micro_ap",
        "frame_precision",
        "frame_recall",
        "frame_accuracy",
        "onset_precision",
        "onset_recall",
        "onset_f1",
        "threshold",
    },
}
PROBES = [f"{f}-{h}" for f in ("cpc", "random", "logmel") for h in ("linear", "mlp")]


def test_every_cell_is_trained_scored_and_written(built):
    cfg = built["downstream"]
    folder, metrics_dir = Path(built["paths"]["downstream"]), Path(built["paths"]["metrics"])
    results = pd.read_parquet(folder / "results.parquet")
    intervals = pd.read_parquet(folder / "intervals.parquet")
    for task, names in METRICS.items():
        rows = results[results["task"] == task]
        methods = PROBES + (["supervised", "finetune"] if task in cfg["end_to_end_tasks"] else [])
        assert list(dict.fromkeys(rows["method"])) == methods
        assert set(rows["metric"]) == names
        assert list(dict.fromkeys(rows["part"])) == ["seen", "unseen"]  # the tiny corpus holds both
        plots = {
            part: pd.read_csv(folder / "plots" / name, index_col="tracks_per_class")
            for part, name in (("seen", f"{task}-seen.csv"), ("unseen", f"{task}.csv"))
        }
        for method in methods:
            probe = method in PROBES
            budgets = [budget_name(b) for b in (cfg["budgets"] if probe else cfg["end_to_end_budgets"])]
            seeds = (
                cfg["end_to_end_seeds"]
                if not probe
                else cfg["transcription_seeds"]
                if task == "transcription"
                else cfg["seeds"]
            )
            cell = rows[rows["method"] == method]
            assert list(dict.fromkeys(cell["budget"])) == budgets
            assert sorted(set(cell["seed"])) == sorted(seeds)
            for budget, part in itertools.product(budgets, ("seen", "unseen")):
                summary = json.loads((metrics_dir / task / part / method / f"{budget}.json").read_text())
                assert set(summary["mean"]) <= names and summary["seeds"] == len(seeds)
                mine = cell[(cell["budget"] == budget) & (cell["part"] == part)]
                values = mine[mine["metric"] == HEADLINE[task]]["value"]
                head = summary["headline"]
                assert head["mean"] == pytest.approx(np.mean(values))
                # the interval holds its mean (the resamples' micro AP is binned: within 2e-3)
                assert -2e-3 <= head["lo"] - 2e-3 <= head["mean"] <= head["hi"] + 2e-3 <= 1 + 2e-3
                assert summary["held"]["tracks"] >= 1 and summary["held"]["classes"] >= 1
            for part, plot in plots.items():
                mine = intervals[
                    (intervals["task"] == task)
                    & (intervals["method"] == method)
                    & (intervals["part"] == part)
                ]
                for suffix, field in (("", "mean"), ("_lo", "lo"), ("_hi", "hi")):
                    drawn = plot[method + suffix].dropna().tolist()
                    assert drawn == pytest.approx(mine[field].tolist(), rel=1e-5)
    # The smallest budget holds one track per class (ensemble: per class of the train split).
    smallest = results[(results["task"] == "ensemble") & (results["budget"] == "1-per-class")]
    assert (smallest["train_tracks"] == smallest["train_classes"]).all()
    # The binned micro-AP of the bootstrap equals scikit-learn's on the whole split.
    assert results["binning_error"].abs().max() < 2e-3
    confusion = json.loads((folder / "confusion" / "ensemble" / "cpc-linear.json").read_text())
    assert np.array(confusion["matrix"]).shape == (len(confusion["classes"]),) * 2
    excerpt = np.load(folder / "excerpt.npz")
    assert excerpt["truth"].shape[1] == 128 and set(PROBES) <= set(excerpt.files)


def test_the_study_compares_the_best_cpc_method_with_each_rival_on_paired_intervals(built):
    folder = Path(built["paths"]["downstream"])
    comparisons = pd.read_parquet(folder / "comparisons.parquet")
    ensemble = comparisons[comparisons["task"] == "ensemble"]
    assert set(ensemble["rival"]) == {"random", "logmel", "supervised"}
    assert set(comparisons.loc[comparisons["task"] == "composer", "rival"]) == {"random", "logmel"}
    tolerance = 2e-3  # the resamples' micro AP is binned, the point estimate exact
    assert comparisons["diff"].between(comparisons["lo"] - tolerance, comparisons["hi"] + tolerance).all()
    assert ensemble["a"].isin(["cpc-linear", "cpc-mlp", "finetune"]).all()
    split = json.loads((folder / "test_split.json").read_text())["ensemble"]
    assert split["seen"]["unit"] == "work" and split["seen"]["units"] >= 1
    assert split["seen"]["tracks"] >= split["seen"]["units"]
    # each test performance is recorded once under seen and once under unseen conditions
    assert split["seen"]["tracks"] == split["unseen"]["tracks"]
    assert split["seen"]["units"] == split["unseen"]["units"]
    assert set(comparisons["part"]) == {"seen", "unseen"}
    transfer = pd.read_parquet(folder / "transfer.parquet")  # unseen - seen, every task
    assert set(transfer["task"]) == set(built["downstream"]["tasks"])
    assert len(transfer[transfer["kind"] == "comparison"]) == len(
        comparisons[comparisons["part"] == "unseen"]
    )
    ensemble = ensemble[ensemble["part"] == "unseen"]
    paired = json.loads(
        (Path(built["paths"]["metrics"]) / "ensemble" / "unseen" / "comparisons" / "all.json").read_text()
    )
    runs = [f"run{r}" for r in built["pretrain"]["runs"]]
    assert {"diff", "lo", "hi", *runs} == set(next(iter(paired.values())))
    # each run's own difference: its test means, as results.parquet holds them
    results = pd.read_parquet(folder / "results.parquet")
    first = ensemble[ensemble["budget"] == "all"].iloc[0]
    for run in built["pretrain"]["runs"]:
        means = [
            results[
                (results["task"] == "ensemble")
                & (results["method"] == m)
                & (results["budget"] == "all")
                & (results["metric"] == "accuracy")
                & (results["part"] == "unseen")
                & results["run"].isin([run, -1])
            ]["value"].mean()
            for m in (first["a"], first["b"])
        ]
        assert paired[f"{first['a']} - {first['b']}"][f"run{run}"] == pytest.approx(means[0] - means[1])


def test_each_model_is_an_mlflow_run_under_its_cell(built, tmp_path):
    built["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    built["downstream"].update(tasks=["instruments"], seeds=[0, 1], max_iter=50, mlp_max_iter=2)
    run_stage("probe", built, item={"run": 0})
    mlflow.set_tracking_uri(built["mlflow"]["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=[built["mlflow"]["experiment"]])
    parent = runs[runs["tags.mlflow.runName"] == "probe@0"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    learned = [p for p in PROBES if not p.startswith("logmel")]  # log-mel probes: probe_fixed's cell
    assert len(children) == len(learned) * 2 * len(built["downstream"]["budgets"])
    child = mlflow.MlflowClient().get_run(children["run_id"].iloc[0])
    assert {"task", "method", "budget", "seed", "l2", "train_tracks"} <= set(child.data.params)
    history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "val_score")
    assert len(history) == len(built["downstream"]["l2_grid"])  # one point per L2 strength
    evaluations = {  # L-BFGS objective evaluations per strength: each head's own iteration cap
        head: [
            point.value
            for run_id in children[children["params.head"] == head]["run_id"]
            for point in mlflow.MlflowClient().get_metric_history(run_id, "iterations")
        ]
        for head in ("linear", "mlp")
    }
    assert max(evaluations["mlp"]) <= 4 < max(evaluations["linear"])


def test_a_cell_is_reproducible(built, tmp_path):
    cells = Path(built["paths"]["cells"])
    built["paths"]["cells"] = str(tmp_path / "again")
    built["downstream"]["tasks"] = ["transcription"]
    for stage, item, task in (
        ("probe", {"run": 1}, "transcription"),
        ("end_to_end", {"task": "ensemble", "init": "finetune", "run": 1}, "ensemble"),
    ):
        run_stage(stage, built, item=item)
        cell = Path("run1") / item.get("init", "probes") / task
        first, second = (
            pd.read_parquet(root / cell / "scores.parquet") for root in (cells, tmp_path / "again")
        )
        pd.testing.assert_frame_equal(first, second)


def test_the_study_gathers_only_the_cells_params_name(built):
    cells = Path(built["paths"]["cells"])
    shutil.copytree(cells / "run0" / "probes" / "ensemble", cells / "run0" / "probes" / "old")  # a leftover
    built["downstream"].update(
        tasks=["ensemble"], features=["cpc"], probes=["linear"], end_to_end=["finetune"]
    )
    summary = run_stage("downstream", built)
    results = pd.read_parquet(Path(built["paths"]["downstream"]) / "results.parquet")
    assert list(dict.fromkeys(results["method"])) == ["cpc-linear", "finetune"]
    assert sorted(p.name for p in (Path(built["paths"]["metrics"]) / "ensemble" / "unseen").iterdir()) == [
        "cpc-linear",
        "finetune",
    ]
    assert summary["models"] == len(results.groupby(["method", "budget", "run", "seed"]))


def test_a_missing_cell_is_a_clear_error(built, capsys):
    import yaml

    from jtm.cli import main

    shutil.rmtree(Path(built["paths"]["cells"]) / "run1" / "probes" / "composer")
    params = Path(built["paths"]["cells"]).parent / "params.yaml"
    params.write_text(yaml.safe_dump(built))
    assert main(["downstream", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert "run1/probes/composer" in err and "not built" in err
    assert (
        Path(built["paths"]["metrics"]) / "composer" / "seen" / "random-mlp"
    ).is_dir()  # the old output is kept


def test_finetune_starts_from_cpc_and_supervised_from_scratch(built):
    model_dir = Path(built["paths"]["pretrain"]) / "run0"
    pretrained = torch.load(model_dir / "model.pt", weights_only=True)
    finetune = end_to_end.build_model("finetune", model_dir, 5, False, seed=0)
    supervised = end_to_end.build_model("supervised", model_dir, 5, False, seed=0)
    key = next(k for k in pretrained if k.startswith("context"))
    assert torch.equal(finetune.embedder.cpc.state_dict()[key], pretrained[key])
    assert not torch.equal(supervised.embedder.cpc.state_dict()[key], pretrained[key])


def test_an_unknown_task_method_or_budget_is_a_clear_error(built, tmp_path, capsys):
    import yaml

    from jtm.cli import main

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(built))
    cell = Path(built["paths"]["cells"]) / "run0" / "probes" / "ensemble"
    before = (cell / "scores.parquet").read_bytes()
    for args, message in (
        (["downstream", "--set", "downstream.tasks=[genre]"], "downstream.tasks[0]='genre': use one of"),
        (["end_to_end", "genre", "finetune", "0"], "task 'genre'"),
        (
            ["probe", "0", "--set", "downstream.features=[mfcc]"],
            "downstream.features[0]='mfcc': use one of ['cpc', 'random', 'logmel', 'cqt']",
        ),
        (["end_to_end", "ensemble", "scratch", "0"], "init 'scratch'"),
        (
            ["probe", "0", "--set", "downstream.budgets=[0, all]"],
            "downstream.budgets[0]=0: expected integer or 'all'",
        ),
        (
            ["probe", "0", "--set", "downstream.fractions=[0.1, 1.0]"],
            "downstream.fractions: replaced by downstream.budgets",
        ),
    ):
        assert main([args[0], "--params", str(params), *args[1:]]) == 2, args
        assert message in capsys.readouterr().err
    assert (cell / "scores.parquet").read_bytes() == before  # the previous output is kept
    assert (Path(built["paths"]["metrics"]) / "ensemble").is_dir()
    with pytest.raises(ConfigError, match="give run"):
        run_stage("probe", built)


def test_a_probe_cell_over_its_memory_budget_is_a_clear_error_naming_the_params(built, tmp_path, capsys):
    """The estimate (jtm/downstream/memory.py) is checked before anything loads: no kill by the
    kernel's out-of-memory killer half-way, the cell's old output kept."""
    import yaml

    from jtm.cli import main
    from jtm.config import DownstreamConfig
    from jtm.downstream.inputs import load_cell
    from jtm.downstream.memory import probe_cell_bytes
    from jtm.features.embed import load_embeddings

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(built))
    cell = Path(built["paths"]["cells"]) / "run0" / "probes" / "transcription"
    before = (cell / "scores.parquet").read_bytes()
    inputs = load_cell(
        Path(built["paths"]["index"]),
        Path(built["paths"]["embeddings"]) / "run0",
        None,
        "transcription",
        True,
    )
    cfg = DownstreamConfig(**built["downstream"])
    one, two = (probe_cell_bytes(inputs, ["cpc"], cfg, p) for p in (1, 2))
    _, frames, dim = load_embeddings(inputs.embeddings, "cpc")[1].shape
    x_train = len(inputs.train) * len(range(0, frames, cfg.frame_stride))
    assert two - one >= x_train * 4 * dim  # a second worker holds its own training matrix
    budget = one / 1e9 / 2
    sets = ["--set", f"downstream.memory_gb={budget}", "--set", "downstream.threads=2"]
    assert main(["probe", "0", "--params", str(params), *sets]) == 2
    err = capsys.readouterr().err
    assert "the transcription probes would need about" in err or "probes would need about" in err
    assert "downstream.memory_gb" in err and "downstream.threads" in err and "downstream.frame_stride" in err
    assert (cell / "scores.parquet").read_bytes() == before
