"""Render scores into a MusicNet-format corpus: the demo corpus, or any folder of scores.

Each score is performed `renderings` times. A performance picks an ensemble (seeded, among
those that can play the score's parts, so that ensemble/timbre and composer/style vary
independently), hands each part to an instrument in its real range, gives each part's
instrument its own timbre (jtm/demo/recording.py), and humanises tempo, onsets and velocities.
The labels are exactly what was synthesised. Whole works (composer + catalog_name) go to
test_data, so no work is in both splits.

A performance is then recorded: in a room (with its microphone), at a level, over a noise
floor. Rooms are recording conditions; `held_out_rooms` of them (and `held_out_soundfonts` of
the SoundFonts) are heard by no train or validation recording. A train performance is recorded
once, under a seen condition; a test performance twice, under a seen and an unseen condition,
so the two test columns of the report score the same performances and differ by the
recording alone. `<raw>/recordings.csv` (jtm/musicnet/layout.py) says which track is which.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

from jtm import choices
from jtm.atomic import atomic_dir
from jtm.config import DemoConfig
from jtm.demo import ensembles, recording
from jtm.demo.synth import resolve_soundfont, synthesize_stems
from jtm.errors import ConfigError, DataError
from jtm.musicnet import layout
from jtm.progress import progress

FIRST_ID = 3001  # above MusicNet's own ids (1727-2678), so corpora can be merged
DRY_LEVEL_DB = 20 * np.log10(0.5)  # a dry rendering's peak


@dataclasses.dataclass(frozen=True)
class Performance:
    """One track to render: which score, by which ensemble, how fast, into which split, and
    how it is recorded (`take` 0: under a seen condition, 1: under an unseen one)."""

    id: int
    score: int
    rendering: int
    ensemble: str
    programs: tuple[int, ...]
    tempo: float
    split: str
    take: int = 0
    soundfont: str | None = None
    room: str | None = None  # None: dry, as synthesised
    heard: str = "seen"  # seen: a condition train and val recordings use; unseen: none does
    level_db: float = 0.0
    snr_db: float = float("inf")


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The corpus's recording conditions: SoundFonts and rooms, each seen or held out."""

    soundfonts: tuple[str | None, ...]
    held_out_soundfonts: tuple[str | None, ...]
    rooms: tuple[str, ...]  # room names; the rooms themselves: recording.room
    held_out_rooms: tuple[str, ...]

    def choices(self, heard: str) -> tuple[list, list]:
        """(SoundFonts, room names) a recording `heard` seen or unseen draws from."""
        fonts = [f for f in self.soundfonts if (f in self.held_out_soundfonts) == (heard == "unseen")]
        rooms = [r for r in self.rooms if (r in self.held_out_rooms) == (heard == "unseen")]
        if heard == "unseen":  # held out: whatever is held out, the rest as seen
            fonts = fonts or [f for f in self.soundfonts if f not in self.held_out_soundfonts]
            rooms = rooms or [r for r in self.rooms if r not in self.held_out_rooms]
        return fonts, rooms or [None]

    @property
    def any_unseen(self) -> bool:
        return bool(self.held_out_soundfonts or self.held_out_rooms)


def conditions(cfg: DemoConfig) -> Conditions:
    """The SoundFonts (`soundfont`, then `more_soundfonts`) and `rooms`, with the seeded held-out ones."""
    fonts = (cfg.soundfont, *cfg.more_soundfonts)
    if cfg.held_out_soundfonts >= len(fonts) and cfg.held_out_soundfonts:
        raise ConfigError(
            f"demo.held_out_soundfonts={cfg.held_out_soundfonts}: keep at least one of the "
            f"{len(fonts)} SoundFonts for training"
        )
    if cfg.held_out_rooms >= cfg.rooms and cfg.held_out_rooms:
        raise ConfigError(
            f"demo.held_out_rooms={cfg.held_out_rooms}: keep at least one of the {cfg.rooms} rooms"
        )
    font_order = np.random.default_rng([cfg.seed, 22]).permutation(len(fonts))
    return Conditions(
        fonts,
        tuple(fonts[i] for i in sorted(font_order[: cfg.held_out_soundfonts])),
        tuple(f"room{i}" for i in range(cfg.rooms)),
        tuple(recording.held_out(cfg.seed, cfg.rooms, cfg.held_out_rooms)),
    )


