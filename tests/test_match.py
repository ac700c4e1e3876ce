"""The leakage guard's search (jtm/leakage/match.py) on synthetic fingerprints with known answers:
fast, so the mutation tester (make mutate) can run it for every mutant."""

import numpy as np
import pytest

from jtm.leakage.match import References, equal_bits

pytestmark = pytest.mark.check  # the contributor tier: make check


def _prints(seed: int, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {key: rng.integers(0, 2**32, size, dtype=np.uint32) for key, size in sizes.items()}


def _flip(items: np.ndarray, share: float, seed: int) -> np.ndarray:
    """`items` with `share` of their bits flipped at random."""
    bits = np.unpackbits(items.view(np.uint8))
    flips = np.random.default_rng(seed).random(len(bits)) < share
    return np.packbits(bits ^ flips).view(np.uint32)


def test_equal_bits_counts_bits_not_items():
    a = _prints(0, {"a": 50})["a"]
    assert equal_bits(a, a.copy()) == 1.0
    assert equal_bits(a, ~a) == 0.0
    one = a.copy()
    one[7] ^= np.uint32(1 << 13)
    assert equal_bits(a, one) == 1 - 1 / (32 * 50)


def test_an_excerpt_is_found_in_its_reference_at_its_offset():
    references = _prints(1, {"first": 300, "second": 400, "third": 250})
    query = references["second"][120:200]
    found = References(references).best(query, min_overlap=40)
    assert (found.reference, found.offset, found.overlap, found.similarity) == ("second", 120, 80, 1.0)


def test_a_query_starting_before_its_reference_aligns_at_a_negative_offset():
    references = _prints(2, {"a": 300, "b": 300})
    lead_in = _prints(3, {"x": 30})["x"]
    query = np.concatenate([lead_in, references["b"][:100]])
    found = References(references).best(query, min_overlap=40)
    # compared where both exist: the reference's first 100 items against the query's last 100
    assert (found.reference, found.offset, found.overlap, found.similarity) == ("b", -30, 100, 1.0)


def test_a_degraded_copy_scores_its_share_of_equal_bits():
    references = _prints(4, {"a": 500, "b": 500})
    query = references["a"][100:300].copy()
    degraded = _flip(query, 0.1, seed=5)
    degraded[::4] = query[::4]  # some items intact: they vote for the alignment
    found = References(references).best(degraded, min_overlap=40)
    assert (found.reference, found.offset) == ("a", 100)
    assert found.similarity == pytest.approx(equal_bits(degraded, query))
    assert 0.9 < found.similarity < 0.95


def test_an_overlap_shorter_than_the_minimum_is_no_match():
    references = _prints(6, {"a": 300})
    query = np.concatenate([references["a"][250:], _prints(9, {"tail": 30})["tail"]])  # runs past the end
    found = References(references).best(query, min_overlap=50)
    assert (found.offset, found.overlap, found.similarity) == (250, 50, 1.0)  # only where both exist
    none = References(references).best(query, min_overlap=51)
    assert (none.reference, none.similarity, none.offset, none.overlap) == (None, 0.0, 0, 0)


def test_fingerprints_as_lists_of_ints_are_read_as_uint32():
    """Parquet hands fingerprints back as lists; their bits are those of 32-bit items."""
    references = _prints(10, {"a": 300})
    query = references["a"][40:140]
    as_lists = References({"a": references["a"].tolist()}).best(query.tolist(), min_overlap=40)
    assert as_lists == References(references).best(query, min_overlap=40)
    degraded = _flip(query, 0.1, seed=11)
    degraded[::4] = query[::4]
    found = References({"a": references["a"].tolist()}).best(degraded.tolist(), min_overlap=40)
    assert found.similarity == pytest.approx(equal_bits(degraded, query))


def test_unrelated_fingerprints_find_nothing():
    found = References(_prints(7, {"a": 300, "b": 300})).best(_prints(8, {"q": 200})["q"], min_overlap=1)
    assert found.reference is None and found.similarity == 0.0
