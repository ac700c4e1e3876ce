"""A music library as people keep it, file by file (issue #37's cases, written by the tests with
FFmpeg's and libsndfile's own encoders): every valid file decodes, every defect is named with a
position in m:ss.s, and what the decoders print stays with the file it is about."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from jtm.ingest.decode import SHORTFALL_FRAMES, Target, decode_file
from tests.realworld import encode, jump_granule, set_wav_sizes, tones, with_cover_art

RATE = 16_000
TARGET = Target(RATE, "VHQ", "float32", 10.0, 20_480, 10_240)


def decode(path: Path):
    """The file's Decoded and its 16 kHz samples (empty unless ok)."""
    out = path.with_name(path.name + ".raw")
    decoded = decode_file(str(path), out, TARGET)
    samples = np.fromfile(out, np.float32) if decoded.status == "ok" else np.zeros(0, np.float32)
    out.unlink(missing_ok=True)
    return decoded, samples


def best_correlation(got: np.ndarray, want: np.ndarray, most: int = 1600) -> float:
    """Correlation at the best lag within `most` samples (codecs prime and pad)."""
    n = min(len(got), len(want)) - most
    return max(float(np.corrcoef(got[lag : lag + n], want[:n])[0, 1]) for lag in range(0, most, 4))


def source_16k(rate: int, seconds: float, channels: int) -> np.ndarray:
    return soxr.resample(tones(rate, seconds, channels).mean(0), rate, RATE, quality="VHQ")


def test_an_ogg_opus_file_libsndfile_stops_in_is_decoded_whole_by_ffmpeg(tmp_path):
    """FFmpeg's Ogg Opus with a granule position that jumps (a stream cut from a longer one):
    libsndfile fails a second in with the issue's message; the file is ingested through FFmpeg,
    whole, and its notes say what happened and where."""
    path = tmp_path / "stream cut.ogg"
    encode(path, "libopus", 48_000, 2, seconds=30.0, fmt="ogg")
    jump_granule(path, page=2, jump=10**6)
    assert sf.info(path).format == "OGG"  # libsndfile opens it ...
    with pytest.raises(sf.LibsndfileError, match="Supported file format but file is malformed"):
        sf.read(path)  # ... and stops reading it
    decoded, samples = decode(path)
    about = (decoded.status, decoded.decoder, decoded.format, decoded.subtype)
    assert about == ("ok", "ffmpeg", "OGG", "OPUS")
    assert re.match(r"libsndfile: decoder error at 0:0\d\.\d: Supported file format but file is malformed\.; "
                    r"FFmpeg decoded it", decoded.notes), decoded.notes  # fmt: skip
    assert abs(len(samples) - 30 * RATE) <= 0.05 * RATE
    assert best_correlation(samples, source_16k(48_000, 30.0, 2)) > 0.98


@pytest.mark.parametrize("kind", ["adts", "mp3 with cover art"])
def test_a_length_guessed_from_the_bitrate_is_no_reason_to_reject(tmp_path, kind):
    """Raw ADTS AAC and an MP3 without a Xing frame (behind 2 MB of cover art) announce no
    length: the guess misses by more than SHORTFALL_FRAMES (the issue's rejects), the file is
    ingested with `length_known` False, its decoded length within codec padding of the source."""
    rate, seconds = 44_100, 30.0
    if kind == "adts":
        path = tmp_path / "radio.aac"
        encode(path, "aac", rate, 2, seconds=seconds, fmt="adts")
    else:
        path = tmp_path / "Artist - Title [cover].mp3"
        encode(path, "libmp3lame", rate, 2, seconds=seconds, muxer={"write_xing": "0"})
        with_cover_art(path, np.random.default_rng(0).bytes(2_000_000))
    decoded, samples = decode(path)
    assert decoded.status == "ok" and decoded.length_known is False, decoded
    if kind == "adts":
        assert decoded.source_frames - decoded.decoded_frames > SHORTFALL_FRAMES  # rejected before
    assert abs(decoded.decoded_frames - seconds * rate) <= 2 * 1152 + 1105  # priming, padding
    assert best_correlation(samples, source_16k(rate, seconds, 2)) > 0.98


