"""Read notes out of real scores (music21's bundled corpus, or any MusicXML/MIDI/kern file).

Parsing is the slow step (0.1 s for a chorale to 10 s for a whole quartet), so the
`demo_scores` stage does it once and stores plain tables; rendering then never touches music21.
With a cache folder, each file's excerpts are also kept, keyed on the file's bytes, the settings
and the parsing code, so a rerun with more scores parses only the new ones. A score gives up to
`excerpts` excerpts: whole measures long enough to reach `excerpt_seconds` at the score's
tempo, starting at evenly spaced points of the movement (the first at its start) and never
overlapping; a short score gives fewer.

Tables written by `extract_scores`:
- scores.parquet: score (one row per excerpt), spec, composer, composition, movement,
  catalog_name, excerpt (0-based, within the file), start_s (where it starts in the movement,
  nominal tempo), n_parts, part_names (";"-joined), seconds (excerpt length at nominal tempo)
- notes.parquet: score, part, pitch, onset_s (from the excerpt's start), duration_s (nominal
  tempo), onset_beat, duration_beat (quarter notes), note_value ("Quarter", "Dotted Eighth", ...)
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import warnings
from multiprocessing import Pool
from pathlib import Path

import pandas as pd

from jtm.atomic import atomic_dir
from jtm.codedeps import code_digest
from jtm.config import DemoConfig
from jtm.errors import DataError
from jtm.progress import progress

NOTE_COLUMNS = (
    "score",
    "part",
    "pitch",
    "onset_s",
    "duration_s",
    "onset_beat",
    "duration_beat",
    "note_value",
)
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
    for start, _end, mark in score.metronomeMarkBoundaries():
        spq = mark.secondsPerQuarter() if mark.number else 60.0 / default_bpm
        seconds.append(seconds[-1] + (start - starts[-1]) * spqs[-1] if starts else 0.0)
        starts.append(float(start))
        spqs.append(float(spq))
    return starts, seconds, spqs


def _to_seconds(offset: float, tempo_map) -> float:
    starts, seconds, spqs = tempo_map
    i = max(0, bisect.bisect_right(starts, offset) - 1)
    return seconds[i] + (offset - starts[i]) * spqs[i]


def _excerpt_bounds(measures: list[float], tempo_map, end: float, seconds: float, count: int):
    """[(begin, cut)] in quarter notes: up to `count` passages of whole measures, each reaching
    `seconds`, their starts spread evenly over the movement and never overlapping."""
    total = _to_seconds(end, tempo_map)
    count = max(1, min(count, int(total // seconds)))
    begins = []
    for e in range(count):
        target = e * total / count
        begins.append(next((m for m in measures if _to_seconds(m, tempo_map) >= target - 1e-9), end))
    bounds = []
    for e, begin in enumerate(begins):
        stop = begins[e + 1] if e + 1 < count else end
        reach = _to_seconds(begin, tempo_map) + seconds
        cut = next((m for m in measures if m > begin and _to_seconds(m, tempo_map) >= reach), end)
        if min(cut, stop) > begin:
            bounds.append((begin, min(cut, stop)))
    return bounds


def read_score(
    spec: str, excerpt_seconds: float, default_bpm: float, excerpts: int = 1
) -> list[tuple[dict, pd.DataFrame]]:
    """Parse one score; return (metadata, notes) of each of its excerpts (see module docstring)."""
    score = _parse(spec)
    if not hasattr(score, "parts") or not len(score.parts):
        raise DataError(spec, "score has no parts")
    tempo_map = _tempo_map(score, default_bpm)
    measures = [float(m.offset) for m in score.parts[0].getElementsByClass("Measure")] or [0.0]
    bounds = _excerpt_bounds(measures, tempo_map, float(score.highestTime), excerpt_seconds, excerpts)
    rows = []
    for part_index, part in enumerate(score.parts):
        for excerpt, (begin, cut) in enumerate(bounds):
            for element in _excerpt_notes(part, begin, cut):
                onset, length = float(element.offset), float(element.duration.quarterLength)
                if begin <= onset < cut and min(length, cut - onset) > 0:  # no grace notes
                    rows += _note_rows(
                        element, excerpt, part_index, begin, min(length, cut - onset), tempo_map
                    )
    found = pd.DataFrame(rows, columns=("excerpt",) + NOTE_COLUMNS[1:])
    title = (score.metadata.title if score.metadata else None) or ""
    stem, catalog = Path(spec).stem, catalog_name(spec)
    common = {
        "spec": spec,
        "composer": _composer(spec, score),
        # music21's titles are often file names ("movement1.mxl"): keep only real titles
        "composition": title if title and not re.search(r"movement|\.(mxl|xml|krn)$", title) else catalog,
        "movement": stem if re.match(r"movement", stem, re.I) else "",
        "catalog_name": catalog,
        "n_parts": len(score.parts),
        "part_names": ";".join(p.partName or f"Part {i + 1}" for i, p in enumerate(score.parts)),
    }
    out = []
    for excerpt, (begin, cut) in enumerate(bounds):
        notes = found[found["excerpt"] == excerpt].drop(columns="excerpt")
        if notes.empty:
            continue
        notes = notes.sort_values(["part", "onset_beat", "pitch"], kind="stable").reset_index(drop=True)
        begin_s = _to_seconds(begin, tempo_map)
        info = common | {
            "excerpt": excerpt,
            "start_s": begin_s,
            "seconds": _to_seconds(cut, tempo_map) - begin_s,
        }
        out.append((info, notes))
    if not out:
        raise DataError(spec, "no pitched notes in the excerpt")
    return out


def _excerpt_notes(part, begin: float, cut: float):
    """The part's notes and chords in [begin, cut) quarter notes, ties merged, at score offsets.

    Ties are merged on the excerpt's measures only: music21's stripTies on a whole movement
    takes up to 30 s, on a few measures milliseconds.
    """
    from music21 import stream

    measures = [m for m in part.getElementsByClass("Measure") if begin <= float(m.offset) < cut]
    if not measures:  # a part without measures (MIDI): the whole part
        return part.stripTies().flatten().notes
    piece = stream.Part()
    for measure in measures:
        piece.insert(float(measure.offset), measure)
    return piece.stripTies().flatten().notes


def _note_rows(element, excerpt: int, part: int, begin: float, length: float, tempo_map) -> list[tuple]:
    """One row per pitch of a note or chord; seconds from the excerpt's start (nominal tempo)."""
    onset = float(element.offset)
    zero = _to_seconds(begin, tempo_map)
    start_s = _to_seconds(onset, tempo_map)
    duration_s = _to_seconds(onset + length, tempo_map) - start_s
    name = element.duration.fullName
    return [
        (excerpt, part, int(p.midi), start_s - zero, duration_s, onset, length, name) for p in element.pitches
    ]


