"""Render note events through a General MIDI SoundFont (TinySoundFont, pip-installable).

The synthesiser is driven event by event, sample-exact: what the labels say is what sounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jtm.errors import DataError

_DRUM_CHANNEL = 9  # General MIDI percussion: never used for pitched parts


def default_soundfont() -> Path:
    """TimGM6mb.sf2, the small GM SoundFont that pretty_midi ships."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def resolve_soundfont(path: str | None) -> Path:
    soundfont = default_soundfont() if path is None else Path(path)
    if not soundfont.is_file():
        raise DataError(soundfont, "SoundFont not found")
    return soundfont


def synthesize(
    soundfont: Path,
    channel_programs: list[int],
    channel: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    n_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """Mono float32 audio, shape (n_samples,), of the given notes.

    `channel_programs[c]` is the 1-based GM program of channel c (at most 15 channels);
    per note: channel index, MIDI pitch, velocity 1-127, start/end sample (end exclusive).
    Notes on one channel and pitch must not overlap (the caller trims them).
    """
    import tinysoundfont

    if len(channel_programs) > 15:
        raise ValueError(f"at most 15 pitched channels, got {len(channel_programs)}")
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        sfid = synth.sfload(str(soundfont))
    except Exception as err:  # tinysoundfont raises its own type for unreadable fonts
        raise DataError(soundfont, f"cannot load SoundFont: {err}") from err
    midi_channels = [c if c < _DRUM_CHANNEL else c + 1 for c in range(len(channel_programs))]
    for midi_channel, program in zip(midi_channels, channel_programs, strict=True):
        synth.program_select(midi_channel, sfid, 0, program - 1)
    # One event list: (sample, kind, channel, pitch, velocity); note-offs (kind 0) sort first
    # so a repeated pitch is released before it is struck again.
    times = np.concatenate([end, start])
    kinds = np.concatenate([np.zeros(len(end), int), np.ones(len(start), int)])
    order = np.lexsort((kinds, times))
    audio = np.empty(n_samples, dtype=np.float32)
    position = 0
    for i in order:
        when = min(int(times[i]), n_samples)
        if when > position:
            _render_into(synth, audio, position, when)
            position = when
        note = i % len(start)
        midi_channel = midi_channels[int(channel[note])]
        if kinds[i]:
            synth.noteon(midi_channel, int(pitch[note]), int(velocity[note]))
        else:
            synth.noteoff(midi_channel, int(pitch[note]))
    if position < n_samples:
        _render_into(synth, audio, position, n_samples)
    return audio


def _render_into(synth, audio: np.ndarray, begin: int, end: int) -> None:
    stereo = np.frombuffer(synth.generate_simple(end - begin), dtype=np.float32)
    audio[begin:end] = 0.5 * (stereo[0::2] + stereo[1::2])
