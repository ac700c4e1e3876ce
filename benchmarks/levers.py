"""The CPC levers' ablation (docs/recipe.md, "Levers"): each row is a DVC experiment of the whole
study from the default recipe, three pretraining runs a row, scored under seen and unseen
recording conditions with the study's paired intervals.

    python benchmarks/levers.py run [name ...]   # `dvc exp run -n <name> -S ...` per row, in turn
    python benchmarks/levers.py table            # docs/recipe.md's tables from results/levers/rows.jsonl
    python benchmarks/levers.py list             # the rows and their params

A row: the mean val k=1 accuracy of its runs, pretraining minutes (MLflow: the runs' mean), the
effective rank of CPC's and the control's test frames (jtm/features/rank.py, mean over runs),
and per part (seen, unseen), task and budget (all labels, 1 track/class) the best CPC method's
paired differences with the best random-init control and the best raw-feature probe of the
same front-end (log-mel, or log-CQT for a CQT model). Run it in a clone of its own: the
experiments rewrite the workspace's results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ablation import _diff, overrides, slug  # noqa: E402

ROWS = Path("results/levers/rows.jsonl")
TASKS = ("ensemble", "composer", "instruments", "transcription")
PARTS = ("seen", "unseen")
BUDGETS = ("all", "1-per-class")
PAST = ["bandreject", "dropout", "reverb", "noise"]  # Kharitonov et al.'s chain, less pitch shift
CQT = {"pretrain.encoder": "cqt", "embed.features": ["cpc", "random", "logmel", "cqt"]}
CQT |= {"downstream.features": ["cpc", "random", "logmel", "cqt"]}
VARIANTS: dict[str, dict] = {
    "default recipe": {},
    "same-track negatives, share 1/2": {"pretrain.same_track_share": 0.5},
    "same-track negatives, share 1": {"pretrain.same_track_share": 1.0},
    "past augmented (bandreject, dropout, reverb, noise)": {"pretrain.augment": PAST},
    "past augmented, + mix": {"pretrain.augment": PAST + ["mix"]},
    "CQT front-end (every arm)": CQT,
    # The context network is what learns to predict through the nuisance: read it out too.
    "default recipe, read-out: context": {"embed.layer": "context"},
    "past augmented, read-out: context": {"pretrain.augment": PAST, "embed.layer": "context"},
    # Only the nuisances recordings have (a room, a noise floor), not band gaps and dropouts.
    "past augmented (reverb, noise)": {"pretrain.augment": ["reverb", "noise"]},
    "past augmented (reverb, noise), read-out: context": {
        "pretrain.augment": ["reverb", "noise"],
        "embed.layer": "context",
    },
    # Over the demo's 10 minutes: does the harder objective want more steps?
    "past augmented, 1000 steps": {"pretrain.augment": PAST, "pretrain.steps": 1000},
}


def _read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def pretrain_minutes() -> float | None:
    """Mean wall time of the workspace's pretraining runs, from MLflow (the latest run of each)."""
    import mlflow

    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    runs = mlflow.search_runs(experiment_names=["jtm"], filter_string="tags.mlflow.runName LIKE 'pretrain%'")
    if runs.empty:
        return None
    latest = runs.sort_values("start_time").tail(3)
    return float((latest["end_time"] - latest["start_time"]).mean().total_seconds() / 60)


def row(name: str) -> dict:
    """One row from the workspace's results (after `dvc exp run`)."""
    import yaml

    from jtm.features.rank import feature_ranks

    params = yaml.safe_load(Path("params.yaml").read_text())
    runs = params["pretrain"]["runs"]
    raw = "cqt" if params["pretrain"]["encoder"] == "cqt" else "logmel"
    ranks = [feature_ranks(f"results/embeddings/run{r}", ["cpc", "random"]) for r in runs]
    out = {
        "variant": name,
        "raw": raw,
        "pretrain_minutes": pretrain_minutes(),
        "val_acc_k1": sum(_read(f"results/pretrain/run{r}/metrics.json")["val_acc_k1"] for r in runs)
        / len(runs),
        "rank": {f: sum(x[f]["rank"] for x in ranks) / len(ranks) for f in ("cpc", "random")},
    }
    for part in PARTS:
        for task in TASKS:
            for budget in BUDGETS:
                comparisons = _read(f"results/metrics/{task}/{part}/comparisons/{budget}.json")
                cell = {}
                for rival in ("random", raw):
                    key = next(k for k in comparisons if k.split(" - ")[1].startswith(rival + "-"))
                    cell[rival] = {"pair": key} | {k: comparisons[key][k] for k in ("diff", "lo", "hi")}
                out[f"{part}/{task}/{budget}"] = cell
    return out


def run(names: list[str]) -> None:
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    for name in names or VARIANTS:
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], check=True)
        command = ["dvc", "exp", "run", "-n", slug(name), *overrides(VARIANTS[name])]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        with ROWS.open("a") as file:
            file.write(json.dumps(row(name)) + "\n")


def _wins(r: dict, part: str, budget: str, rival: str) -> str:
    """'wins/ties/losses' over the four tasks."""
    kinds = [
        "w" if c["lo"] > 0 else "l" if c["hi"] < 0 else "t"
        for c in (r[f"{part}/{t}/{budget}"][rival if rival == "random" else r["raw"]] for t in TASKS)
    ]
    return f"{kinds.count('w')}/{kinds.count('t')}/{kinds.count('l')}"


def table() -> None:
    """Markdown: a summary (wins/ties/losses over the four tasks per comparison), then each
    comparison per task: unseen conditions first, all labels and 1 track/class, against the
    control and against the raw features of the row's front-end."""
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()]
    comparisons = [
        (part, budget, rival) for part in PARTS[::-1] for budget in BUDGETS for rival in ("random", "raw")
    ]
    words = {"random": "vs control", "raw": "vs raw", "all": "all", "1-per-class": "1/class"}
    print("| variant | val k=1 | eff. rank CPC / control |", end="")
    print("".join(f" {p}: {words[r]}, {words[b]} |" for p, b, r in comparisons))
    print("|" + "---|" * (3 + len(comparisons)))
    for r in rows:
        cells = [
            r["variant"],
            f"{r['val_acc_k1']:.3f}",
            f"{r['rank']['cpc']:.1f} / {r['rank']['random']:.1f}",
        ]
        cells += [_wins(r, p, b, rival) for p, b, rival in comparisons]
        print("| " + " | ".join(cells) + " |")
    for part, budget, rival in comparisons:
        label = "all labels" if budget == "all" else "1 track/class"
        name = "CPC − control" if rival == "random" else "CPC − raw features"
        print(f"\n**{part} conditions, {label}: {name}**\n\n| variant |" + "".join(f" {t} |" for t in TASKS))
        print("|" + "---|" * (1 + len(TASKS)))
        for r in rows:
            key = rival if rival == "random" else r["raw"]
            cells = [r["variant"]] + [_diff(r[f"{part}/{t}/{budget}"][key]) for t in TASKS]
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("action", choices=("run", "table", "list"))
    parser.add_argument("names", nargs="*", help="rows to run (default: all)")
    args = parser.parse_args()
    if args.action == "run":
        unknown = [n for n in args.names if n not in VARIANTS]
        if unknown:
            sys.exit(f"unknown rows {unknown}: see `python benchmarks/levers.py list`")
        run(args.names)
    elif args.action == "table":
        table()
    else:
        for name, variant in VARIANTS.items():
            print(f"{name}: {' '.join(overrides(variant))}")


if __name__ == "__main__":
    main()
