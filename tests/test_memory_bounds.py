"""Memory that does not grow with the corpus, at small scale: what the probes read from a feature
set and what scoring counts are held a block at a time, so their peak allocation (numpy's, as
tracemalloc sees it) beyond their result stays the same at 1× and 4× the windows. Counts of
bytes, not timings (benchmarks/bench_scale.py measures whole stages)."""

import tracemalloc
from functools import partial

import numpy as np
import pandas as pd
import pytest

from jtm.downstream import bootstrap
from jtm.downstream.inputs import probe_inputs

pytestmark = pytest.mark.check


def peak_beyond_result(call) -> tuple[int, object]:
    """(peak bytes numpy allocated during `call` beyond what it returned, its result)."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - getattr(result, "nbytes", 0), result


def feature_set(folder, windows: int, frames: int = 128, dim: int = 32):
    (folder / "logmel").mkdir(parents=True)
    pd.DataFrame({"row": np.arange(windows), "frame_row": np.arange(windows)}).to_parquet(
        folder / "keys.parquet"
    )
    rng = np.random.default_rng(0)
    stored = np.lib.format.open_memmap(
        folder / "logmel" / "frames.npy", "w+", np.float16, (windows, frames, dim)
    )
    stored[:] = rng.normal(size=stored.shape)
    stored.flush()
    np.save(folder / "logmel" / "pooled.npy", rng.normal(size=(windows, dim)).astype(np.float32))
    return stored


@pytest.mark.parametrize("stride", [1, 8])
def test_a_probe_reads_only_the_frames_it_returns_however_large_the_feature_set(tmp_path, stride):
    overhead = {}
    for scale in (1, 4):
        folder = tmp_path / f"x{scale}"
        stored = feature_set(folder, 600 * scale)
        rows = np.arange(0, 600 * scale, 2)  # every other window, as transcription's non-overlapping ones
        read = partial(probe_inputs, {}, folder, "logmel", True, rows, stride)
        overhead[scale], x = peak_beyond_result(read)
        np.testing.assert_array_equal(x, stored[rows][:, ::stride].astype(np.float32).reshape(-1, 32))
    # one block of windows (256 x 128 x 32 float16: 2 MB) at most, at either scale; the old
    # read took every frame of every row first (4x: 19 MB)
    assert overhead[4] <= overhead[1] * 1.2 + 65_536
    assert overhead[4] < 256 * 128 * 32 * 2 * 1.5


def test_scoring_counts_bins_a_block_at_a_time():
    rng = np.random.default_rng(1)
    overhead, stats = {}, {}
    for scale in (1, 4):
        n = 200 * scale
        truth, probs = rng.random((n, 128, 16)) < 0.1, rng.random((n, 128, 16)).astype(np.float32)
        units = rng.integers(0, 5, n)
        edges = bootstrap.ap_edges(truth, probs)

        count = partial(bootstrap.ap_stats, truth, probs, units, 5, edges)
        overhead[scale], stats[scale] = peak_beyond_result(partial(count, block=1 << 14))
        np.testing.assert_array_equal(stats[scale], count(block=1 << 30))  # the same counts in one block
    assert overhead[4] <= overhead[1] * 1.2 + 65_536
