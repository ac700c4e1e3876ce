"""The CPC recipe ablation: each variant is a DVC experiment of the whole study, scored by the
downstream stage's bootstrap intervals and paired comparisons (see README, "What CPC learns").

    python benchmarks/ablation.py run [name ...]   # `dvc exp run -n <name> -S ...` per variant, in turn
    python benchmarks/ablation.py collect          # rows.jsonl again from the experiments' commits
    python benchmarks/ablation.py table            # the README's table from results/ablation/rows.jsonl
    python benchmarks/ablation.py list             # the variants and their params

Variants run one after another in the workspace (each reuses every cached stage it shares with
an earlier one: a read-out variant retrains no model); after each, its row is appended to
results/ablation/rows.jsonl: pretraining wall time (MLflow's pretrain run; a reused model
reports the run that trained it), val k=1 accuracy, and per task at all labels the best CPC
method (chosen on validation) with its 95 % interval and its paired difference with the best
random-init control. `dvc exp show` lists the experiments afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROWS = Path("results/ablation/rows.jsonl")
TASKS = ("ensemble", "composer", "instruments", "transcription")
# The seed recipe on the demo: raw waveform, SincNet, 600 steps (params.yaml before the ablation).
SEED = {
    "pretrain.encoder": "sinc",
    "pretrain.steps": 600,
    "pretrain.lr": 2.0e-4,
    "pretrain.warmup_steps": 0,
    "pretrain.negative_pool": 0,
    "pretrain.sampling": "uniform",
    "pretrain.hidden": 128,
    "pretrain.batch_size": 8,
    "pretrain.workers": 2,
    "embed.layer": "context",
    "embed.pooling": "mean",
    # The probe protocol every row was scored with (the demo's MLP now trains for 100).
    "downstream.mlp_max_iter": 200,
}
LOGMEL = SEED | {"pretrain.encoder": "logmel", "pretrain.workers": 0}
# The same pretraining wall time as the seed recipe, spent on more, cheaper steps.
FAST = LOGMEL | {"pretrain.negative_pool": 256, "pretrain.steps": 1500}
# ... read from the encoder: the base of the pretraining variants below.
READ = FAST | {"embed.layer": "encoder"}
# ... with lr 1e-3 after a 100-step warm-up: the best pretraining row, base of the rows after it.
BEST = READ | {"pretrain.lr": 1.0e-3, "pretrain.warmup_steps": 100}
VARIANTS: dict[str, dict] = {
    "seed recipe (sinc, 600 steps)": SEED,
    "logmel front-end, 600 steps": LOGMEL,
    "logmel, sub-pool 256, 1500 steps": FAST,
    "... read-out: encoder": READ,
    "... read-out: context, mean+std": FAST | {"embed.pooling": "meanstd"},
    "... read-out: both": FAST | {"embed.layer": "both"},
    "... encoder, same-sequence negatives": READ | {"pretrain.sampling": "samesequence"},
    "... encoder, hidden 256, 900 steps": READ | {"pretrain.hidden": 256, "pretrain.steps": 900},
    "... encoder, lr 1e-3, warm-up 100": BEST,
    "... encoder, lr 1e-3, warm-up 100, 800 steps (the demo's budget)": BEST | {"pretrain.steps": 800},
    "... encoder, lr 1e-3, warm-up 100, 3000 steps": BEST | {"pretrain.steps": 3000},
    # + unlabeled audio (stage `ingest`): 384 Bach chorales of music21's corpus that the demo does
    # not use, rendered first (`jtm render <them> --out data/unlabeled/bach`: 1 151 tracks,
    # 2.64 h, 7.2x the demo's train audio), weighted by hours: every window equally likely.
    "... encoder, lr 1e-3, warm-up 100, + 2.6 h of unlabeled Bach chorales": BEST
    | {"ingest.corpora": [{"name": "bach", "paths": ["data/unlabeled/bach"], "weight": 7.2}]},
    # The prediction shortcut: a 64 ms STFT frame overlaps the frames it predicts for k <= 6
    # (hop 10 ms), a 25 ms one for k <= 2 only.
    "... encoder, lr 1e-3, warm-up 100, 25 ms STFT (less overlap with the predicted frames)": BEST
    | {"pretrain.mel_window": 400},
    # Batch size at the same wall time and the same windows seen: twice the batch, half the steps.
    "... encoder, lr 1e-3, warm-up 100, batch 16, 750 steps": BEST
    | {"pretrain.batch_size": 16, "pretrain.steps": 750},
}


def overrides(variant: dict) -> list[str]:
    return [arg for key, value in variant.items() for arg in ("-S", f"{key}={_hydra(value)}")]


def _hydra(value) -> str:
    """A value in the override grammar `dvc exp run -S` parses (Hydra's): lists and dicts too."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_hydra(v) for v in value) + "]"
    return str(value)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]


def pretrain_minutes(trained: dict) -> float | None:
    """Wall time, in minutes, of the MLflow pretrain run that trained the workspace's model: the
    longest run with its params (a later variant that reuses the model resumes its finished
    checkpoint in seconds)."""
    import mlflow

    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    where = "tags.mlflow.runName = 'pretrain'"
    runs = mlflow.search_runs(experiment_names=["jtm"], filter_string=where)
    for key, value in trained.items():
        column = f"params.pretrain.{key}"
        if column in runs and key not in ("workers", "checkpoint_every", "device", "compile"):
            runs = runs[runs[column] == str(value)]
    if runs.empty:
        return None
    return float((runs["end_time"] - runs["start_time"]).max().total_seconds() / 60)


