"""What a cell of the downstream study reads: a task's windows, targets, splits and test units
(`TaskData`), and the loaded features or audio (`CellInputs`, from `load_cell`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jtm.downstream import end_to_end
from jtm.downstream.labels import SAMPLE_RATE, TaskLabels, task_labels
from jtm.downstream.parts import ALL, PART_SEPARATOR
from jtm.errors import DataError
from jtm.features.embed import load_embeddings
from jtm.loading.windows import load_windows, non_overlapping
from jtm.models.encoder import DOWNSAMPLING


class TaskData:
    """One task's windows (rows of the embeddings' keys), targets and splits."""

    def __init__(self, task: str, keys: pd.DataFrame, tracks: pd.DataFrame, notes: pd.DataFrame, unit: str):
        rows = np.arange(len(keys))
        if task == "transcription":  # every frame trained on and scored once
            rows = rows[non_overlapping(keys)]
        self.keys = keys.iloc[rows].reset_index(drop=True)
        self.rows = rows
        self.labels: TaskLabels = task_labels(task, self.keys, tracks, notes)
        # The instruments each window holds: what a multi-label budget must cover.
        self.present = (
            task_labels("instruments", self.keys, tracks, notes).targets if self.labels.multilabel else None
        )
        self.split = self.keys["split"].to_numpy()
        self.notes = notes
        self._excerpts = None
        heard = ["heard", "performance"] if "heard" in tracks else []
        meta = self.keys[["id"]].merge(
            tracks[["id", "composer", "catalog_name", *heard]], on="id", how="left"
        )
        # The test part of each window: the conditions it was recorded under (seen in training,
        # or unseen), or "all" where the corpus does not say (real MusicNet).
        self.heard = meta["heard"].to_numpy().astype(str) if heard else np.full(len(meta), ALL)
        work = meta["composer"].astype(str) + " / " + meta["catalog_name"].astype(str)
        # A track unit is a performance: its recordings under seen and unseen conditions pair up.
        track = meta["performance"] if heard else meta["id"]
        unit_of = (work if unit == "work" else track.astype(str)).to_numpy().astype(str)
        self.unit_names = np.char.add(np.char.add(self.heard, PART_SEPARATOR), unit_of)

    def excerpts(self) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        """The test split's contiguous runs of windows (see `_excerpts`), computed once."""
        if self._excerpts is None:
            self._excerpts = _excerpts(self, self.part("test"))
        return self._excerpts

    def part(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def probe_inputs(
    cache: dict,
    folder: Path,
    feature: str,
    framewise: bool,
    rows: np.ndarray,
    stride: int = 1,
    block: int = 256,
) -> np.ndarray:
    """(n, dim) float32 inputs of a probe: pooled windows, or every `stride`-th frame of the
    windows, read from the memory maps `block` windows at a time (only what is returned is ever
    held: not the windows' every frame, nor the feature set)."""
    if feature not in cache:
        keys, frames, pooled = load_embeddings(folder, feature)
        cache[feature] = keys["frame_row"].to_numpy(), frames, pooled
    frame_row, frames, pooled = cache[feature]
    if not framewise:
        return np.asarray(pooled[rows], dtype=np.float32)
    at = frame_row[rows]
    if (at < 0).any():
        raise DataError(
            folder / feature, "frames of windows it did not store were asked for: rerun the embed stage"
        )
    per_window = len(range(0, frames.shape[1], stride))
    out = np.empty((len(rows), per_window, frames.shape[-1]), dtype=np.float32)
    for begin in range(0, len(rows), block):
        out[begin : begin + block] = frames[at[begin : begin + block], ::stride]
    return out.reshape(-1, frames.shape[-1])


def flat_targets(targets: np.ndarray, framewise: bool, stride: int = 1) -> np.ndarray:
    return targets[:, ::stride].reshape(-1, targets.shape[-1]) if framewise else targets


def _excerpts(data: TaskData, test: np.ndarray) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Test windows grouped into runs that are contiguous in one track, each with its true notes
    as (intervals in seconds from the run's start, MIDI pitches)."""
    keys = data.keys.iloc[test]
    runs, current = [], [0]
    for i in range(1, len(keys)):
        prev, here = keys.iloc[i - 1], keys.iloc[i]
        if here["id"] == prev["id"] and here["start"] == prev["start"] + prev["length"]:
            current.append(i)
        else:
            runs.append(current)
            current = [i]
    runs.append(current)
    by_track = dict(tuple(data.notes.groupby("id")))
    out = []
    for run in runs:
        first, last = keys.iloc[run[0]], keys.iloc[run[-1]]
        begin, end = int(first["start"]), int(last["start"] + last["length"])
        end = begin + (end - begin) // DOWNSAMPLING * DOWNSAMPLING
        notes = by_track.get(first["id"], data.notes.iloc[:0])
        notes = notes[(notes["end_time"] > begin) & (notes["start_time"] < end)]
        onsets = notes["start_time"].clip(begin, end).to_numpy() - begin
        offsets = notes["end_time"].clip(begin, end).to_numpy() - begin
        intervals = np.stack([onsets, offsets], axis=1) / SAMPLE_RATE
        out.append((test[np.array(run)], (intervals, notes["note"].to_numpy())))
    return out


@dataclass
class CellInputs:
    """What every model of a cell reads: the task's windows and splits (rows of `data`), the
    embeddings folder (probes), the model folder and audio (end-to-end), loaded features, and
    the pretraining run they belong to."""

    data: TaskData
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    embeddings: Path | None
    model_dir: Path | None
    audio: end_to_end.AudioBatches | None
    cache: dict = field(default_factory=dict)
    run: int = 0


def load_cell(
    index_dir: Path,
    embeddings: Path | None,
    model_dir: Path | None,
    task: str,
    probes: bool,
    unit: str = "work",
    run: int = 0,
):
    """The CellInputs of a task: probes read `embeddings` (checked against the index), end-to-end
    baselines the audio."""
    windows, tracks = load_windows(index_dir, ("train", "val", "test"))
    keys = windows[["id", "start", "length", "split"]]
    if probes:
        embedded = pd.read_parquet(embeddings / "keys.parquet")
        if not embedded[["id", "start"]].equals(keys[["id", "start"]]):
            raise DataError(embeddings, "its windows are not the index's: rerun the embed stage")
    data = TaskData(task, keys, tracks, pd.read_parquet(index_dir / "notes.parquet"), unit)
    train, val, test = data.part("train"), data.part("val"), data.part("test")
    if len(train) == 0 or len(test) == 0:
        raise DataError(index_dir, f"task {task!r} needs train and test windows")
    audio = None if probes else end_to_end.AudioBatches(windows, tracks)
    return CellInputs(data, train, val, test, embeddings, model_dir, audio, run=run)