def _takes(split: str, found: Conditions, cfg: DemoConfig, score: int, rendering: int) -> list[dict]:
    """How a performance is recorded: once under a seen condition, and a test performance
    again under an unseen one (if any is held out); seeded by (score, rendering)."""
    rng = np.random.default_rng([cfg.seed, 23, score, rendering])
    heard = ["seen", "unseen"] if split == "test" and found.any_unseen else ["seen"]
    takes = []
    for take, kind in enumerate(heard):
        fonts, rooms = found.choices(kind)
        font, room = fonts[int(rng.integers(len(fonts)))], rooms[int(rng.integers(len(rooms)))]
        level, snr = float(rng.uniform(*cfg.level_db)), float(rng.uniform(*cfg.snr_db))
        if room is None:  # dry: peak at -6 dBFS, no noise, as synthesised
            level, snr = DRY_LEVEL_DB, float("inf")
        takes.append(
            {"take": take, "heard": kind, "soundfont": font, "room": room, "level_db": level, "snr_db": snr}
        )
    return takes


def choose_test_works(scores: pd.DataFrame, fraction: float, seed: int) -> set[tuple[str, str]]:
    """Whole works (composer, catalog_name) holding about `fraction` of each composer's scores.

    Per composer, works in a seeded order go to test while that brings its count closer to the
    composer's share; a composer's last two works always stay in train (one to train on, one
    the index can carve into val), so every test composer is also trained and validated.
    """
    chosen: set[tuple[str, str]] = set()
    for position, (composer, rows) in enumerate(scores.groupby("composer", sort=True)):
        sizes = rows.groupby("catalog_name").size()
        order = np.random.default_rng([seed, 1, position]).permutation(sorted(sizes.index))
        target, taken = fraction * len(rows), 0
        for catalog in order[: max(0, len(order) - 2)]:
            if abs(taken + sizes[catalog] - target) < abs(taken - target):
                chosen.add((composer, str(catalog)))
                taken += sizes[catalog]
    return chosen


def _part_pitches(notes: pd.DataFrame, n_parts: int) -> list[np.ndarray]:
    return [notes.loc[notes["part"] == p, "pitch"].to_numpy() for p in range(n_parts)]


def _common_ensembles(scores: pd.DataFrame, cfg: DemoConfig) -> list[str]:
    """The ensembles that can play every score's part count (checking each score can be played)."""
    for score in scores.itertuples():
        if score.n_parts > 15:
            raise DataError(score.spec, f"{score.n_parts} parts: at most 15 pitched MIDI channels")
        if not ensembles.fitting_ensembles(score.n_parts):
            raise DataError(score.spec, f"no MusicNet ensemble can play {score.n_parts} parts")
    part_counts = sorted(set(scores["n_parts"].astype(int)))
    common = [e for e in ensembles.ENSEMBLES if all(ensembles.fits(e, n) for n in part_counts)]
    if cfg.ensemble_choice == "balanced" and not common:
        raise ConfigError(
            f"demo.ensemble_choice=balanced: no ensemble fits every score's part count {part_counts}; "
            "choose scores with similar part counts, or ensemble_choice=random"
        )
    return common


