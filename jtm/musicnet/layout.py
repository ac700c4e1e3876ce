"""The MusicNet data contract: the on-disk layout every stage reads, and its checks.

Layout (Thickstun et al.; identical for the real archive and the demo corpus)::

    <raw>/musicnet_metadata.csv           id,composer,composition,movement,ensemble,source,
                                          transcriber,catalog_name,seconds
    <raw>/musicnet/train_data/<id>.wav    mono, 44 100 Hz, any PCM or float subtype
    <raw>/musicnet/train_labels/<id>.csv  start_time,end_time,instrument,note,
    <raw>/musicnet/test_data/<id>.wav       start_beat,end_beat,note_value
    <raw>/musicnet/test_labels/<id>.csv
    <raw>/recordings.csv                  optional (rendered corpora): id,performance,soundfont,
                                          room,heard,level_db,snr_db

Label rows: start/end are sample indices at 44.1 kHz; instrument is a 1-based General MIDI
program (one of `INSTRUMENTS`); note is a MIDI pitch; start_beat is the onset in beats and
end_beat the duration in beats (MusicNet's naming); note_value a name such as "Quarter".

recordings.csv says how each track was recorded (jtm/demo/render.py): `performance` is the id
of the performance's first track (tracks of one performance differ by the recording alone),
`heard` is "seen" where train and validation recordings use the condition (SoundFont and
room), "unseen" where none does. Real MusicNet has no such file: its conditions are unknown.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from jtm.errors import DataError

SAMPLE_RATE = 44_100
SPLITS = ("train", "test")
METADATA_FILE = "musicnet_metadata.csv"
METADATA_COLUMNS = (
    "id",
    "composer",
    "composition",
    "movement",
    "ensemble",
    "source",
    "transcriber",
    "catalog_name",
    "seconds",
)
RECORDINGS_FILE = "recordings.csv"
RECORDING_COLUMNS = ("id", "performance", "soundfont", "room", "heard", "level_db", "snr_db")
HEARD = ("seen", "unseen")
LABEL_COLUMNS = (
    "start_time",
    "end_time",
    "instrument",
    "note",
    "start_beat",
    "end_beat",
    "note_value",
)
# MusicNet's 11 instruments, as 1-based General MIDI programs.
INSTRUMENTS = {
    1: "Piano",
    7: "Harpsichord",
    41: "Violin",
    42: "Viola",
    43: "Cello",
    44: "Contrabass",
    61: "Horn",
    69: "Oboe",
    71: "Bassoon",
    72: "Clarinet",
    74: "Flute",
}


@dataclasses.dataclass(frozen=True)
class TrackFiles:
    """One recording: its id, split and the two files that describe it."""

    id: int
    split: str
    wav: Path
    labels: Path


def wav_path(raw: Path, split: str, track_id: int) -> Path:
    return Path(raw) / "musicnet" / f"{split}_data" / f"{track_id}.wav"


def labels_path(raw: Path, split: str, track_id: int) -> Path:
    return Path(raw) / "musicnet" / f"{split}_labels" / f"{track_id}.csv"


def _require_columns(path: Path, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected {list(columns)}")


def _numeric(path: Path, frame: pd.DataFrame, column: str, integer: bool) -> pd.Series:
    """Column as numbers, or a DataError naming the first bad row."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (integer & (values.round() != values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "an integer" if integer else "a number"
        raise DataError(path, f"{column}={frame[column].iloc[row]!r} is not {kind}", row=row + 1)
    return values.astype("int64") if integer else values.astype("float64")


