"""The README is the front door: every command it shows works as written, every page it links
exists, and its verdict grid says what the committed results/metrics say."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jtm.cli import build_parser
from jtm.config import load_params, validate_params
from jtm.downstream.compare import outcome
from jtm.report.glance import MARKS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _commands() -> list[str]:
    """Every command of the README's bash blocks and its inline `jtm ...`/`make ...` spans."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`((?:jtm|make|dvc) [^`]+)`", README)
    return [c for c in lines + inline if c]


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 250


@pytest.mark.parametrize("command", _commands())
def test_every_command_works_as_written(command):
    words = shlex.split(command)
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M)
        assert set(words[1:]) <= set(targets), command
    elif words[0] == "jtm":
        build_parser().parse_args(words[1:])  # exits (fails the test) on an unknown command or option
    elif words[0] == "dvc" and words[1:3] == ["exp", "run"]:
        overrides = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
        params = load_params(REPO / "params.yaml", overrides)
        validate_params(params, "README")
    elif words[0] == "dvc":  # dvc's own parser: an unknown command or option fails
        dvc = Path(sys.executable).with_name("dvc")
        assert subprocess.run([dvc, *words[1:], "--help"], capture_output=True, cwd=REPO).returncode == 0
    elif words[0] == ".":  # sourcing the venv `make demo` builds (python -m venv makes activate)
        makefile = (REPO / "Makefile").read_text()
        assert words[1:] == [".venv/bin/activate"] and re.search(r"^VENV := \.venv$", makefile, flags=re.M)
        assert re.search(r"-m venv \$\(VENV\)", makefile)
    elif words[0] == "snakemake":
        profile = words[words.index("--workflow-profile") + 1]
        assert (REPO / profile / "config.yaml").is_file()
    else:
        raise AssertionError(f"a command the README test does not know: {command}")


def test_every_linked_page_exists():
    """Every page and image the README links is in the repository; a citation links its paper
    over https (not fetched: the tests run offline)."""
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links
    for link in links:
        if "://" in link:
            assert re.match(r"https://[\w.-]+/\S+$", link), link
        else:
            assert (REPO / link).is_file(), link


def test_the_verdict_grid_is_the_committed_results():
    """Each README grid cell's two verdicts: the comparisons in results/metrics, to the digit."""
    rows = [
        line
        for line in README.splitlines()
        if re.match(r"\| (ensemble|composer|instruments|transcription) \|", line)
    ]
    assert len(rows) == 4
    budgets = ["1-per-class", "4-per-class", "all"]
    for row in rows:
        task, *cells = [c.strip() for c in row.strip("|").split("|")]
        for budget, cell in zip(budgets, cells, strict=True):
            unseen = REPO / "results" / "metrics" / task / "unseen"  # README's grid: unseen conditions
            saved = json.loads((unseen / "comparisons" / f"{budget}.json").read_text())
            best = re.match(r"\*\*(\S+)\*\*", cell).group(1)
            for rival, prefix in (("random", "vs control"), ("logmel", "vs log-mel")):
                (pair,) = [k for k in saved if k.startswith(f"{best} - {rival}")]
                c = saved[pair]
                mark = MARKS[outcome(c["lo"], c["hi"])]
                want = f"{prefix}: {mark} {c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]"
                assert want in cell, (task, budget, want)