def choose_ensembles(
    scores: pd.DataFrame, splits: dict[int, str], cfg: DemoConfig
) -> dict[tuple[int, int], str]:
    """{(score, rendering): ensemble}, seeded, for `ensemble_choice` balanced or random.

    `random`: each score's renderings take a seeded permutation of the ensembles that fit its
    parts (a 5-part madrigal can get a Wind Quintet, a 4-part chorale never: the ensemble then
    tells the part count, and so the composer). `balanced`: only ensembles that fit every
    score; performances, in a seeded order, each take the one used least so far by their
    composer in their split, then least in their split (ties in a seeded order), so every
    composer of every split is heard in every ensemble about equally often: ensemble and
    composer are independent by construction.
    """
    common = _common_ensembles(scores, cfg)
    performances = [(int(s), r) for s in scores["score"] for r in range(cfg.renderings)]
    if cfg.ensemble_choice == "balanced":
        order = np.random.default_rng([cfg.seed, 4]).permutation(len(performances))
        performances = [performances[i] for i in order]
    parts, composers = scores.set_index("score")["n_parts"], scores.set_index("score")["composer"]
    chosen, used = {}, Counter()
    for score, rendering in performances:
        rng = np.random.default_rng([cfg.seed, 2, score])
        if cfg.ensemble_choice == "random":
            picks = [str(e) for e in rng.permutation(ensembles.fitting_ensembles(int(parts[score])))]
            chosen[(score, rendering)] = picks[rendering % len(picks)]
            continue
        picks = [str(e) for e in rng.permutation(common)]
        tie = np.random.default_rng([cfg.seed, 5, score, rendering]).permutation(len(picks))
        split, composer = splits[score], composers[score]
        ensemble = min((picks[i] for i in tie), key=lambda e: (used[split, composer, e], used[split, e]))
        used[split, composer, ensemble] += 1
        used[split, ensemble] += 1
        chosen[(score, rendering)] = ensemble
    return chosen


def plan_performances(scores: pd.DataFrame, notes: pd.DataFrame, cfg: DemoConfig) -> list[Performance]:
    """Seeded choices for every (score, rendering): ensemble, instruments, tempo, split, id."""
    if cfg.ensemble_choice not in choices.ENSEMBLE_CHOICES:
        raise ConfigError(
            f"demo.ensemble_choice={cfg.ensemble_choice!r}: use one of {choices.ENSEMBLE_CHOICES}"
        )
    test_works = choose_test_works(scores, cfg.test_fraction, cfg.seed)
    splits = {
        int(s.score): "test" if (s.composer, s.catalog_name) in test_works else "train"
        for s in scores.itertuples()
    }
    original = cfg.ensemble_choice == "original"
    chosen = {} if original else choose_ensembles(scores, splits, cfg)
    found = conditions(cfg)
    by_score = dict(tuple(notes.groupby("score")))
    plan = []
    for score in scores.itertuples():
        part_pitches = _part_pitches(by_score[score.score], score.n_parts)
        rng = np.random.default_rng([cfg.seed, 6, int(score.score)])
        for rendering in range(cfg.renderings):
            if original:
                programs = [
                    ensembles.program_from_name(n) or ensembles.PIANO for n in score.part_names.split(";")
                ]
                ensemble = ensembles.ensemble_of(programs)
            else:
                ensemble = chosen[(int(score.score), rendering)]
                programs = ensembles.assign_parts(ensemble, part_pitches)
            tempo = float(rng.uniform(1 - cfg.tempo_jitter, 1 + cfg.tempo_jitter))
            split = splits[int(score.score)]
            for take in _takes(split, found, cfg, int(score.score), rendering):
                performance = (int(score.score), rendering, ensemble, tuple(programs), tempo, split)
                plan.append(Performance(FIRST_ID + len(plan), *performance, **take))
    return plan


