"""One DAG, two engines: dvc.yaml and the Snakefile declare exactly the stages in jtm.stages."""

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from jtm import workflow
from jtm.cli import main
from jtm.config import get_dotted, load_params
from jtm.runner import stage_items, stage_paths
from jtm.stages import STAGES
from jtm.workflow import dvc_stage_names, prune_dvc_lock
from tests.conftest import REPO
from tests.projects import UNIMPORTED

pytestmark = pytest.mark.check  # the contributor tier: make check

PARAMS = load_params(REPO / "params.yaml")


def _resolve(text: str) -> str:
    """DVC's ${key} templating against params.yaml; a matrix's ${item.x} becomes {x}."""
    text = re.sub(r"\$\{item\.(\w+)\}", r"{\1}", text)
    return re.sub(r"\$\{([\w.]+)\}", lambda m: str(get_dotted(PARAMS, m.group(1))), text)


def _path(entry) -> str:
    """A dvc.yaml out is a path, or {path: {cache: false, ...}}."""
    return next(iter(entry)) if isinstance(entry, dict) else entry


def dvc_stages() -> dict:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {
        name: {
            "cmd": _resolve(stage["cmd"]),
            "matrix": {item: _resolve(values) for item, values in stage.get("matrix", {}).items()},
            "deps": [_resolve(d) for d in stage.get("deps", [])],
            "outs": [_resolve(_path(o)) for o in stage.get("outs", []) + stage.get("metrics", [])],
            "params": list(stage.get("params", [])),
        }
        for name, stage in stages.items()
    }


def snakemake_rules(workdir: Path) -> dict:
    """The rules Snakemake reads from the repo's workflow, parsed in a copy at `workdir` (Snakemake
    keeps a log in its working folder: never in the checkout)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    for name in ("Snakefile", "params.yaml", "workflow"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, workdir / name)
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(), snakefile=workdir / "Snakefile", workdir=workdir
        )._workflow
        return {
            rule.name: {
                "input": list(rule.input),
                # global wildcard constraints are spelled into the patterns: {task,[A-Za-z0-9_]+}
                "output": [re.sub(r"\{(\w+),[^}]*\}", r"{\1}", o) for o in rule.output],
                "params": list(rule.params.get("read", {}) if "read" in rule.params.keys() else []),
                "wildcards": sorted(rule.wildcard_names),
                "resources": dict(rule.resources),
                "threads": rule.resources["_cores"],
                "script": rule.script,
            }
            for rule in workflow.rules
            if rule.name != "all"
        }


def expected(name: str) -> dict:
    """A matrix stage's outputs keep their {item} placeholders."""
    stage = STAGES[name]
    placeholders = {item: f"{{{item}}}" for item in stage.matrix}
    inputs, outputs = stage_paths(stage, PARAMS, placeholders if stage.matrix else None)
    return {
        "deps": [str(p) for p in inputs.values()] + list(stage.code),
        "outs": [str(p) for p in outputs.values()],
        "params": list(stage.params),
        "cmd": " ".join([f"jtm {name}", *placeholders.values()]),
    }


def _items(name: str, role: str = "cell") -> list[str]:
    stage = STAGES[name]
    return [str(stage_paths(stage, PARAMS, item)[1][role]) for item in stage_items(stage, PARAMS)]


# Snakemake lists every item's output where DVC names the folder that holds them.
GATHERED = {
    ("downstream", "cells"): [("probe", "cell"), ("probe_fixed", "cell"), ("end_to_end", "cell")],
    ("report", "model"): [("pretrain", "model")],
    ("report", "embeddings"): [("embed", "embeddings"), ("embed_fixed", "embeddings")],
}


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return snakemake_rules(tmp_path_factory.mktemp("snakemake"))


# DVC's helper stage, not a jtm stage: the digest of the corpora's files that ingest depends on
# (Snakemake lists those files as the ingest rule's inputs instead).
DVC_ONLY = set(workflow.DVC_ONLY)
DVC_ONLY_DEPS = {"ingest": ["paths.survey"]}


def test_both_engines_have_exactly_the_stages():
    assert set(dvc_stages()) == set(STAGES) | DVC_ONLY


def test_dvc_survey_runs_every_time_and_ingest_depends_on_its_digest():
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["survey"]
    assert declared["always_changed"] is True and declared["params"] == ["ingest.corpora"]
    assert dvc_stages()["survey"] == {
        "cmd": "jtm survey",
        "matrix": {},
        "deps": [],
        "outs": [str(get_dotted(PARAMS, "paths.survey"))],
        "params": ["ingest.corpora"],
    }
    assert str(get_dotted(PARAMS, "paths.survey")) in dvc_stages()["ingest"]["deps"]