def test_an_mp3_with_a_xing_frame_states_its_length(tmp_path):
    path = tmp_path / "vbr.mp3"
    encode(path, "libmp3lame", 44_100, 2, seconds=3.0)
    with_cover_art(path, b"\xff\xd8" + bytes(50_000))
    decoded, _ = decode(path)
    assert decoded.status == "ok" and decoded.length_known is True


def wav(path: Path, seconds: float, rate: int = 44_100) -> np.ndarray:
    signal = tones(rate, seconds, 2).T
    sf.write(path, signal, rate, subtype="PCM_16")
    return signal


def test_a_wav_gets_the_tolerance_other_formats_get_and_a_cut_beyond_it_is_named_in_seconds(tmp_path):
    """0.3 s short of its header (13 230 frames): ingested, both lengths kept; 1 s short:
    "truncated: 0:09.0 of the 0:10.0 its header announces decode"."""
    wav(tmp_path / "whole.wav", 10.0)
    whole = (tmp_path / "whole.wav").read_bytes()
    for name, missing in (("short.wav", 13_230), ("cut.wav", 44_100)):
        (tmp_path / name).write_bytes(whole[: len(whole) - 4 * missing])
    decoded, samples = decode(tmp_path / "short.wav")
    assert decoded.status == "ok" and (decoded.source_frames, decoded.decoded_frames) == (441_000, 427_770)
    _, reference = decode(tmp_path / "whole.wav")
    np.testing.assert_array_equal(samples[: 16_000 * 9], reference[: 16_000 * 9])
    decoded, _ = decode(tmp_path / "cut.wav")
    assert decoded.status == "error" and decoded.reason == (
        "truncated: 0:09.0 of the 0:10.0 its header announces decode (396900 of 441000 frames)"
    )


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0])
def test_a_wav_written_to_a_pipe_is_read_to_its_end(tmp_path, size):
    """Sizes a writer that could not seek back leaves: every sample decodes, equal to the same
    WAV with its sizes filled in."""
    wav(tmp_path / "whole.wav", 3.0)
    (tmp_path / "piped.wav").write_bytes((tmp_path / "whole.wav").read_bytes())
    set_wav_sizes(tmp_path / "piped.wav", size)
    decoded, samples = decode(tmp_path / "piped.wav")
    _, reference = decode(tmp_path / "whole.wav")
    assert decoded.status == "ok" and decoded.decoded_frames == 3 * 44_100 and decoded.length_known is False
    np.testing.assert_allclose(samples, reference, atol=1e-6)


def damaged_flac(path: Path) -> None:
    """20 s of FLAC with 3 000 bytes of noise in the middle (a bad sector, a bad copy)."""
    sf.write(path, tones(44_100, 20.0, 2).T, 44_100)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = np.random.default_rng(1).bytes(3000)
    path.write_bytes(bytes(data))


def test_a_damaged_file_plays_on_as_a_player_would_and_says_where(tmp_path):
    """libsndfile gives up where the noise is; FFmpeg skips the damaged frames: the file is used,
    its notes name libsndfile's error with its position and FFmpeg's own complaints."""
    damaged_flac(tmp_path / "scratched.flac")
    decoded, samples = decode(tmp_path / "scratched.flac")
    assert decoded.status == "ok" and decoded.decoder == "ffmpeg"
    assert re.search(r"libsndfile: decoder error at 0:\d\d\.\d: .*lost sync", decoded.notes), decoded.notes
    assert "invalid sync code" in decoded.notes or "invalid frame header" in decoded.notes
    assert abs(len(samples) - 20 * RATE) < 0.5 * RATE