def read_json(path: str, rev: str | None) -> dict:
    """A JSON file of the workspace (rev None) or of a git revision (an experiment's commit). A
    pretraining file is the first run's (results/pretrain/run0/), or before runs existed the
    single model's."""
    paths = [path.replace("results/pretrain/", "results/pretrain/run0/"), path]
    for candidate in dict.fromkeys(paths):
        if rev is None and Path(candidate).is_file():
            return json.loads(Path(candidate).read_text())
        if rev is not None:
            shown = subprocess.run(["git", "show", f"{rev}:{candidate}"], capture_output=True)
            if shown.returncode == 0:
                return json.loads(shown.stdout)
    raise FileNotFoundError(f"{path} (or its run0/ twin) at {rev or 'the workspace'}")


def rival(comparisons: dict, family: str) -> str:
    """The key of a comparisons file's pair against `family` ("random", "logmel"): "cpc-mlp - random-mlp"."""
    return next(k for k in comparisons if k.split(" - ")[1].startswith(family))


def experiment_commits() -> dict[str, str]:
    """{experiment name: commit} of every DVC experiment in this repository (`dvc exp show`'s)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {ref.rsplit("/", 1)[1]: rev for ref, rev in zip(refs[::2], refs[1::2], strict=True)}


def row(name: str, rev: str | None = None) -> dict:
    """One ablation row from the workspace's results, or from experiment commit `rev`."""
    pretrained = read_json("results/pretrain/metrics.json", rev)
    if rev is None:
        trained = read_json("results/pretrain/config.json", rev)["pretrain"]
    else:
        import yaml

        show = subprocess.run(["git", "show", f"{rev}:params.yaml"], capture_output=True, check=True)
        trained = yaml.safe_load(show.stdout)["pretrain"]
    out = {
        "variant": name,
        "pretrain_minutes": pretrain_minutes(trained),
        "val_acc_k1": pretrained["val_acc_k1"],
    }
    for task in TASKS:
        comparisons = read_json(f"results/metrics/{task}/comparisons/all.json", rev)
        pair = rival(comparisons, "random")
        best = pair.split(" - ")[0]
        headline = read_json(f"results/metrics/{task}/{best}/all.json", rev)["headline"]
        smallest = read_json(f"results/metrics/{task}/comparisons/1-per-class.json", rev)
        logmel = rival(smallest, "logmel")
        out[task] = {"best": best, **headline, "vs_random": comparisons[pair]}
        out[task]["smallest_vs_logmel"] = {"pair": logmel, **smallest[logmel]}
    return out


def run(names: list[str]) -> None:
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    for name in names or VARIANTS:
        # `dvc exp run` leaves an experiment's params in the workspace: start each from HEAD's, or
        # a key one variant sets (a shorter STFT, a corpus) would leak into the next.
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], check=True)
        command = ["dvc", "exp", "run", "-n", slug(name), *overrides(VARIANTS[name])]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        with ROWS.open("a") as file:
            file.write(json.dumps(row(name)) + "\n")


def collect() -> None:
    """Rebuild rows.jsonl from the experiments' commits (`dvc exp show` lists them)."""
    revs = experiment_commits()
    rows = [row(name, revs[slug(name)]) for name in VARIANTS if slug(name) in revs]
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    ROWS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} rows from experiments: {ROWS}")


def _diff(d: dict) -> str:
    text = f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
    return f"**{text}**" if d["lo"] > 0 or d["hi"] < 0 else text


def table() -> None:
    """Two Markdown tables: all labels against the control; one track per class against log-mel."""
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()]
    head = "| variant | pretrain min | val k=1 |"
    head += "".join(f" {t}: best CPC [95 %] | CPC − random [95 %] |" for t in TASKS)
    print(head + "\n|" + "---|" * (3 + 2 * len(TASKS)))
    for r in rows:
        cells = [r["variant"], f"{r['pretrain_minutes']:.1f}", f"{r['val_acc_k1']:.3f}"]
        for task in TASKS:
            t = r[task]
            cells += [f"{t['best']} {t['mean']:.3f} [{t['lo']:.3f}, {t['hi']:.3f}]", _diff(t["vs_random"])]
        print("| " + " | ".join(cells) + " |")
    print("\n| variant |" + "".join(f" {t}: 1 track/class, best CPC − best log-mel |" for t in TASKS))
    print("|" + "---|" * (1 + len(TASKS)))
    for r in rows:
        cells = [r["variant"]] + [_diff(r[t]["smallest_vs_logmel"]) for t in TASKS]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("action", choices=("run", "collect", "table", "list"))
    parser.add_argument("names", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args()
    if args.action == "run":
        unknown = [n for n in args.names if n not in VARIANTS]
        if unknown:
            sys.exit(f"unknown variants {unknown}: see `python benchmarks/ablation.py list`")
        run(args.names)
    elif args.action == "collect":
        collect()
    elif args.action == "table":
        table()
    else:
        for name, variant in VARIANTS.items():
            print(f"{name}: {' '.join(overrides(variant))}")


if __name__ == "__main__":
    main()
