"""What turns a dry synthesised performance into a "recording": the player's instrument, the
room, the microphone, the level and the noise floor, each drawn from seeded params.

- A `Timbre` per part of a performance: a static detune, a vibrato (applied as pitch bend
  by the synthesiser, jtm/demo/synth.py) and a colour (a peaking filter and a high shelf on the
  part's own signal). Labels are unchanged: detune stays within a quarter tone.
- A `Room` per recording condition: a late reverberation tail of exponentially decaying,
  band-limited noise (the statistical model of a diffuse field: Schroeder 1962, Jot 1991), with
  a reverberation time per octave band (higher bands die sooner), a pre-delay and a
  direct-to-reverberant balance; then the microphone's colouring EQ. A filtered-noise tail is
  chosen over an image-source model (pyroomacoustics) because it needs no geometry to invent,
  no compiled dependency, and its two perceptual figures (RT60, DRR) are the params.
- Per recording: a level (dB below full scale) and a pink noise floor (SNR in dB).

Every draw comes from `numpy.random.default_rng([seed, salt, ...])`: a function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

BANDS_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # octave bands of the reverb tail
BEND_PER_CENT = 8192 / 200  # MIDI pitch bend units per cent (default range: +-2 semitones)


@dataclass(frozen=True)
class Timbre:
    """How one part's instrument differs from the SoundFont's sample."""

    detune_cents: float
    vibrato_cents: float  # peak deviation
    vibrato_hz: float
    colour_hz: float  # centre of the peaking filter
    colour_db: float
    colour_q: float
    shelf_db: float  # high shelf at 3 kHz (brightness)


@dataclass(frozen=True)
class Room:
    """A room and its microphone: one recording condition."""

    name: str
    rt60_s: tuple[float, ...]  # per band of BANDS_HZ
    predelay_ms: float
    wet_db: float  # reverberant energy relative to the direct sound
    eq: tuple[tuple[float, float, float], ...]  # microphone: (centre Hz, gain dB, Q) peaking filters


def draw_timbre(rng: np.random.Generator) -> Timbre:
    """One part's timbre: detune N(0, 8) cents (within +-25), vibrato 0-20 cents at 4.5-6.5 Hz,
    a peaking filter of +-9 dB at 300-5000 Hz, a high shelf of -9 to +4 dB."""
    return Timbre(
        detune_cents=float(np.clip(rng.normal(0, 8), -25, 25)),
        vibrato_cents=float(rng.uniform(0, 20)),
        vibrato_hz=float(rng.uniform(4.5, 6.5)),
        colour_hz=float(np.exp(rng.uniform(np.log(300), np.log(5000)))),
        colour_db=float(rng.uniform(-9, 9)),
        colour_q=float(rng.uniform(0.7, 2.0)),
        shelf_db=float(rng.uniform(-9, 4)),
    )


def draw_room(rng: np.random.Generator, name: str) -> Room:
    """A room: RT60 at 500 Hz log-uniform in 0.3-2.0 s, falling by a factor 0.5-0.9 per octave
    above 1 kHz; pre-delay 5-30 ms; reverberant energy -12 to +3 dB against the direct sound;
    a microphone of three peaking filters (+-8 dB, 100-10 000 Hz, Q 0.7-3)."""
    rt60 = float(np.exp(rng.uniform(np.log(0.3), np.log(2.0))))
    fall = float(rng.uniform(0.5, 0.9))
    per_band = tuple(rt60 * fall ** max(0.0, np.log2(band / 1000.0)) for band in BANDS_HZ)
    eq = tuple(
        (
            float(np.exp(rng.uniform(np.log(100), np.log(10_000)))),
            float(rng.uniform(-8, 8)),
            float(rng.uniform(0.7, 3.0)),
        )
        for _ in range(3)
    )
    return Room(name, per_band, float(rng.uniform(5, 30)), float(rng.uniform(-12, 3)), eq)


def room(seed: int, index: int) -> Room:
    """Room `index` ("room<index>") of the corpus: a function of (seed, index) alone."""
    return draw_room(np.random.default_rng([seed, 20, index]), f"room{index}")


def rooms(seed: int, n_rooms: int) -> list[Room]:
    """The corpus's rooms, "room0" ... "room<n_rooms - 1>"."""
    return [room(seed, i) for i in range(n_rooms)]


