"""How far another pretraining run moves the demo's verdicts: the study's intervals resample test
works and probe seeds around one pretrained model, and this measures what they leave out.

    python benchmarks/pretrain_seeds.py run 1 2    # `dvc exp run -n pretrain-seed-N -S pretrain.seed=N` each
    python benchmarks/pretrain_seeds.py table      # the workspace's results and each seed's, side by side

Each seed is a DVC experiment of the whole demo with the workspace's params but the seed
(`dvc exp show` lists them); the table reads the experiments' commits. Per run: val k=1
accuracy, and the best CPC method minus the best random-init control (each chosen on
validation) with its 95 % interval, per task at all labels and for ensemble at one labelled
track per class. README, "What the intervals leave out".
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from ablation import TASKS, _diff, experiment_commits, read_json, rival


def run(seeds: list[int]) -> None:
    for seed in seeds:
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], check=True)  # see ablation.run
        command = ["dvc", "exp", "run", "-n", f"pretrain-seed-{seed}", "-S", f"pretrain.seed={seed}"]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def experiments() -> dict[str, str]:
    """{"pretrain-seed-N": commit} of the experiments `run` made."""
    named = experiment_commits()
    return {name: rev for name, rev in sorted(named.items()) if name.startswith("pretrain-seed-")}


def versus_control(budget: str, task: str, rev: str | None) -> str:
    comparisons = read_json(f"results/metrics/{task}/comparisons/{budget}.json", rev)
    pair = rival(comparisons, "random")
    return f"{_diff(comparisons[pair])} ({pair.split(' - ')[0]})"


def table() -> None:
    # `dvc exp run` leaves the last experiment's results in the workspace: say whose they are.
    seed = read_json("results/pretrain/config.json", None)["pretrain"]["seed"]
    runs = {f"workspace (pretrain.seed {seed})": None} | experiments()
    head = "| run | val k=1 |" + "".join(f" {t}, all labels |" for t in TASKS) + " ensemble, 1 track/class |"
    print(head + "\n|" + "---|" * (3 + len(TASKS)))
    for name, rev in runs.items():
        cells = [name, f"{read_json('results/pretrain/metrics.json', rev)['val_acc_k1']:.3f}"]
        cells += [versus_control("all", task, rev) for task in TASKS]
        cells.append(versus_control("1-per-class", "ensemble", rev))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("action", choices=("run", "table"))
    parser.add_argument("seeds", nargs="*", type=int, help="pretraining seeds to run")
    args = parser.parse_args()
    if args.action == "run":
        if not args.seeds:
            sys.exit("give the pretraining seeds to run, e.g. `run 1 2`")
        run(args.seeds)
    else:
        table()


if __name__ == "__main__":
    main()
