"""Targets of the downstream tasks, derived from the index's tracks and notes tables.

- `ensemble`, `composer`: one class per window (the track's metadata).
- `instruments`: which of MusicNet's 11 instruments sound in the window, (windows, 11) bool.
- `transcription`: which of the 128 MIDI pitches sound at each 100 Hz frame, (windows, 128, 128).

A frame t of a window starting at sample s is labelled at its centre, s + 160 t + 80: a note
sounds there if start_time <= centre < end_time (16 kHz samples, as in the index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jtm import choices
from jtm.models.encoder import DOWNSAMPLING
from jtm.musicnet.layout import INSTRUMENTS

WINDOW_CLASS_TASKS = ("ensemble", "composer")
PITCHES = 128
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class TaskLabels:
    """What a task predicts for the windows of `keys` (rows in the same order).

    `targets`: (windows,) int class ids, (windows, 11) bool, or (windows, frames, 128) bool.
    `classes`: the names of the class ids or label columns.
    `strata`: (windows,) the class each window is stratified by when drawing label budgets.
    """

    task: str
    classes: tuple[str, ...]
    targets: np.ndarray
    strata: np.ndarray

    @property
    def multilabel(self) -> bool:
        return self.task not in WINDOW_CLASS_TASKS

    @property
    def framewise(self) -> bool:
        return self.task == "transcription"


def _frame_of_sample(samples: np.ndarray) -> np.ndarray:
    """Index of the first 100 Hz frame whose centre is at or after `samples`."""
    return np.ceil((np.asarray(samples, dtype=np.float64) - DOWNSAMPLING / 2) / DOWNSAMPLING).astype(np.int64)


def activity_roll(notes: pd.DataFrame, n_frames: int, column: str, values: list[int]) -> np.ndarray:
    """(n_frames, len(values)) bool: which `values` of `column` sound at each frame centre.

    Vectorised: +1 at each note's first frame, -1 after its last, then a cumulative sum.
    """
    lookup = {v: i for i, v in enumerate(values)}
    keep = notes[column].isin(lookup)
    rows = notes[keep]
    first = np.clip(_frame_of_sample(rows["start_time"].to_numpy()), 0, n_frames)
    stop = np.clip(_frame_of_sample(rows["end_time"].to_numpy()), 0, n_frames)
    cols = rows[column].map(lookup).to_numpy(dtype=np.int64)
    delta = np.zeros((n_frames + 1, len(values)), dtype=np.int32)
    np.add.at(delta, (first, cols), 1)
    np.add.at(delta, (stop, cols), -1)
    return np.cumsum(delta[:-1], axis=0) > 0


def track_rolls(
    tracks: pd.DataFrame, notes: pd.DataFrame, column: str, values: list[int]
) -> dict[int, np.ndarray]:
    """{track id: activity roll over the whole track} (see `activity_roll`)."""
    by_track = dict(tuple(notes.groupby("id")))
    empty = notes.iloc[:0]
    return {
        int(i): activity_roll(by_track.get(i, empty), int(samples) // DOWNSAMPLING + 1, column, values)
        for i, samples in zip(tracks["id"], tracks["samples"], strict=True)
    }


def window_frames(
    keys: pd.DataFrame, rolls: dict[int, np.ndarray], frames: int, any_frame: bool = False
) -> np.ndarray:
    """(windows, frames, columns) bool: each window's rows of its track's roll; with
    `any_frame`, (windows, columns): whether a column sounds anywhere in the window (never the
    frames of every window at once)."""
    columns = next(iter(rolls.values())).shape[1]
    out = np.zeros((len(keys), columns) if any_frame else (len(keys), frames, columns), dtype=bool)
    first = _frame_of_sample(keys["start"].to_numpy() + DOWNSAMPLING / 2)
    for row, (track, begin) in enumerate(zip(keys["id"].to_numpy(), first, strict=True)):
        roll = rolls[int(track)][begin : begin + frames]
        if any_frame:
            out[row] = roll.any(axis=0)
        else:
            out[row, : len(roll)] = roll
    return out


def task_labels(task: str, keys: pd.DataFrame, tracks: pd.DataFrame, notes: pd.DataFrame) -> TaskLabels:
    """Targets of `task` for the windows in `keys` (id, start, length per row)."""
    meta = keys[["id"]].merge(tracks[["id", "ensemble", "composer"]], on="id", how="left")
    strata = meta["ensemble"].astype(str).to_numpy()
    if task in WINDOW_CLASS_TASKS:
        names = sorted(tracks[task].astype(str).unique())
        ids = pd.Categorical(meta[task].astype(str), categories=names).codes.astype(np.int64)
        return TaskLabels(task, tuple(names), ids, meta[task].astype(str).to_numpy())
    frames = int(keys["length"].iloc[0]) // DOWNSAMPLING
    if task == "instruments":
        programs = sorted(INSTRUMENTS)
        rolls = track_rolls(tracks, notes, "instrument", programs)
        present = window_frames(keys, rolls, frames, any_frame=True)
        return TaskLabels(task, tuple(INSTRUMENTS[p] for p in programs), present, strata)
    if task == "transcription":
        rolls = track_rolls(tracks, notes, "note", list(range(PITCHES)))
        return TaskLabels(
            task, tuple(str(p) for p in range(PITCHES)), window_frames(keys, rolls, frames), strata
        )
    raise ValueError(f"unknown task {task!r}: use one of {choices.TASKS}")
