"""Chromaprint fingerprints of 16 kHz audio, fed block by block (memory stays bounded).

Why Chromaprint (via pyacoustid's binding to libchromaprint): it is the maintained fingerprint
behind AcoustID, built to survive lossy re-encoding, resampling and level changes, which is
exactly what a user's copy of a test recording has been through. Its fingerprint is about 8
32-bit items per second, each summarising the chroma of a short frame band; two renditions of
the same recording agree in most bits at the right alignment, unrelated audio in about half.
"""

from __future__ import annotations

import numpy as np

from jtm.corpus import pcm
from jtm.errors import MissingLibraryError

ITEMS_PER_SECOND = 11025 / 1365  # Chromaprint's frame rate: 4096-sample frames, hop 1365, at 11.025 kHz


class Fingerprint:
    """Feed mono float samples in [-1, 1] at `rate` Hz with `add`; `finish` -> (items,) uint32."""

    def __init__(self, rate: int):
        try:
            import chromaprint  # pyacoustid's binding to the C library
        except (ImportError, OSError) as err:
            raise MissingLibraryError(
                f"fingerprints need libchromaprint ({err}): `apt-get install libchromaprint1` "
                "(Debian/Ubuntu), `brew install chromaprint` or `conda install -c conda-forge chromaprint`"
            ) from err

        self._chromaprint = chromaprint
        self._printer = chromaprint.Fingerprinter()
        self._printer.start(rate, 1)

    def add(self, samples: np.ndarray) -> None:
        self._printer.feed(pcm.to_int16(np.asarray(samples, dtype=np.float32)).astype("<i2").tobytes())

    def finish(self) -> np.ndarray:
        raw, _ = self._chromaprint.decode_fingerprint(self._printer.finish())
        return np.asarray(raw, dtype=np.int64).astype(np.uint32)


def of_array(samples: np.ndarray, rate: int, block: int = 1 << 20) -> np.ndarray:
    """The fingerprint of a (memory-mapped) 1-D array, read `block` samples at a time; int16
    arrays are scaled as stage `resample` wrote them."""
    printer = Fingerprint(rate)
    for begin in range(0, len(samples), block):
        printer.add(pcm.to_float32(samples[begin : begin + block]))
    return printer.finish()