def perform(
    notes: pd.DataFrame, performance: Performance, cfg: DemoConfig
) -> tuple[np.ndarray, pd.DataFrame]:
    """Humanise and synthesise one performance; return (audio at 44.1 kHz, MusicNet labels)."""
    rng = np.random.default_rng([cfg.seed, 3, performance.score, performance.rendering])
    sr = cfg.sample_rate
    notes = notes.sort_values(["part", "onset_s", "pitch"], kind="stable").reset_index(drop=True)
    part = notes["part"].to_numpy()
    programs = np.asarray(performance.programs)[part]
    pitch = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            ensembles.fit_to_range(notes["pitch"].to_numpy()[part == p], performance.programs[p])
            for p in np.unique(part)
        ]
    )
    onset_s = notes["onset_s"].to_numpy() * performance.tempo
    jitter = rng.normal(0, cfg.onset_jitter_ms / 1000, len(notes))
    lead_in = 0.25 + 3 * cfg.onset_jitter_ms / 1000  # room for early onsets before t=0
    start = np.round((lead_in + onset_s + jitter) * sr).astype(np.int64)
    end = np.round((lead_in + onset_s + notes["duration_s"].to_numpy() * performance.tempo + jitter) * sr)
    end = end.astype(np.int64)
    velocity = np.clip(np.round(cfg.velocity + rng.normal(0, cfg.velocity_jitter, len(notes))), 1, 127)
    # A note ends no later than the next onset of the same pitch in the same part.
    order = np.lexsort((start, pitch, part))
    same_next = (part[order][1:] == part[order][:-1]) & (pitch[order][1:] == pitch[order][:-1])
    trimmed = end[order].copy()
    trimmed[:-1] = np.where(same_next, np.minimum(trimmed[:-1], start[order][1:]), trimmed[:-1])
    end[order] = trimmed
    keep = end > start
    start, end, pitch, part, programs, velocity = (
        a[keep] for a in (start, end, pitch, part, programs, velocity)
    )
    n_samples = int(end.max() + round(cfg.tail_seconds * sr))
    audio = _sound(performance, part, pitch, velocity, start, end, n_samples, cfg)
    labels = pd.DataFrame(
        {
            "start_time": start,
            "end_time": end,
            "instrument": programs,
            "note": pitch,
            "start_beat": notes["onset_beat"].to_numpy()[keep],
            "end_beat": notes["duration_beat"].to_numpy()[keep],
            "note_value": notes["note_value"].to_numpy()[keep],
        }
    ).sort_values(["start_time", "note", "instrument"], kind="stable")
    return audio, labels


def _sound(performance: Performance, part, pitch, velocity, start, end, n_samples: int, cfg: DemoConfig):
    """(n_samples,) float32: each part played by its instrument's timbre, mixed, then recorded
    in the performance's room (or left dry, peak-normalised, without a room)."""
    sr, parts = cfg.sample_rate, len(performance.programs)
    timbres = [None] * parts
    if cfg.timbre_variation:
        timbre_rng = np.random.default_rng([cfg.seed, 24, performance.score, performance.rendering])
        timbres = [recording.draw_timbre(timbre_rng) for _ in range(parts)]
    bends = [None if t is None else (t.detune_cents / 100, _vibrato(t)) for t in timbres]
    stems = synthesize_stems(
        resolve_soundfont(performance.soundfont), list(performance.programs), part, pitch, velocity,
        start, end, n_samples, sr, bends,
    )  # fmt: skip
    dry = sum(
        (recording.colour(s, t, sr) if t else s for s, t in zip(stems, timbres, strict=True)),
        np.zeros(n_samples, np.float32),
    )
    if performance.room is None:
        peak = float(np.max(np.abs(dry)))
        return (dry * (10 ** (DRY_LEVEL_DB / 20) / peak) if peak > 0 else dry).astype(np.float32)
    rng = np.random.default_rng([cfg.seed, 25, performance.score, performance.rendering, performance.take])
    room = recording.room(cfg.seed, int(performance.room.removeprefix("room")))
    return recording.record(dry, room, performance.level_db, performance.snr_db, sr, rng)


def _vibrato(timbre: recording.Timbre):
    """Seconds (m,) -> pitch bend values (m,) of the timbre's vibrato (the detune is the channel's tuning)."""
    still = dataclasses.replace(timbre, detune_cents=0.0)
    return lambda seconds: recording.bend(still, seconds)


