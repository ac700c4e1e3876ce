"""MusicNet's 21 ensembles and how to hand a score's parts to an ensemble's instruments.

An ensemble is a list of General MIDI programs (1-based, as in MusicNet's labels). A keyboard
(piano, harpsichord) can play any number of a score's parts; every other instrument plays one
part, transposed by octaves into its real range. So a 4-part chorale fits a String Quartet, a
Piano Trio (violin, cello, piano taking two parts) or Solo Piano, but not a Wind Quintet.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np

PIANO, HARPSICHORD = 1, 7
VIOLIN, VIOLA, CELLO, CONTRABASS = 41, 42, 43, 44
HORN, OBOE, BASSOON, CLARINET, FLUTE = 61, 69, 71, 72, 74
KEYBOARDS = (PIANO, HARPSICHORD)

# Playable range, MIDI pitch (sounding), inclusive.
RANGES = {
    PIANO: (21, 108),
    HARPSICHORD: (29, 89),
    VIOLIN: (55, 100),
    VIOLA: (48, 88),
    CELLO: (36, 76),
    CONTRABASS: (28, 67),
    HORN: (34, 77),
    OBOE: (58, 91),
    BASSOON: (34, 75),
    CLARINET: (50, 94),
    FLUTE: (60, 96),
}

# MusicNet's ensemble names and instrumentations.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "Solo Piano": (PIANO,),
    "String Quartet": (VIOLIN, VIOLIN, VIOLA, CELLO),
    "Accompanied Violin": (VIOLIN, PIANO),
    "Piano Quartet": (VIOLIN, VIOLA, CELLO, PIANO),
    "Accompanied Cello": (CELLO, PIANO),
    "String Sextet": (VIOLIN, VIOLIN, VIOLA, VIOLA, CELLO, CELLO),
    "Piano Trio": (VIOLIN, CELLO, PIANO),
    "Piano Quintet": (VIOLIN, VIOLIN, VIOLA, CELLO, PIANO),
    "Wind Quintet": (FLUTE, OBOE, CLARINET, HORN, BASSOON),
    "Horn Piano Trio": (VIOLIN, HORN, PIANO),
    "Wind Octet": (OBOE, OBOE, CLARINET, CLARINET, HORN, HORN, BASSOON, BASSOON),
    "Clarinet-Cello-Piano Trio": (CLARINET, CELLO, PIANO),
    "Pairs Clarinet-Horn-Bassoon": (CLARINET, CLARINET, HORN, HORN, BASSOON, BASSOON),
    "Clarinet Quintet": (CLARINET, VIOLIN, VIOLIN, VIOLA, CELLO),
    "Solo Cello": (CELLO,),
    "Accompanied Clarinet": (CLARINET, PIANO),
    "Solo Violin": (VIOLIN,),
    "Violin and Harpsichord": (VIOLIN, HARPSICHORD),
    "Viola Quintet": (VIOLIN, VIOLIN, VIOLA, VIOLA, CELLO),
    "Solo Flute": (FLUTE,),
    "Wind and Strings Octet": (CLARINET, HORN, BASSOON, VIOLIN, VIOLIN, VIOLA, CELLO, CONTRABASS),
}

# Part-name keywords for `ensemble_choice: original` (first match wins; checked in order).
_NAME_PROGRAMS = (
    (r"contrabass|double bass|kontrabass", CONTRABASS),
    (r"violoncell|cello", CELLO),
    (r"viola|bratsche", VIOLA),
    (r"violin|violino|fiddle", VIOLIN),
    (r"harpsichord|cembalo|clavecin", HARPSICHORD),
    (r"piano|pianoforte|klavier|keyboard", PIANO),
    (r"horn|corno", HORN),
    (r"oboe", OBOE),
    (r"bassoon|fagott", BASSOON),
    (r"clarinet|klarinette", CLARINET),
    (r"flute|flöte|flauto", FLUTE),
)


def fits(ensemble: str, n_parts: int) -> bool:
    """Whether the ensemble can play `n_parts` parts (a keyboard absorbs any surplus)."""
    programs = ENSEMBLES[ensemble]
    solo = [p for p in programs if p not in KEYBOARDS]
    return len(solo) == n_parts if len(solo) == len(programs) else len(solo) < n_parts


def fitting_ensembles(n_parts: int) -> list[str]:
    return [name for name in ENSEMBLES if fits(name, n_parts)]


def _out_of_range(pitches: np.ndarray, program: int) -> int:
    low, high = RANGES[program]
    return int(np.sum(np.maximum(low - pitches, 0) + np.maximum(pitches - high, 0)))


def _target_ranks(solo: list[int], n_parts: int) -> list[float]:
    """Where each solo instrument should sit among the parts, 0 = highest part.

    Several solo instruments spread over the texture, highest instrument on the top part and
    lowest on the bass, as chamber music does; a single one takes the top part, or the bass
    for a low instrument (cello, bassoon, ...), with the keyboard filling in between.
    """
    centres = [sum(RANGES[p]) / 2 for p in solo]
    if len(solo) == 1:
        return [0.0 if centres[0] >= 60 else float(n_parts - 1)]
    by_height = sorted(range(len(solo)), key=lambda i: -centres[i])
    spread = np.linspace(0, n_parts - 1, len(solo))
    ranks = [0.0] * len(solo)
    for position, i in enumerate(by_height):
        ranks[i] = float(spread[position])
    return ranks


def assign_parts(ensemble: str, part_pitches: list[np.ndarray]) -> list[int]:
    """Program for each part: solo instruments take the parts they fit, keyboards the rest.

    `part_pitches[i]` holds part i's MIDI pitches. Cost: notes out of range (dominant), then
    distance from each instrument's natural place in the texture (see `_target_ranks`).
    """
    programs = ENSEMBLES[ensemble]
    if not fits(ensemble, len(part_pitches)):
        raise ValueError(f"{ensemble} cannot play {len(part_pitches)} parts")
    solo = [p for p in programs if p not in KEYBOARDS]
    keyboard = next((p for p in programs if p in KEYBOARDS), None)
    means = [float(np.mean(p)) if len(p) else 60.0 for p in part_pitches]
    height_rank = {part: rank for rank, part in enumerate(sorted(range(len(means)), key=lambda i: -means[i]))}
    targets = _target_ranks(solo, len(part_pitches))
    best, best_cost = None, float("inf")
    for chosen in itertools.permutations(range(len(part_pitches)), len(solo)):
        cost = 0.0
        for part, program, target in zip(chosen, solo, targets, strict=True):
            shifted = fit_to_range(part_pitches[part], program)
            moved = np.abs(shifted - part_pitches[part]).sum() if len(shifted) else 0
            cost += 10 * moved / 12 + abs(height_rank[part] - target)
        if cost < best_cost:
            best, best_cost = chosen, cost
    assignment = [keyboard] * len(part_pitches)
    for part, program in zip(best, solo, strict=True):
        assignment[part] = program
    return assignment


def fit_to_range(pitches: np.ndarray, program: int) -> np.ndarray:
    """Transpose a part by the octave that leaves fewest notes out of range, then fold the rest.

    Keyboards play the part as written (only folded); one shift per part keeps the melody intact.
    """
    low, high = RANGES[program]
    pitches = np.asarray(pitches, dtype=np.int64)
    if program not in KEYBOARDS and len(pitches):
        shifts = [12 * k for k in range(-3, 4)]
        shift = min(shifts, key=lambda s: (_out_of_range(pitches + s, program), abs(s)))
        pitches = pitches + shift
    while np.any(pitches < low):
        pitches = np.where(pitches < low, pitches + 12, pitches)
    while np.any(pitches > high):
        pitches = np.where(pitches > high, pitches - 12, pitches)
    return pitches


def program_from_name(name: str) -> int | None:
    """A MusicNet program for a part name such as "Violin I" or "Violoncello", else None."""
    for pattern, program in _NAME_PROGRAMS:
        if re.search(pattern, name or "", flags=re.IGNORECASE):
            return program
    return None


def ensemble_of(programs: list[int]) -> str:
    """MusicNet's name for this instrumentation (keyboard parts counted once), or a plain list."""
    distinct = Counter(p for p in programs if p not in KEYBOARDS)
    keyboards = {p for p in programs if p in KEYBOARDS}
    for name, members in ENSEMBLES.items():
        if (
            Counter(p for p in members if p not in KEYBOARDS) == distinct
            and {p for p in members if p in KEYBOARDS} == keyboards
        ):
            return name
    return "Other"