def test_what_the_decoders_print_goes_to_the_file_s_notes_not_the_terminal(tmp_path, capfd):
    """libsndfile's MP3 decoder prints its resync notes straight to fd 2, naming no file."""
    encode(tmp_path / "clean.mp3", "libmp3lame", 44_100, 2, seconds=20.0)
    data = bytearray((tmp_path / "clean.mp3").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = np.random.default_rng(1).bytes(3000)
    (tmp_path / "garbled.mp3").write_bytes(bytes(data))
    capfd.readouterr()
    decoded, _ = decode(tmp_path / "garbled.mp3")
    printed = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" in decoded.notes and "Illegal Audio-MPEG-Header" not in printed
    assert "FFmpeg skipped" in decoded.notes  # the damaged packets, with where they were
    clean, _ = decode(tmp_path / "clean.mp3")
    assert clean.notes == ""  # nothing leaks from one file's decoding into the next's


def png(width: int, height: int) -> bytes:
    """A grey RGB PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"".join(b"\x00" + bytes([128] * 3 * width) for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_files_that_are_not_audio_or_are_cut_off_say_which(tmp_path):
    """A cut-off M4A is damaged audio (FFmpeg's own reason quoted), a PNG named .flac is an
    image, a text file named .mp3 is not audio at all."""
    encode(tmp_path / "whole.m4a", "aac", 44_100, 2, seconds=5.0)
    data = (tmp_path / "whole.m4a").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 2])
    (tmp_path / "cover.flac").write_bytes(png(16, 16))
    (tmp_path / "notes.mp3").write_text("a text file named .mp3\n")
    reasons = {name: decode(tmp_path / name)[0].reason for name in ("cut.m4a", "cover.flac", "notes.mp3")}
    assert reasons["cut.m4a"].startswith("damaged or cut off: it begins as MP4/M4A does")
    assert "moov atom not found" in reasons["cut.m4a"]
    assert reasons["cover.flac"].startswith("not an audio file: a PNG image named .flac")
    assert reasons["notes.mp3"].startswith("not an audio file")


def library(root: Path) -> tuple[dict[str, float], dict[str, str]]:
    """A library as people keep it, six folder levels deep: {valid file: seconds of audio} and
    {defective file: the words its reason starts with}. Every valid file is 2 s long (less the
    0.3 s a cut WAV lacks)."""
    deep = root / "Classical" / "Bach, J.S." / "Cantatas [1724]" / "CD 1" / "Disc A" / "Müller"
    deep.mkdir(parents=True)
    valid = {}

    def add(folder: Path, name: str, codec: str, rate: int, channels: int = 2, **options) -> None:
        encode(folder / name, codec, rate, channels, seconds=2.0, **options)
        valid[str(folder / name)] = 2.0

    def native(folder: Path, name: str, rate: int, channels: int, kind: str, subtype: str) -> None:
        audio = np.resize(tones(rate, 2.0, 2).T, (2 * rate, channels))
        sf.write(folder / name, audio, rate, format=kind, subtype=subtype)
        valid[str(folder / name)] = 2.0

    add(root, "Artist - Title [dQw4w9WgXcQ].mp3", "libmp3lame", 44_100)
    add(root, "-leading dash.mp3", "libmp3lame", 22_050, 1)
    add(deep, "no xing.mp3", "libmp3lame", 44_100, muxer={"write_xing": "0"})
    with_cover_art(deep / "no xing.mp3", np.random.default_rng(2).bytes(400_000))
    add(deep, "aac.m4a", "aac", 48_000)
    add(deep, "alac.m4a", "alac", 44_100)
    add(deep, "opus.opus", "libopus", 48_000)
    add(deep, "opus from ffmpeg.ogg", "libopus", 48_000, fmt="ogg")
    add(deep, "opus.webm", "libopus", 48_000)
    add(deep, "flac.mka", "flac", 96_000)
    add(deep, "video.mkv", "aac", 44_100, video=True)
    add(deep, "video.mp4", "aac", 44_100, video=True)
    add(deep, "wma.wma", "wmav2", 44_100, fmt="asf")
    add(deep, "radio.aac", "aac", 44_100, fmt="adts")
    native(deep, "Café.flac".replace("é", "\u00e9"), 96_000, 2, "FLAC", "PCM_24")
    native(deep, "Noël.ogg".replace("ë", "e\u0308"), 44_100, 2, "OGG", "VORBIS")  # NFD
    native(deep, "surround 5.1.flac", 48_000, 6, "FLAC", "PCM_16")
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "FLOAT"):
        native(deep, f"{subtype}.wav", 44_100, 2, "WAV", subtype)
    native(deep, "aiff.aiff", 44_100, 2, "AIFF", "PCM_16")
    whole = (deep / "PCM_16.wav").read_bytes()
    (deep / "cut 0.3 s.wav").write_bytes(whole[: len(whole) - 4 * 13_230])
    valid[str(deep / "cut 0.3 s.wav")] = 2.0 - 0.3
    (deep / "piped.wav").write_bytes(whole)
    set_wav_sizes(deep / "piped.wav", 0xFFFFFFFF)
    valid[str(deep / "piped.wav")] = 2.0
    jump_granule(Path(valid_path := str(deep / "opus from ffmpeg.ogg")), page=2, jump=10**6)
    assert Path(valid_path).is_file()
    return valid, defects(root / "defects", whole)


def defects(folder: Path, wav_bytes: bytes) -> dict[str, str]:
    folder.mkdir()
    (folder / "empty.flac").write_bytes(b"")
    (folder / "text.mp3").write_text("a text file named .mp3\n")
    (folder / "cover.flac").write_bytes(png(32, 32))
    encode(folder / "whole.m4a", "aac", 44_100, 2, seconds=4.0)
    data = (folder / "whole.m4a").read_bytes()
    (folder / "whole.m4a").unlink()
    (folder / "cut.m4a").write_bytes(data[: len(data) // 2])
    (folder / "half.wav").write_bytes(wav_bytes[: len(wav_bytes) // 2])
    encode(folder / "silent.mp4", "aac", 44_100, video=True, audio=False)
    (folder / "dangling.mp3").symlink_to(folder / "gone.mp3")
    return {
        "empty.flac": "empty file",
        "text.mp3": "not an audio file",
        "cover.flac": "not an audio file: a PNG image named .flac",
        "cut.m4a": "damaged or cut off",
        "half.wav": "truncated: 0:01.0 of the 0:02.0",
        "silent.mp4": "no audio stream",
    }


def test_a_library_of_every_kind_ingests_every_valid_file_and_names_every_defect(
    tiny_params, tmp_path, caplog
):
    """The issue's library in small: every valid file ingested (0 rejected), its length that of
    its source within codec padding; every defect rejected with its reason, and named in the log;
    the dangling link skipped, never a crash."""
    from jtm.runner import run_stage
    from tests.test_ingest import ingest_params

    valid, bad = library(tmp_path / "music")
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}])
    with caplog.at_level("INFO"):
        metrics = run_stage("ingest", params)
    out = Path(params["paths"]["ingest"])
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("path")
    assert sorted(manifest.index) == sorted(valid) and metrics["ingested"] == len(valid)
    for path, seconds in valid.items():
        samples = manifest.loc[path, "samples"]
        assert abs(samples / RATE - seconds) < 0.08, (path, samples)
    rejects = pd.read_parquet(out / "rejects.parquet")
    reasons = {Path(r.path).name: r.reason for r in rejects.itertuples()}
    assert reasons.keys() == bad.keys()
    for name, words in bad.items():
        assert reasons[name].startswith(words), (name, reasons[name])
    logged = caplog.text
    for row in rejects.itertuples():
        assert f"  {row.path}: {row.reason}" in logged
    assert "dangling link" in logged and "used with decoder notes" in logged