def _perform_task(args):
    notes, performance, cfg, raw = args
    audio, labels = perform(notes, performance, cfg)
    layout.write_wav(
        layout.wav_path(raw, performance.split, performance.id), audio, cfg.sample_rate, cfg.wav_subtype
    )
    labels.to_csv(layout.labels_path(raw, performance.split, performance.id), index=False)
    return performance.id, len(audio) / cfg.sample_rate


def recordings_table(plan: list[Performance]) -> pd.DataFrame:
    """One row per track (layout.RECORDING_COLUMNS): its performance (the first track's id of
    that performance) and its recording conditions."""
    first = {}
    for p in plan:
        first.setdefault((p.score, p.rendering), p.id)
    return pd.DataFrame(
        [
            {
                "id": p.id,
                "performance": first[(p.score, p.rendering)],
                "soundfont": resolve_soundfont(p.soundfont).name,
                "room": p.room or "dry",
                "heard": p.heard,
                "level_db": round(p.level_db, 2),
                "snr_db": round(p.snr_db, 2),
            }
            for p in plan
        ],
        columns=list(layout.RECORDING_COLUMNS),
    )


def render_parsed(scores_dir: Path, cfg: DemoConfig, out: Path) -> dict:
    """Render the parsed scores of stage `demo_scores` (at `scores_dir`) into `out`."""
    scores = pd.read_parquet(scores_dir / "scores.parquet")
    notes = pd.read_parquet(scores_dir / "notes.parquet")
    if scores.empty:
        raise DataError(
            scores_dir / "scores.parquet", "no parsed scores: run stage demo_scores with data.source=demo"
        )
    return render_corpus(scores, notes, cfg, out, cfg.workers)


def render_corpus(
    scores: pd.DataFrame, notes: pd.DataFrame, cfg: DemoConfig, out: str | Path, workers: int
) -> dict:
    """Write a MusicNet-format corpus at `out` (atomically); return summary figures."""
    if cfg.sample_rate != layout.SAMPLE_RATE:
        raise ConfigError(
            f"demo.sample_rate={cfg.sample_rate}: must be {layout.SAMPLE_RATE} (MusicNet's rate)"
        )
    for font in (cfg.soundfont, *cfg.more_soundfonts):
        resolve_soundfont(font)  # fail before any work
    plan = plan_performances(scores, notes, cfg)
    by_score = {s: g for s, g in notes.groupby("score")}
    with atomic_dir(out) as tmp:
        for split in layout.SPLITS:
            for kind in ("data", "labels"):
                (tmp / "musicnet" / f"{split}_{kind}").mkdir(parents=True)
        tasks = [(by_score[p.score], p, cfg, tmp) for p in plan]
        if workers > 1:
            with Pool(min(workers, len(tasks))) as pool:
                done = dict(
                    progress(pool.imap(_perform_task, tasks), total=len(tasks), desc="render", unit="tracks")
                )
        else:
            done = dict(_perform_task(t) for t in progress(tasks, desc="render", unit="tracks"))
        info = scores.set_index("score")
        metadata = pd.DataFrame(
            [
                {
                    "id": p.id,
                    "composer": info.at[p.score, "composer"],
                    "composition": info.at[p.score, "composition"],
                    "movement": info.at[p.score, "movement"],
                    "ensemble": p.ensemble,
                    "source": f"{info.at[p.score, 'spec']} excerpt {info.at[p.score, 'excerpt']} "
                    f"(from {info.at[p.score, 'start_s']:.1f} s) rendered with "
                    f"{resolve_soundfont(p.soundfont).name} in {p.room or 'no room'}",
                    "transcriber": "jtm render",
                    "catalog_name": info.at[p.score, "catalog_name"],
                    "seconds": int(round(done[p.id])),
                }
                for p in plan
            ],
            columns=list(layout.METADATA_COLUMNS),
        )
        metadata.to_csv(tmp / layout.METADATA_FILE, index=False)
        recordings_table(plan).to_csv(tmp / layout.RECORDINGS_FILE, index=False)
    seconds = sum(done.values())
    return {"tracks": len(plan), "hours": seconds / 3600, "test_tracks": sum(p.split == "test" for p in plan)}
