"""Stage ingest on a synthetic library, and what a grown library costs under DVC.

1. A library of `--files` files (WAV, FLAC, MP3, Ogg Opus, M4A; 44.1/48 kHz stereo, `--seconds`
   each, two folder levels, cover art beside them) is ingested from scratch with `--workers`
   processes: × realtime and the peak memory of the stage's processes.
2. Then the library grows by one file that sorts first, loses one, and has one replaced; each
   rerun's time against the fresh ingest's (what a rerun of everything, the old behaviour when a
   new file sorted first, would cost again).
3. `jtm survey`'s digest (what `dvc repro` runs every time) on trees of `--survey` empty files
   (1 000 and 100 000 by default, 100 a folder, a cover per folder), against the floor: a bare
   `os.walk` and one `os.stat` per file of the same tree.

    python benchmarks/bench_ingest.py [--files 120] [--seconds 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_decode import write  # noqa: E402
from jtm.ingest.decode import Target  # noqa: E402
from jtm.ingest.discover import Corpus  # noqa: E402
from jtm.ingest.listing import digest_corpus  # noqa: E402
from jtm.ingest.stage import ingest  # noqa: E402

KINDS = ("wav", "flac", "mp3", "webm", "m4a")


def library(root: Path, files: int, seconds: float) -> None:
    """`files` files over folders of 10 (artist/album, a cover in each), each its own length (so
    its own bytes: no duplicates)."""
    for i in range(files):
        folder = root / "lib" / f"artist{i // 30:02d}" / f"album{i // 10:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cover.jpg").write_bytes(b"\xff\xd8" + bytes(1000))
        write(folder / f"{i:04d} track.{KINDS[i % len(KINDS)]}", seconds + 0.01 * i)


def timed(run) -> tuple[float, dict]:
    began = time.perf_counter()
    result = run()
    return time.perf_counter() - began, result


def bench_ingest(root: Path, files: int, seconds: float, workers: int) -> None:
    library(root, files, seconds)
    corpus = Corpus("lib", (str(root / "lib"),), 1.0)
    target = Target(16_000, "VHQ", "float32", 10.0, 20_480, 10_240)

    def run():
        return ingest([corpus], target, 1024, 1.0, root / "out", root / "work", workers)

    fresh, metrics = timed(run)
    hours = metrics["hours"]
    print(f"ingest from scratch: {metrics['files']} files ({metrics['ingested']} ingested), "
          f"{hours:.2f} h of audio in {fresh:.1f} s: "
          f"{hours * 3600 / fresh:.0f}x realtime; peak memory of a worker "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")  # fmt: skip
    write(root / "lib" / "artist00" / "album000" / "0000 added first.flac", seconds * 1.1)
    steps = [("one file added, sorting first", None)]
    steps.append(("one file removed", lambda: next((root / "lib").rglob("0007 track.*")).unlink()))
    steps.append(("one file replaced", lambda: write(next((root / "lib").rglob("0011 track.*")), seconds)))
    for name, change in steps:
        if change:
            change()
        took, metrics = timed(run)
        print(f"  rerun, {name}: {took:.1f} s = {took / fresh:.3f} of the fresh ingest "
              f"({metrics['decoded_files']} decoded, {metrics['reused_files']} reused, "
              f"{metrics['repacked_files']} copied)")  # fmt: skip
    took, metrics = timed(run)
    print(f"  rerun, nothing changed: {took:.1f} s = {took / fresh:.3f} of the fresh ingest")


def tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"a{i // 10_000:02d}" / f"b{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
            (folder / "cover.jpg").touch()
        (folder / f"{i:06d} track.flac").touch()


def _walk_and_stat(folder: Path) -> int:
    """The floor of any listing: every folder walked, every file stat-ed."""
    return sum(os.stat(os.path.join(d, f)).st_size for d, _, fs in os.walk(folder) for f in fs)


def bench_survey(root: Path, sizes: list[int]) -> None:
    for files in sizes:
        folder = root / f"tree{files}"
        tree(folder, files)

        corpus = Corpus("lib", (str(folder),), 1.0)
        base = min(timed(lambda f=folder: _walk_and_stat(f))[0] for _ in range(3))
        took = min(timed(lambda c=corpus: digest_corpus(c))[0] for _ in range(3))
        print(f"survey of {files} files: {took:.2f} s ({took / files * 1e6:.0f} µs a file), "
              f"{took / base:.1f}x a bare walk and stat ({base:.2f} s)")  # fmt: skip
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--survey", type=int, nargs="*", default=[1_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.files:
            bench_ingest(Path(tmp), args.files, args.seconds, args.workers)
        bench_survey(Path(tmp), args.survey)


if __name__ == "__main__":
    main()