def test_engines_have_the_same_rules(rules):
    assert set(rules) == set(STAGES)


@pytest.mark.parametrize("name", list(STAGES))
def test_dvc_stage_matches(name):
    stage = dvc_stages()[name]
    want = expected(name)
    want["deps"] += [str(get_dotted(PARAMS, key)) for key in DVC_ONLY_DEPS.get(name, [])]
    assert stage["cmd"] == want["cmd"]
    assert stage["matrix"] == {
        item: str(get_dotted(PARAMS, key)) for item, key in STAGES[name].matrix.items()
    }
    assert sorted(stage["deps"]) == sorted(want["deps"])
    # DVC may track an output folder's files one by one (metrics apart): same folder either way.
    assert sorted({o if o in want["outs"] else str(Path(o).parent) for o in stage["outs"]}) == sorted(
        want["outs"]
    )
    assert stage["params"] == want["params"]


@pytest.mark.parametrize("name", list(STAGES))
def test_snakemake_rule_matches(rules, name):
    rule = rules[name]
    want = expected(name)
    for (gatherer, role), sources in GATHERED.items():
        if gatherer == name:
            folder = str(stage_paths(STAGES[name], PARAMS)[0][role])
            want["deps"].remove(folder)
            want["deps"] += [o for source, out in sources for o in _items(source, out)]
    assert rule["wildcards"] == sorted(STAGES[name].matrix)
    assert sorted(rule["input"]) == sorted(want["deps"])
    assert rule["output"] == want["outs"]
    assert rule["params"] == want["params"]
    assert Path(rule["script"]).name == f"{name}.py"
    assert (REPO / "workflow" / "scripts" / f"{name}.py").is_file()


def test_dvc_yaml_code_deps_are_the_computed_ones():
    from jtm.workflow import dvc_yaml_with_code

    text = (REPO / "dvc.yaml").read_text()
    assert dvc_yaml_with_code(text) == text, "dvc.yaml's code deps are stale: run `make dvc-deps`"


