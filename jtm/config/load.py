"""Read a params file, apply dotted `--set key=value` overrides, and reach keys by dotted name.

Values are parsed as YAML. Keys renamed since an older params file are read under their new
name, with a warning (`RENAMED`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import yaml

from jtm.errors import ConfigError

# old dotted key -> new: what an older params file (or --set) may still say
RENAMED = {
    "pretrain.heads": "pretrain.attention_heads",
    "pretrain.head": "pretrain.predictor",
    "downstream.heads": "downstream.probes",
}

# old dotted key -> what replaced it: read no more (the meaning changed), named in the error
REPLACED = {
    "downstream.fractions": "downstream.budgets (labelled tracks per class, or all)",
    "downstream.end_to_end_fractions": "downstream.end_to_end_budgets (labelled tracks per class, or all)",
    "downstream.lr": "downstream.l2_grid and max_iter (probes train full-batch to convergence)",
    "downstream.weight_decay": "downstream.l2_grid (chosen on validation)",
    "downstream.batch_size": "downstream.max_iter (probes train full-batch)",
    "downstream.frame_batch_size": "downstream.max_iter (probes train full-batch)",
    "downstream.max_epochs": "downstream.max_iter (L-BFGS iterations per L2 strength)",
    "downstream.patience": "downstream.l2_grid (no early stopping: validation chooses the L2 strength)",
}


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Read a params file and apply `key.sub=value` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read params: {err}", source=path) from err
    if not isinstance(params, dict):
        raise ConfigError("expected a mapping at the top level", source=path)
    upgrade_names(params, path)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value", source=path)
        if key in REPLACED:
            raise ConfigError(f"--set {key}: replaced by {REPLACED[key]}", source=path)
        if key in RENAMED:
            warnings.warn(f"--set {key}: {key} is now called {RENAMED[key]}", stacklevel=2)
        set_dotted(params, RENAMED.get(key, key), yaml.safe_load(raw), source=path)
    return params


def upgrade_names(params: dict, source: str | Path) -> None:
    """Rename, in place, the keys `RENAMED` lists (a warning each); refuse those `REPLACED` lists."""
    for old, new in REPLACED.items():
        section, leaf = old.split(".")
        if isinstance(params.get(section), dict) and leaf in params[section]:
            raise ConfigError(f"{old} was replaced by {new}", source=source)
    for old, new in RENAMED.items():
        section, old_leaf = old.split(".")
        node = params.get(section)
        if isinstance(node, dict) and old_leaf in node:
            new_leaf = new.split(".")[1]
            if new_leaf in node:
                raise ConfigError(f"both {old} (its old name) and {new} are set", source=source)
            warnings.warn(f"{source or 'params'}: {old} is now called {new}", stacklevel=3)
            node[new_leaf] = node.pop(old_leaf)


def set_dotted(params: dict, key: str, value: Any, source: str | Path | None = None) -> None:
    """Set `a.b.c` in a nested dict; every level but the last must already exist."""
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {key}: no section {part!r} in params", source=source)
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"--set {key}: unknown key {leaf!r}{did_you_mean(leaf, node)}", source=source)
    node[leaf] = value


def did_you_mean(name: str, known) -> str:
    """ "; did you mean 'hidden'?" for the closest known names, else the known names listed."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f" (known: {', '.join(known)})"


def get_dotted(params: dict, key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"params has no key {key!r}")
        node = node[part]
    return node


def subset(params: dict, keys: list[str] | tuple[str, ...]) -> dict:
    """The values of dotted `keys`, as {key: value}: what one stage reads."""
    return {key: copy.deepcopy(get_dotted(params, key)) for key in keys}


def params_hash(values: dict) -> str:
    """A short stable hash of a params subset, for MLflow tags."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
