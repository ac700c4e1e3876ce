"""The install: pyproject.toml declares every package jtm imports, with ranges; the two locks a
resolver made from it agree with it and with each other, check every file by hash, and keep the
CUDA stack to Linux; `make demo` installs the runtime alone; the docs' commands assume the
activated venv, never `.venv/bin/<tool>`."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO

pytestmark = pytest.mark.check

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock(name: str) -> dict[str, tuple[str, str, list[str]]]:
    """A lock's entries: name -> (version, marker, hashes)."""
    text = (REPO / name).read_text()
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+?))?\s*\\?\n", block + "\n")
        if head:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            entries[canonical(head.group(1))] = (head.group(2), (head.group(3) or "").strip(), hashes)
    return entries


RUNTIME, DEV = lock("requirements.lock"), lock("requirements-dev.lock")


def imported_modules() -> set[str]:
    """Top-level third-party modules jtm and the Snakemake scripts import."""
    found = set()
    for folder in ("jtm", "workflow/scripts"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "jtm"}


def test_every_imported_package_is_declared_with_a_range():
    declared = {canonical(Requirement(r).name): Requirement(r) for r in PYPROJECT["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    for module in sorted(imported_modules()):
        dists = {canonical(d) for d in providers.get(module, [])}
        assert dists & declared.keys(), f"{module} (from {dists or 'no installed package'}) is not declared"
    for name, requirement in declared.items():
        assert requirement.specifier and not any(s.operator == "==" for s in requirement.specifier), name


def test_the_runtime_lock_holds_every_dependency_in_its_range_and_checks_every_file():
    for line in PYPROJECT["dependencies"]:
        requirement = Requirement(line)
        version = RUNTIME[canonical(requirement.name)][0]
        assert requirement.specifier.contains(version, prereleases=True), (line, version)
    assert all(hashes for _, _, hashes in RUNTIME.values())
    assert all(hashes for _, _, hashes in DEV.values())


def test_the_cuda_stack_is_linux_only_and_pyaudio_is_left_out():
    stack = ("nvidia-", "cuda-", "triton")
    cuda = {n: marker for n, (_, marker, _) in RUNTIME.items() if n.startswith(stack)}
    assert len(cuda) >= 10 and all("sys_platform == 'linux'" in marker for marker in cuda.values()), cuda
    assert RUNTIME["pyaudio"][1] == "sys_platform == 'never'"
    assert RUNTIME["torch"][1] == "" and RUNTIME["numpy"][1] == ""  # on every platform


def test_the_dev_lock_is_the_runtime_lock_and_the_tools():
    for name, (version, _, _) in RUNTIME.items():  # markers may widen: playwright needs greenlet
        assert DEV[name][0] == version, name
    tools = {canonical(Requirement(r).name) for r in PYPROJECT["optional-dependencies"]["dev"]}
    assert tools <= DEV.keys() and not tools & RUNTIME.keys()


def test_make_demo_installs_the_runtime_alone_and_the_tests_their_tools():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: install$", makefile, re.M)
    assert re.search(r"^check: install-dev$", makefile, re.M)
    stamp = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "requirements.lock" in stamp and "--require-hashes" in stamp
    assert "requirements-dev.lock" not in stamp


def test_the_docs_call_the_tools_by_name_in_the_activated_venv():
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for page in pages:
        calls = re.findall(r"\.venv/bin/(\w+)", page.read_text())
        assert set(calls) <= {"activate"}, (page.name, calls)


def test_make_clean_removes_no_file_git_holds():
    """`make clean` deletes every pipeline output but the small results committed in git."""
    import glob
    import subprocess

    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^clean:\n((?:\t.*\n)+)", makefile, re.M).group(1).replace("\\\n", " ")
    paths = [word for line in recipe.splitlines() for word in line.split()[2:]]  # after "rm -rf"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    files = tracked.stdout.splitlines()
    assert paths and "results/report.html" in paths
    for path in paths:
        for match in glob.glob(path, root_dir=REPO) or [path]:
            assert not [f for f in files if f == match or f.startswith(match.rstrip("/") + "/")], match
