"""Read notes out of real scores (music21's bundled corpus, or any MusicXML/MIDI/kern file).

Parsing is the slow step (about 1-2 s a file), so the `demo_scores` stage does it once and
stores plain tables; rendering then never touches music21. Excerpts are whole measures from
the start of the movement, long enough to reach `excerpt_seconds` at the score's tempo.

Tables written by `extract_scores`:
- scores.parquet: score, spec, composer, composition, movement, catalog_name, n_parts,
  part_names (";"-joined), seconds (excerpt length at nominal tempo)
- notes.parquet: score, part, pitch, onset_s, duration_s (nominal tempo), onset_beat,
  duration_beat (quarter notes), note_value ("Quarter", "Dotted Eighth", ...)
"""

from __future__ import annotations

import bisect
import re
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.atomic import atomic_dir
from jtm.config import DemoConfig
from jtm.errors import DataError
from jtm.progress import progress

NOTE_COLUMNS = ("score", "part", "pitch", "onset_s", "duration_s", "onset_beat", "duration_beat", "note_value")
SUPPORTED_SUFFIXES = (".mxl", ".xml", ".musicxml", ".mid", ".midi", ".krn", ".abc")


def expand_specs(specs: list[str]) -> list[str]:
    """Folders become the score files inside them (sorted); other specs pass through."""
    expanded = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
            if not files:
                raise DataError(path, f"no score files ({', '.join(SUPPORTED_SUFFIXES)}) in folder")
            expanded.extend(str(p) for p in files)
        else:
            expanded.append(spec)
    return expanded


def _parse(spec: str):
    from music21 import converter, corpus  # slow import, only where parsing happens

    try:
        with warnings.catch_warnings():  # music21 warns about every overfull measure it repairs
            warnings.simplefilter("ignore")
            return converter.parse(spec) if Path(spec).exists() else corpus.parse(spec)
    except Exception as err:  # music21 raises many unrelated types for unreadable input
        raise DataError(spec, f"cannot parse score: {err}") from err


def catalog_name(spec: str) -> str:
    """A work identifier from the score's path: the folder for multi-movement works
    (beethoven/opus18no1/movement2.mxl -> Op18No1), else the file stem (bach/bwv66.6 -> BWV66.6)."""
    path = Path(spec)
    parts = (path.with_suffix("") if path.suffix.lower() in SUPPORTED_SUFFIXES else path).parts
    stem = parts[-2] if len(parts) >= 3 and re.match(r"movement", parts[-1], re.I) else parts[-1]
    stem = re.sub(r"^opus", "Op", stem, flags=re.I)
    stem = re.sub(r"no(\d)", r"No\1", stem)
    return re.sub(r"^(bwv|k|hob)", lambda m: m.group(1).upper(), stem, flags=re.I)


def _composer(spec: str, score) -> str:
    """music21's corpus is filed by composer (bach/..., mozart/...): trust the folder there.
    For other files, the score's composer field ("J.S. Bach", "Bach, Johann Sebastian")."""
    if not Path(spec).exists() and len(Path(spec).parts) > 1:
        return Path(spec).parts[0].title()
    name = (score.metadata.composer if score.metadata else None) or ""
    name = name.split(",")[0] if "," in name else name
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", name)
    return words[-1].title() if words else "Unknown"


def _tempo_map(score, default_bpm: float):
    """(boundaries in quarter notes, seconds at each boundary, seconds per quarter) for offsets."""
    from music21 import tempo

    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    if not marks:
        spq = 60.0 / default_bpm
        return [0.0], [0.0], [spq]
    starts, seconds, spqs = [], [], []
    for start, end, mark in score.metronomeMarkBoundaries():
        spq = mark.secondsPerQuarter() if mark.number else 60.0 / default_bpm
        seconds.append(seconds[-1] + (start - starts[-1]) * spqs[-1] if starts else 0.0)
        starts.append(float(start))
        spqs.append(float(spq))
    return starts, seconds, spqs


def _to_seconds(offset: float, tempo_map) -> float:
    starts, seconds, spqs = tempo_map
    i = max(0, bisect.bisect_right(starts, offset) - 1)
    return seconds[i] + (offset - starts[i]) * spqs[i]


