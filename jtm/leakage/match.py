"""How alike a fingerprint is to any of a set of references, at the best alignment.

Candidate alignments come from votes: every item of the query equal to an item of a reference
votes for that (reference, offset); one inverted index over all references makes a file's
search one pass over its items. The most-voted candidates are then scored by the share of equal
bits over their overlap (1 - bit error rate): about 0.5 for unrelated audio, above 0.95 on the
demo for a test recording re-encoded to Ogg Vorbis at 22.05 kHz.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Alignment:
    reference: object  # the matched reference's key (None: no item agrees anywhere)
    similarity: float  # share of equal bits over the overlap, in [0, 1]
    offset: int  # reference item aligned with the query's first item
    overlap: int  # items compared


def equal_bits(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal bits of two equally long uint32 fingerprints."""
    differing = np.unpackbits(np.bitwise_xor(a, b).view(np.uint8)).sum()
    return 1.0 - float(differing) / (32 * len(a))


class References:
    """Fingerprints to search (key -> (items,) uint32), indexed by item value."""

    def __init__(self, fingerprints: dict):
        self.fingerprints = {k: np.asarray(v, dtype=np.uint32) for k, v in fingerprints.items()}
        self.where: dict[int, list[tuple[object, int]]] = {}
        for key, items in self.fingerprints.items():
            for position, item in enumerate(items.tolist()):
                self.where.setdefault(item, []).append((key, position))

    def best(self, query: np.ndarray, min_overlap: int, candidates: int = 8) -> Alignment:
        """The best of the `candidates` most-voted (reference, offset) pairs that overlap the
        query by at least `min_overlap` items."""
        query = np.asarray(query, dtype=np.uint32)
        votes = Counter(
            (key, position - q)
            for q, item in enumerate(query.tolist())
            for key, position in self.where.get(item, ())
        )
        best = Alignment(None, 0.0, 0, 0)
        for (key, offset), _ in votes.most_common(candidates):
            reference = self.fingerprints[key]
            q0, r0 = max(0, -offset), max(0, offset)
            overlap = min(len(query) - q0, len(reference) - r0)
            if overlap >= min_overlap:
                score = equal_bits(query[q0 : q0 + overlap], reference[r0 : r0 + overlap])
                if score > best.similarity:
                    best = Alignment(key, score, offset, overlap)
        return best
