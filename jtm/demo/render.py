"""Render scores into a MusicNet-format corpus: the demo corpus, or any folder of scores.

Each score is performed `renderings` times. A performance picks an ensemble (seeded, among
those that can play the score's parts, so that ensemble/timbre and composer/style vary
independently), hands each part to an instrument in its real range, and humanises tempo,
onsets and velocities. The labels are exactly what was synthesised. Whole works
(composer + catalog_name) go to test_data, so no work is in both splits.
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
from jtm.demo import ensembles
from jtm.demo.synth import resolve_soundfont, synthesize
from jtm.errors import ConfigError, DataError
from jtm.musicnet import layout
from jtm.progress import progress

FIRST_ID = 3001  # above MusicNet's own ids (1727-2678), so corpora can be merged


@dataclasses.dataclass(frozen=True)
class Performance:
    """One track to render: which score, by which ensemble, how fast, into which split."""

    id: int
    score: int
    rendering: int
    ensemble: str
    programs: tuple[int, ...]
    tempo: float
    split: str


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
            plan.append(
                Performance(
                    FIRST_ID + len(plan),
                    int(score.score),
                    rendering,
                    ensemble,
                    tuple(programs),
                    tempo,
                    splits[int(score.score)],
                )
            )
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
    audio = synthesize(
        resolve_soundfont(cfg.soundfont),
        list(performance.programs),
        part,
        pitch,
        velocity,
        start,
        end,
        n_samples,
        sr,
    )
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= 0.5 / peak  # the same loudness for every track
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


def _perform_task(args):
    notes, performance, cfg, raw = args
    audio, labels = perform(notes, performance, cfg)
    layout.write_wav(
        layout.wav_path(raw, performance.split, performance.id), audio, cfg.sample_rate, cfg.wav_subtype
    )
    labels.to_csv(layout.labels_path(raw, performance.split, performance.id), index=False)
    return performance.id, len(audio) / cfg.sample_rate


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
    resolve_soundfont(cfg.soundfont)  # fail before any work
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
        soundfont = resolve_soundfont(cfg.soundfont).name
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
                    f"(from {info.at[p.score, 'start_s']:.1f} s) rendered with {soundfont}",
                    "transcriber": "jtm render",
                    "catalog_name": info.at[p.score, "catalog_name"],
                    "seconds": int(round(done[p.id])),
                }
                for p in plan
            ],
            columns=list(layout.METADATA_COLUMNS),
        )
        metadata.to_csv(tmp / layout.METADATA_FILE, index=False)
    seconds = sum(done.values())
    return {"tracks": len(plan), "hours": seconds / 3600, "test_tracks": sum(p.split == "test" for p in plan)}