def held_out(seed: int, n_rooms: int, n_held_out: int) -> list[str]:
    """The rooms no training or validation recording uses: a seeded choice of `n_held_out`."""
    order = np.random.default_rng([seed, 21]).permutation(n_rooms)
    return [f"room{i}" for i in sorted(order[:n_held_out])]


def _peaking(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """(1, 6) second-order section of an RBJ peaking filter."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * min(freq, 0.45 * sr) / sr
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return np.array([b + den]) / den[0]


def _high_shelf(freq: float, gain_db: float, sr: int) -> np.ndarray:
    """(1, 6) second-order section of an RBJ high shelf (slope 1)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / np.sqrt(2)
    cos, root = np.cos(w0), 2 * np.sqrt(a) * alpha
    b = [
        a * ((a + 1) + (a - 1) * cos + root),
        -2 * a * ((a - 1) + (a + 1) * cos),
        a * ((a + 1) + (a - 1) * cos - root),
    ]
    den = [(a + 1) - (a - 1) * cos + root, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - root]
    return np.array([b + den]) / den[0]


def colour(audio: np.ndarray, timbre: Timbre, sr: int) -> np.ndarray:
    """A part's signal, shape (n,), through its timbre's peaking filter and high shelf."""
    sos = np.concatenate(
        [
            _peaking(timbre.colour_hz, timbre.colour_db, timbre.colour_q, sr),
            _high_shelf(3000.0, timbre.shelf_db, sr),
        ]
    )
    return signal.sosfilt(sos, audio).astype(np.float32)


def bend(timbre: Timbre, seconds: np.ndarray) -> np.ndarray:
    """MIDI pitch bend values (0-16383) of the part's detune plus vibrato at `seconds`."""
    cents = timbre.detune_cents + timbre.vibrato_cents * np.sin(2 * np.pi * timbre.vibrato_hz * seconds)
    return np.clip(np.round(8192 + cents * BEND_PER_CENT), 0, 16383).astype(np.int64)


def impulse_response(room: Room, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(taps,) float32: a unit direct path, then after the pre-delay the late tail: per octave
    band, band-passed Gaussian noise decaying by 60 dB in that band's RT60, the bands summed
    and scaled so the tail's energy is `wet_db` against the direct path's."""
    length = int(1.2 * max(room.rt60_s) * sr)
    t = np.arange(length) / sr
    tail = np.zeros(length)
    for band, rt60 in zip(BANDS_HZ, room.rt60_s, strict=True):
        low, high = band / np.sqrt(2), min(band * np.sqrt(2), 0.45 * sr)
        sos = signal.butter(2, [low, high], btype="bandpass", fs=sr, output="sos")
        tail += signal.sosfilt(sos, rng.standard_normal(length)) * 10 ** (-3 * t / rt60)
    tail *= np.sqrt(10 ** (room.wet_db / 10) / max(float(np.sum(tail**2)), 1e-12))
    delay = int(room.predelay_ms / 1000 * sr)
    response = np.zeros(delay + length, dtype=np.float64)
    response[0] = 1.0
    response[delay:] += tail
    return response.astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) noise with a 1/f power spectrum, unit RMS (white noise shaped in the frequency domain)."""
    from scipy import fft

    length = fft.next_fast_len(n, real=True)  # an FFT of a prime length is 20x slower
    spectrum = fft.rfft(rng.standard_normal(length))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0
    noise = fft.irfft(spectrum, length)[:n]
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def record(
    dry: np.ndarray, room: Room, level_db: float, snr_db: float, sr: int, rng: np.random.Generator
) -> np.ndarray:
    """A dry mix, shape (n,), as recorded in `room`: reverberated (cut to the dry length),
    coloured by the microphone, peak-normalised to `level_db` dBFS, plus pink noise `snr_db`
    below the signal's RMS. Shape (n,), float32."""
    wet = signal.oaconvolve(dry, impulse_response(room, sr, rng))[: len(dry)]
    sos = np.concatenate([_peaking(f, g, q, sr) for f, g, q in room.eq])
    wet = signal.sosfilt(sos, wet)
    peak = float(np.max(np.abs(wet)))
    if peak > 0:
        wet *= 10 ** (level_db / 20) / peak
    rms = float(np.sqrt(np.mean(wet**2)))
    wet += pink_noise(len(wet), rng) * rms * 10 ** (-snr_db / 20)
    return wet.astype(np.float32)