SCORE_COLUMNS = (
    "score",
    "spec",
    "composer",
    "composition",
    "movement",
    "catalog_name",
    "excerpt",
    "start_s",
    "n_parts",
    "part_names",
    "seconds",
)


def write_scores(cfg: DemoConfig, out: Path, source: str, cache: Path | None = None) -> dict:
    """Stage `demo_scores`: the parsed scores at `out` (scores.parquet, notes.parquet), written
    atomically. Only the demo source renders them: for any other source the two tables are
    written empty, without parsing anything (DVC's static DAG still runs this stage first)."""
    if source == "demo":
        scores, notes = extract_scores(
            list(cfg.scores), cfg.excerpt_seconds, cfg.default_bpm, cfg.workers, cfg.excerpts, cache
        )
    else:
        scores, notes = pd.DataFrame(columns=list(SCORE_COLUMNS)), pd.DataFrame(columns=list(NOTE_COLUMNS))
    with atomic_dir(out) as tmp:
        scores.to_parquet(tmp / "scores.parquet", index=False)
        notes.to_parquet(tmp / "notes.parquet", index=False)
    return {
        "scores": len(scores),
        "notes": len(notes),
        "excerpt_hours": float(scores["seconds"].sum()) / 3600,
    }


def _code_key() -> str:
    """This module's code and all it imports (jtm/codedeps.py), and music21's version: what
    read_score does with a file. Read once per run, not once per score."""
    import music21

    return f"{code_digest(__name__)}:{music21.__version__}"


