"""make bench-scale's measurements: anonymous memory of a process tree (not file-backed pages),
and the fits it projects with. Real child processes, polled until they report ready."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_scale import fit, projections, tree_memory

pytestmark = pytest.mark.check
MB = 1024  # kB


def child(code: str, tmp_path) -> subprocess.Popen:
    """A Python process that runs `code`, prints "ready" and waits for stdin to close; and a
    grandchild doing the same, so the tree has depth."""
    script = tmp_path / "hold.py"
    script.write_text(f"import sys\n{code}\nprint('ready', flush=True)\nsys.stdin.read()\n")
    return subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, {str(script)!r}])"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def held(code: str, tmp_path) -> tuple[int, int]:
    process = child(code, tmp_path)
    try:
        assert process.stdout.readline().strip() == "ready"
        return tree_memory(process.pid)
    finally:
        process.stdin.close()
        process.wait()


def test_anonymous_memory_of_a_grandchild_is_counted(tmp_path):
    anon, rss = held("held = bytearray(300 * 2**20)\nheld[::4096] = b'x' * len(held[::4096])", tmp_path)
    assert anon >= 290 * MB and rss >= anon


def test_pages_of_a_memory_mapped_file_are_resident_but_not_anonymous(tmp_path):
    data = tmp_path / "big.bin"
    data.write_bytes(b"\1" * (300 * 2**20))
    code = f"import numpy as np\nm = np.memmap({str(data)!r}, mode='r')\ntotal = int(m.sum(dtype=np.int64))"
    anon, rss = held(code, tmp_path)
    assert rss >= 290 * MB and anon < 100 * MB


def test_fits_find_linear_and_flat_stages_and_project_from_them():
    hours = np.array([1.0, 4.0, 16.0])
    intercept, slope, exponent = fit(hours, 5 + 10 * hours)
    assert intercept == pytest.approx(5) and slope == pytest.approx(10) and 0.8 < exponent < 1.0
    table = pd.DataFrame(
        {"job": ["embed@0"] * 3 + ["index"] * 3, "scale": [1, 4, 16] * 2, "hours": list(hours) * 2,
         "seconds": list(10 * hours) + [5.0] * 3, "anon_mb": [500.0] * 3 + [300.0, 310.0, 305.0],
         "out_mb": list(100 * hours) + [1.0] * 3}
    )  # fmt: skip
    projected = projections(table).set_index("stage")
    assert projected.loc["embed", "seconds_34h"] == pytest.approx(3 * 340)  # three runs, one after another
    assert projected.loc["embed", "seconds_exp"] == pytest.approx(1)
    assert projected.loc["index", "seconds_34h"] == pytest.approx(5)
    assert projected.loc["index", "anon_mb_34h"] >= 310  # never below what was measured