def read_metadata(path: str | Path) -> pd.DataFrame:
    """Read and check musicnet_metadata.csv: all columns present, ids unique integers."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read metadata: {err}") from err
    _require_columns(path, frame, METADATA_COLUMNS)
    frame["id"] = _numeric(path, frame, "id", integer=True)
    frame["seconds"] = _numeric(path, frame, "seconds", integer=False)
    duplicated = frame["id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(path, f"id {frame['id'].iloc[row]} appears twice", row=row + 1)
    return frame


def read_recordings(raw: str | Path, ids: Iterable[int]) -> pd.DataFrame | None:
    """recordings.csv of the tree at `raw` (None if it has none), checked: its columns, one row
    per id of `ids`, `heard` seen or unseen."""
    path = Path(raw) / RECORDINGS_FILE
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read recordings: {err}") from err
    _require_columns(path, frame, RECORDING_COLUMNS)
    for column in ("id", "performance"):
        frame[column] = _numeric(path, frame, column, integer=True)
    bad = ~frame["heard"].isin(HEARD)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"heard={frame['heard'].iloc[row]!r}: expected one of {HEARD}", row=row + 1)
    missing = sorted(set(ids) - set(frame["id"]))
    if missing or frame["id"].duplicated().any():
        raise DataError(path, f"needs exactly one row per track: missing ids {missing[:5]}, or repeated ids")
    return frame[list(RECORDING_COLUMNS)]


def read_labels(path: str | Path, n_samples: int | None = None) -> pd.DataFrame:
    """Read and check one label CSV; `n_samples` (the WAV's length) bounds the note times."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read labels: {err}") from err
    _require_columns(path, frame, LABEL_COLUMNS)
    frame = frame[list(LABEL_COLUMNS)]
    integers, floats = ("start_time", "end_time", "instrument", "note"), ("start_beat", "end_beat")
    typed = all(pd.api.types.is_integer_dtype(frame[c]) for c in integers) and all(
        pd.api.types.is_numeric_dtype(frame[c]) for c in floats
    )
    if not typed:  # slow path, only for bad files: find the first row that is not a number
        frame = frame.astype({c: str for c in integers + floats})
        for column in integers + floats:
            frame[column] = _numeric(path, frame, column, integer=column in integers)
    frame = frame.astype({"note_value": str, **{c: "float64" for c in floats}})
    checks = [
        (frame["start_time"] < 0, "start_time is negative"),
        (frame["end_time"] < frame["start_time"], "end_time < start_time"),
        (~frame["instrument"].isin(list(INSTRUMENTS)), "unknown instrument code"),
        ((frame["note"] < 0) | (frame["note"] > 127), "note is not a MIDI pitch (0-127)"),
    ]
    if n_samples is not None:
        checks.append((frame["start_time"] > n_samples, f"start_time beyond the audio ({n_samples} samples)"))
    for bad, message in checks:
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            values = frame.iloc[row][["start_time", "end_time", "instrument", "note"]].to_dict()
            raise DataError(path, f"{message}: {values}", row=row + 1)
    return frame


def riff_data_shortfall(path: Path) -> int:
    """Bytes the WAV's `data` chunk declares but the file lacks (0 for a complete file).

    libsndfile silently shortens a truncated WAV to what is present, so we read the RIFF chunk
    headers ourselves: (id: 4 bytes, size: uint32 little-endian), padded to even sizes.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0  # not plain RIFF/WAVE (RF64, W64, ...): leave it to libsndfile
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                return max(0, position + 8 + chunk_size - size)
            position += 8 + chunk_size + (chunk_size & 1)
    return 0


def check_wav(path: str | Path) -> sf._SoundFileInfo:
    """Open a WAV header and check it is complete, mono and 44.1 kHz; return soundfile's info."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise DataError(path, f"unreadable audio: {err}") from err
    if info.samplerate != SAMPLE_RATE:
        raise DataError(path, f"sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
    if info.channels != 1:
        raise DataError(path, f"{info.channels} channels, expected mono")
    if info.frames == 0:
        raise DataError(path, "no audio samples")
    shortfall = riff_data_shortfall(path)
    if shortfall:
        raise DataError(path, f"truncated: the data chunk is {shortfall} bytes short")
    return info


# Subtypes that can hold NaN or infinity (integer PCM cannot).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
CHECK_BLOCK = 1 << 20  # samples per block when scanning a file for non-finite samples


def first_non_finite(samples: np.ndarray) -> int | None:
    """Index of the first NaN or infinite sample of a 1-D array, or None."""
    bad = np.flatnonzero(~np.isfinite(samples))
    return int(bad[0]) if len(bad) else None


def non_finite_error(path: str | Path, sample: int, rate: int, value: float) -> DataError:
    return DataError(
        path, f"non-finite sample ({value}) at {sample / rate:.3f} s (sample {sample}): damaged audio"
    )


def check_finite_blocks(path: str | Path, blocks: Iterable[np.ndarray], rate: int) -> None:
    """Raise a DataError naming `path` and the time of its first NaN or infinite sample, reading
    the file's consecutive 1-D `blocks` (`rate` Hz) one at a time (bounded memory)."""
    offset = 0
    for block in blocks:
        bad = first_non_finite(block)
        if bad is not None:
            raise non_finite_error(path, offset + bad, rate, float(block[bad]))
        offset += len(block)


def check_finite_wav(path: str | Path, info: sf._SoundFileInfo | None = None) -> None:
    """Scan a float WAV for NaN or infinite samples (integer PCM cannot hold them)."""
    info = info or sf.info(str(path))
    if info.subtype in FLOAT_SUBTYPES:
        blocks = sf.blocks(str(path), blocksize=CHECK_BLOCK, dtype="float32")
        check_finite_blocks(path, blocks, info.samplerate)


def _raise(error: DataError) -> None:
    raise error


def discover(
    raw: str | Path, report: Callable[[DataError], None] = _raise
) -> tuple[pd.DataFrame, list[TrackFiles]]:
    """Match metadata rows to WAV and label files, reporting any orphan or gap.

    `report` raises by default (stop at the first problem); `jtm validate --all` passes one that
    collects. Returns the checked metadata and one `TrackFiles` per complete id, sorted by id.
    """
    raw = Path(raw)
    metadata_path = raw / METADATA_FILE
    if not metadata_path.is_file():
        raise DataError(metadata_path, "metadata file not found")
    if not (raw / "musicnet").is_dir():
        raise DataError(raw / "musicnet", "MusicNet folder not found")
    metadata = read_metadata(metadata_path)
    known = set(metadata["id"])
    found: dict[int, TrackFiles] = {}
    for split in SPLITS:
        for kind, folder in (("wav", f"{split}_data"), ("csv", f"{split}_labels")):
            for file in sorted((raw / "musicnet" / folder).glob(f"*.{kind}")):
                if not file.stem.isdigit():
                    report(DataError(file, "file name is not a numeric MusicNet id"))
                elif int(file.stem) not in known:
                    report(DataError(file, f"id {file.stem} has no row in {metadata_path.name}"))
        for file in sorted((raw / "musicnet" / f"{split}_data").glob("*.wav")):
            if not file.stem.isdigit() or int(file.stem) not in known:
                continue  # reported above
            track_id = int(file.stem)
            labels = labels_path(raw, split, track_id)
            if not labels.is_file():
                report(DataError(file, f"no label file {labels}"))
            elif track_id in found:
                report(DataError(file, f"id {track_id} is in both {found[track_id].split} and {split}"))
            else:
                found[track_id] = TrackFiles(track_id, split, file, labels)
    for row, track_id in enumerate(metadata["id"], start=1):
        if track_id not in found and not any(wav_path(raw, s, track_id).is_file() for s in SPLITS):
            report(
                DataError(metadata_path, f"id {track_id} has no WAV in train_data/ or test_data/", row=row)
            )
    return metadata.sort_values("id", ignore_index=True), [found[i] for i in sorted(found)]


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command; soundfile does not wrap it


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write mono audio as a WAV whose bytes depend only on the samples.

    libsndfile adds a PEAK chunk with a wall-clock time stamp to float WAVs; we switch it off
    so the same render gives byte-identical files (DVC and Snakemake runs compare equal).
    """
    with sf.SoundFile(str(path), "w", sample_rate, 1, subtype, format="WAV") as handle:
        sf._snd.sf_command(handle._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        handle.write(audio)