def _cache_key(spec: str, excerpt_seconds: float, default_bpm: float, excerpts: int, code: str) -> str:
    """A hash of the score file's bytes and of everything read_score does with them: the
    settings and `code` (from `_code_key`)."""
    from music21 import corpus

    path = Path(spec) if Path(spec).exists() else Path(str(corpus.getWork(spec)))
    digest = hashlib.sha256(path.read_bytes())
    digest.update(json.dumps([spec, excerpt_seconds, default_bpm, excerpts, code]).encode())
    return digest.hexdigest()[:32]


def _read_cached(folder: Path, key: str) -> list[tuple[dict, pd.DataFrame]] | None:
    infos, notes = folder / f"{key}.json", folder / f"{key}.parquet"
    if not (infos.is_file() and notes.is_file()):
        return None
    table = pd.read_parquet(notes)
    return [
        (info, table[table["excerpt"] == i].drop(columns="excerpt").reset_index(drop=True))
        for i, info in enumerate(json.loads(infos.read_text()))
    ]


def _write_cached(folder: Path, key: str, excerpts: list[tuple[dict, pd.DataFrame]]) -> None:
    """Notes first, then the JSON that marks the entry complete (each renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.concat([notes.assign(excerpt=i) for i, (_, notes) in enumerate(excerpts)], ignore_index=True)
    for name, write in (
        (f"{key}.parquet", lambda f: table.to_parquet(f, index=False)),
        (f"{key}.json", lambda f: f.write_text(json.dumps([info for info, _ in excerpts]))),
    ):
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        write(tmp)
        os.replace(tmp, folder / name)


def _read_score_task(args: tuple[str, float, float, int]):
    return read_score(*args)


def extract_scores(
    specs: list[str],
    excerpt_seconds: float,
    default_bpm: float,
    workers: int,
    excerpts: int = 1,
    cache: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse every score (in parallel; each file once per content and settings when `cache`
    names a folder) into the scores and notes tables: one scores row per excerpt."""
    specs = expand_specs(list(specs))
    code = _code_key() if cache else ""
    keys = (
        [_cache_key(s, excerpt_seconds, default_bpm, excerpts, code) for s in specs]
        if cache
        else [None] * len(specs)
    )
    found = {i: _read_cached(Path(cache), k) for i, k in enumerate(keys)} if cache else {}
    todo = [i for i in range(len(specs)) if found.get(i) is None]
    tasks = [(specs[i], excerpt_seconds, default_bpm, excerpts) for i in todo]
    if workers > 1 and len(tasks) > 1:
        with Pool(min(workers, len(tasks))) as pool:
            parsed = list(
                progress(pool.imap(_read_score_task, tasks), total=len(tasks), desc="scores", unit="scores")
            )
    else:
        parsed = [_read_score_task(t) for t in progress(tasks, desc="scores", unit="scores")]
    for i, result in zip(todo, parsed, strict=True):
        found[i] = result
        if cache:
            _write_cached(Path(cache), keys[i], result)
    infos, notes = [], []
    for i in range(len(specs)):
        for info, frame in found[i]:
            infos.append({"score": len(infos), **info})
            notes.append(frame.assign(score=infos[-1]["score"]))
    notes_table = pd.concat(notes, ignore_index=True)[list(NOTE_COLUMNS)]
    return pd.DataFrame(infos)[list(SCORE_COLUMNS)], notes_table
