"""Break each mechanism the study's claims rest on, one at a time, and check a test fails.

`make breaks` (minutes; not part of `make test`): for every row of `BREAKS` the working tree is
copied to a temporary folder, one source line is replaced there, and the named tests run on
the copy. A break whose tests all pass is a hole in the suite: the script lists each row's
outcome and exits 1 if any break went unnoticed. A replacement whose text is not found in the
file exits 2 (the code moved on: update the row), as does a row whose tests do not run (a
`-k` that selects nothing), so a stale row cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Break:
    what: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments


BREAKS = (
    Break(
        "each method its own bootstrap draws (comparisons unpaired)",
        "jtm/downstream/compare.py",
        "bootstrap.resampled_runs(kind, stacked, draws, run_draws, seed_draws)",
        "bootstrap.resampled_runs(kind, stacked, draws[np.random.default_rng(salt).permutation(len(draws))],"
        " run_draws, seed_draws)",
        ("tests/test_study_power.py", "tests/test_statistics.py"),
    ),
    Break(
        "the best CPC method picked by its test score",
        "jtm/downstream/compare.py",
        '["val_score", "order"], ascending',
        '["mean", "order"], ascending',
        ("tests/test_study_power.py", "tests/test_statistics.py"),
    ),
    Break(
        "the batch plan draws MusicNet only, ignoring the corpora's weights",
        "jtm/train/sources.py",
        "mixture = MixturePlan(windows, weights,",
        "mixture = MixturePlan(windows[windows['source'] == MUSICNET], {MUSICNET: cfg.musicnet_weight},",
        ("tests/test_ingest.py", "-k", "each_source_by_its_weight"),
    ),
    Break(
        "the sharded loader ignores the corpora's weights",
        "jtm/train/sources.py",
        "plans = sharded_epoch(self.windows, paths, self.weights,",
        "plans = sharded_epoch(self.windows, paths, {MUSICNET: 1.0},",
        ("tests/test_ingest.py", "-k", "each_source_by_its_weight"),
    ),
    Break(
        "optimizer.step() removed",
        "jtm/train/pretrain.py",
        "    optimizer.step()\n",
        "    pass\n",
        ("tests/test_pretrain.py", "-k", "moves_every_weight"),
    ),
    Break(
        "the prefetch pool fixed at one thread",
        "jtm/loading/prefetch.py",
        "ThreadPoolExecutor(threads,",
        "ThreadPoolExecutor(1,",
        ("tests/test_sharded.py", "-k", "prefetch"),
    ),
    Break(
        "the row offset ignored (a DDP rank's pool)",
        "jtm/train/infonce.py",
        "rows = torch.arange(b, device=frames.device).unsqueeze(1) + row_offset",
        "rows = torch.arange(b, device=frames.device).unsqueeze(1)",
        ("tests/test_models.py", "-k", "row_offset"),
    ),
    Break(
        "a multi-label probe scored with a softmax",
        "jtm/downstream/probe.py",
        "torch.sigmoid(logits) if multilabel else",
        "torch.sigmoid(logits) if False else",
        ("tests/test_eval_parts.py", "-k", "probe"),
    ),
)


def _copy_tree(dest: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _stop(message: str) -> None:
    """A row that cannot be checked (its text is gone, or its tests did not run): exit 2."""
    print(message, file=sys.stderr)
    sys.exit(2)


def run(item: Break, copy: Path) -> bool:
    """Apply `item` in `copy`, run its tests there, restore the file; True if a test failed."""
    target = copy / item.path
    original = target.read_text()
    if original.count(item.old) != 1:
        _stop(f"{item.path}: {item.old!r} occurs {original.count(item.old)} times, not once: update BREAKS")
    target.write_text(original.replace(item.old, item.new))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *item.tests],
            cwd=copy, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(copy)},
        )  # fmt: skip
    finally:
        target.write_text(original)
    if result.returncode not in (0, 1):
        why = "no test ran, or pytest could not start"
        _stop(f"{item.what}: pytest exited {result.returncode} ({why})\n{result.stdout[-3000:]}")
    return result.returncode == 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="jtm-breaks-") as folder:
        copy = Path(folder)
        _copy_tree(copy)
        unnoticed = []
        for item in BREAKS:
            caught = run(item, copy)
            print(
                f"{'caught' if caught else 'UNNOTICED':>9}  {item.what}  ({' '.join(item.tests)})", flush=True
            )
            if not caught:
                unnoticed.append(item.what)
    if unnoticed:
        print(f"{len(unnoticed)} of {len(BREAKS)} breaks pass every test they were run with")
        return 1
    print(f"all {len(BREAKS)} breaks fail a test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