def read_score(spec: str, excerpt_seconds: float, default_bpm: float) -> tuple[dict, pd.DataFrame]:
    """Parse one score; return its metadata and its excerpt's notes (see module docstring)."""
    score = _parse(spec)
    if not hasattr(score, "parts") or not len(score.parts):
        raise DataError(spec, "score has no parts")
    tempo_map = _tempo_map(score, default_bpm)
    first_part = score.parts[0]
    measure_starts = [float(m.offset) for m in first_part.getElementsByClass("Measure")] or [0.0]
    cut = float(score.highestTime)
    for offset in measure_starts[1:]:
        if _to_seconds(offset, tempo_map) >= excerpt_seconds:
            cut = offset
            break
    rows = []
    for part_index, part in enumerate(score.parts):
        for element in part.stripTies().flatten().notes:
            onset = float(element.offset)
            length = min(float(element.duration.quarterLength), cut - onset)
            if onset >= cut or length <= 0:
                continue  # past the excerpt, or a grace note
            start_s = _to_seconds(onset, tempo_map)
            duration_s = _to_seconds(onset + length, tempo_map) - start_s
            for pitch in element.pitches:
                rows.append(
                    (part_index, int(pitch.midi), start_s, duration_s, onset, length, element.duration.fullName)
                )
    columns = NOTE_COLUMNS[1:]
    notes = pd.DataFrame(rows, columns=columns).sort_values(["part", "onset_beat", "pitch"], kind="stable")
    if notes.empty:
        raise DataError(spec, "no pitched notes in the excerpt")
    catalog = catalog_name(spec)
    title = (score.metadata.title if score.metadata else None) or ""
    stem = Path(spec).stem
    info = {
        "spec": spec,
        "composer": _composer(spec, score),
        # music21's titles are often file names ("movement1.mxl"): keep only real titles
        "composition": title if title and not re.search(r"movement|\.(mxl|xml|krn)$", title) else catalog,
        "movement": stem if re.match(r"movement", stem, re.I) else "",
        "catalog_name": catalog,
        "n_parts": len(score.parts),
        "part_names": ";".join(p.partName or f"Part {i + 1}" for i, p in enumerate(score.parts)),
        "seconds": _to_seconds(cut, tempo_map),
    }
    return info, notes.reset_index(drop=True)


SCORE_COLUMNS = (
    "score",
    "spec",
    "composer",
    "composition",
    "movement",
    "catalog_name",
    "n_parts",
    "part_names",
    "seconds",
)


def write_scores(cfg: DemoConfig, out: Path, source: str) -> dict:
    """Stage `demo_scores`: the parsed scores at `out` (scores.parquet, notes.parquet), written
    atomically. Only the demo source renders them: for any other source the two tables are
    written empty, without parsing anything (DVC's static DAG still runs this stage first)."""
    if source == "demo":
        scores, notes = extract_scores(list(cfg.scores), cfg.excerpt_seconds, cfg.default_bpm, cfg.workers)
    else:
        scores, notes = pd.DataFrame(columns=list(SCORE_COLUMNS)), pd.DataFrame(columns=list(NOTE_COLUMNS))
    with atomic_dir(out) as tmp:
        scores.to_parquet(tmp / "scores.parquet", index=False)
        notes.to_parquet(tmp / "notes.parquet", index=False)
    return {"scores": len(scores), "notes": len(notes), "excerpt_hours": float(scores["seconds"].sum()) / 3600}


def _read_score_task(args: tuple[str, float, float]):
    return read_score(*args)


def extract_scores(
    specs: list[str], excerpt_seconds: float, default_bpm: float, workers: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse every score (in parallel) into the scores and notes tables."""
    specs = expand_specs(list(specs))
    tasks = [(spec, excerpt_seconds, default_bpm) for spec in specs]
    if workers > 1 and len(tasks) > 1:
        with Pool(min(workers, len(tasks))) as pool:
            results = list(progress(pool.imap(_read_score_task, tasks), total=len(tasks), desc="scores", unit="scores"))
    else:
        results = [_read_score_task(t) for t in progress(tasks, desc="scores", unit="scores")]
    infos, notes = [], []
    for index, (info, frame) in enumerate(results):
        infos.append({"score": index, **info})
        notes.append(frame.assign(score=index))
    notes_table = pd.concat(notes, ignore_index=True)[list(NOTE_COLUMNS)]
    return pd.DataFrame(infos), notes_table
