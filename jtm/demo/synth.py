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


# General MIDI SoundFonts that Debian packages, by the short name params may give them
PACKAGED = {
    "fluid": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "musescore": ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    "opl3": ("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont"),
}


def resolve_soundfont(name: str | None) -> Path:
    """The file of a SoundFont: None (pretty_midi's TimGM6mb), a `PACKAGED` short name, or a path."""
    if name is None:
        return default_soundfont()
    if name in PACKAGED:
        path, package = PACKAGED[name]
        if not Path(path).is_file():
            raise DataError(path, f"SoundFont {name!r} not found: install it with `apt install {package}`")
        return Path(path)
    if not Path(name).is_file():
        raise DataError(name, f"SoundFont not found (a path, or one of {sorted(PACKAGED)})")
    return Path(name)


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
    synth, midi_channels = _synth(soundfont, channel_programs, sample_rate)
    return _play(synth, midi_channels, channel, pitch, velocity, start, end, n_samples)


def synthesize_stems(
    soundfont: Path,
    channel_programs: list[int],
    channel: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    n_samples: int,
    sample_rate: int,
    bends: list[tuple[float, object]] | None = None,
) -> np.ndarray:
    """float32 (channels, n_samples): each channel's notes alone (arguments as `synthesize`).

    `bends[c]`: (detune in semitones, function of seconds (m,) -> pitch bend values (m,)),
    applied every 10 ms, or None for none. One synthesiser plays the channels one after the
    other, all voices silenced in between, so a stem holds its own channel alone.
    """
    synth, midi_channels = _synth(soundfont, channel_programs, sample_rate)
    stems = np.zeros((len(channel_programs), n_samples), dtype=np.float32)
    tick = sample_rate // 100
    for c in range(len(channel_programs)):
        mine = channel == c
        control = None
        if bends is not None and bends[c] is not None:
            detune, bend_of = bends[c]
            synth.set_tuning(midi_channels[c], detune)
            ticks = np.arange(0, n_samples, tick)
            control = (ticks, bend_of(ticks / sample_rate), midi_channels[c])
        args = (a[mine] for a in (channel, pitch, velocity, start, end))
        stems[c] = _play(synth, midi_channels, *args, n_samples, control)
        synth.sounds_off()
    return stems


def _synth(soundfont: Path, channel_programs: list[int], sample_rate: int):
    """(a TinySoundFont synthesiser with each channel's program, the MIDI channel of each)."""
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
    return synth, midi_channels


def _play(synth, midi_channels, channel, pitch, velocity, start, end, n_samples, control=None) -> np.ndarray:
    """(n_samples,) float32 of the notes, sample-exact; `control`: (samples, pitch bend values,
    MIDI channel) of bends, or None."""
    # One event list: note-offs (kind 0) sort before bends (1) and note-ons (2) at one sample,
    # so a repeated pitch is released before it is struck again.
    n_bends = 0 if control is None else len(control[0])
    times = np.concatenate([end, start] + ([] if control is None else [control[0]]))
    kinds = np.concatenate([np.zeros(len(end), int), np.full(len(start), 2), np.ones(n_bends, int)])
    order = np.lexsort((kinds, times))
    audio = np.empty(n_samples, dtype=np.float32)
    position = 0
    for i in order:
        when = min(int(times[i]), n_samples)
        if when > position:
            _render_into(synth, audio, position, when)
            position = when
        if kinds[i] == 1:
            synth.pitchbend(control[2], int(control[1][i - 2 * len(start)]))
            continue
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