def test_dvc_lock_holds_only_the_stages_dvc_yaml_declares():
    """DVC keeps a gone stage's entry and rewrites the whole lock after every stage (slow when it grows)."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert set(lock) == dvc_stage_names(PARAMS)


def test_pruning_the_lock_drops_gone_stages_and_keeps_the_rest_byte_for_byte(tmp_path):
    live = (REPO / "dvc.lock").read_text()
    gone = "  probe@ensemble-0:\n    cmd: jtm probe ensemble 0\n    deps:\n    - path: data/index\n"
    stale = live.replace("stages:\n", "stages:\n" + gone, 1) + "  'pretrain@7':\n    cmd: jtm pretrain 7\n"
    (tmp_path / "dvc.lock").write_text(stale)
    assert prune_dvc_lock(PARAMS, tmp_path / "dvc.lock") == ["probe@ensemble-0", "pretrain@7"]
    assert (tmp_path / "dvc.lock").read_text() == live
    assert prune_dvc_lock(PARAMS, tmp_path / "dvc.lock") == []


def test_every_named_param_and_code_file_exists():
    for stage in STAGES.values():
        for key in stage.params + tuple(stage.inputs.values()) + tuple(stage.outputs.values()):
            get_dotted(PARAMS, key)
        for code in stage.code:
            assert (REPO / code).exists(), code


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_help_says_inputs_outputs_and_params(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for key in (
        STAGES[name].params + tuple(STAGES[name].outputs.values()) + tuple(STAGES[name].matrix.values())
    ):
        assert key in text
    assert "inputs:" in text and "outputs:" in text


def test_rule_resources_come_from_params_cluster_section(monkeypatch):
    from jtm.config import ConfigError
    from jtm.workflow import rule_resources

    params = copy.deepcopy(PARAMS)
    params["cluster"].update(partition="gpu", account="lab", mem_mb=1000, runtime=5)
    params["cluster"]["rules"] = {"pretrain": {"gpu": 2, "mem_mb": 9000}, "probe": {"gpu": 0}}
    params["pretrain"]["device"] = "cpu"
    with pytest.raises(ConfigError, match="asks for 2 GPU\\(s\\), but pretrain.device is cpu"):
        rule_resources(params, "pretrain")  # GPUs asked for, and left idle
    params["pretrain"]["device"] = "cuda"
    for rule, device in (("embed", "embed.device"), ("end_to_end", "downstream.e2e_device"), ("probe", None)):
        params["cluster"]["rules"][rule] = {"gpu": 1}
        said = f"{device} is cpu" if device else "it runs no network"
        with pytest.raises(ConfigError, match=f"cluster.rules.{rule} asks for 1 GPU\\(s\\), but {said}"):
            rule_resources(params, rule)
    params["embed"]["device"] = "auto"
    assert rule_resources(params, "embed")["gpu"] == 1
    params["cluster"]["rules"]["probe"] = {"gpu": 0}
    assert rule_resources(params, "pretrain") == {
        "mem_mb": 9000,
        "runtime": 5,
        "gpu": 2,
        "slurm_partition": "gpu",
        "slurm_account": "lab",
    }
    assert "gpu" not in rule_resources(params, "probe")  # zero GPUs: none asked for
    params["cluster"].update(partition=None, account=None)
    monkeypatch.setenv("SBATCH_PARTITION", "short")
    monkeypatch.delenv("SBATCH_ACCOUNT", raising=False)
    assert rule_resources(params, "probe")["slurm_partition"] == "short"  # sbatch's own variable
    assert "slurm_account" not in rule_resources(params, "probe")
    params["cluster"]["rules"] = {"pretrian": {"gpu": 1}}
    with pytest.raises(ConfigError, match="unknown rules \\['pretrian'\\]"):
        rule_resources(params, "pretrain")
    params["cluster"]["rules"] = {"pretrain": {"gpus": 1}}
    with pytest.raises(ConfigError, match="cluster.rules.pretrain: unknown resources \\['gpus'\\]"):
        rule_resources(params, "pretrain")


def test_each_rule_asks_for_its_params_resources_and_threads(rules):
    from jtm.workflow import rule_resources

    for name, rule in rules.items():
        assert {k: rule["resources"][k] for k in rule_resources(PARAMS, name)} == rule_resources(PARAMS, name)
    assert rules["pretrain"]["threads"] == PARAMS["pretrain"]["threads"] + PARAMS["pretrain"]["workers"]
    assert rules["probe"]["threads"] == rules["end_to_end"]["threads"] == PARAMS["downstream"]["threads"]


@pytest.mark.parametrize(
    "stage, module",
    [  # each missed by the hand-kept lists before #23
        ("report", "jtm/downstream/metrics.py"),
        ("downstream", "jtm/downstream/metrics.py"),
        ("probe", "jtm/features/embed.py"),
        ("probe", "jtm/musicnet/layout.py"),
        ("end_to_end", "jtm/musicnet/layout.py"),
        ("acquire", "jtm/musicnet/layout.py"),
        ("index", "jtm/musicnet/layout.py"),
        ("ingest", "jtm/musicnet/layout.py"),
        ("pretrain", "jtm/loading/prefetch.py"),
        ("pretrain", "jtm/models/cpc.py"),  # through jtm.models.registry: transitively
        ("pretrain", "jtm/stages.py"),  # the adapter itself
    ],
)
def test_a_stage_depends_on_every_module_it_can_run(stage, module):
    assert module in STAGES[stage].code


@pytest.mark.parametrize(
    "stage, module",
    [
        ("index", "jtm/train/pretrain.py"),  # another stage's adapter imports it, not this one's
        ("index", "jtm/models/artifact.py"),  # jtm/__init__.py imports it inside a function only
        ("pretrain", "jtm/downstream/metrics.py"),
        ("report", "jtm/runner.py"),  # orchestration: which stage runs where, not what it writes
    ],
)
def test_a_stage_does_not_depend_on_code_it_never_runs(stage, module):
    assert module not in STAGES[stage].code


def test_the_code_digest_follows_every_file_it_covers(tmp_path, monkeypatch):
    """A copy of the package: editing one module changes the digest of what imports it only."""
    import shutil

    from jtm import codedeps

    shutil.copytree(REPO / "jtm", tmp_path / "jtm", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "ROOT", tmp_path)
    monkeypatch.setattr(codedeps, "PACKAGE", tmp_path / "jtm")
    for cached in (codedeps.module_files, codedeps.imports, codedeps.function_code):
        cached.cache_clear()
    try:
        before = {root: codedeps.code_digest(root) for root in ("jtm.train.pretrain", "jtm.corpus.index")}
        with open(tmp_path / "jtm" / "loading" / "prefetch.py", "a") as handle:
            handle.write("# an edit\n")
        assert codedeps.code_digest("jtm.train.pretrain") != before["jtm.train.pretrain"]
        assert codedeps.code_digest("jtm.corpus.index") == before["jtm.corpus.index"]
    finally:
        monkeypatch.undo()
        for cached in (codedeps.module_files, codedeps.imports, codedeps.function_code):
            cached.cache_clear()


def test_an_unimported_module_is_no_stage_dependency():
    assert all(UNIMPORTED not in stage.code for stage in STAGES.values())
