"""Stage `ingest` on real files the test writes: several formats, rates and channel counts,
bad files of every kind, duplicates, a SIGKILL half-way and the rerun that resumes it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch
import yaml

from jtm.config import set_dotted
from jtm.ingest.decode import SHORTFALL_FRAMES
from jtm.runner import run_stage
from tests.realworld import announce_more, encode, tones

RATE = 16_000


def stereo(rate: int, seconds: float) -> np.ndarray:
    """(frames, 2): 440 Hz on the left, 660 Hz on the right; their mean is what ingest keeps."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1)


# name: (format, subtype, rate, channels, lossless)
FORMATS = {
    "pcm16_mono_44k.wav": ("WAV", "PCM_16", 44_100, 1, True),
    "float_stereo_48k.wav": ("WAV", "FLOAT", 48_000, 2, True),
    "flac_stereo_22k.flac": ("FLAC", "PCM_16", 22_050, 2, True),
    "vorbis_stereo_44k.ogg": ("OGG", "VORBIS", 44_100, 2, False),
    "opus_mono_48k.opus": ("OGG", "OPUS", 48_000, 1, False),
    "mp3_stereo_44k.mp3": ("MP3", "MPEG_LAYER_III", 44_100, 2, False),
}


def write_formats(folder: Path, seconds: float = 2.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (kind, subtype, rate, channels, _) in FORMATS.items():
        audio = stereo(rate, seconds)[:, :channels]
        sf.write(folder / name, audio, rate, format=kind, subtype=subtype)


def ingest_params(params: dict, corpora: list[dict], **ingest) -> dict:
    set_dotted(params, "ingest.corpora", corpora)
    for key, value in ingest.items():
        set_dotted(params, f"ingest.{key}", value)
    return params


def shard_audio(out: Path, row) -> np.ndarray:
    data = np.memmap(out / row.shard, dtype=np.float32, mode="r")
    return np.asarray(data[row.offset : row.offset + row.samples])


def test_every_format_rate_and_channel_count_becomes_mono_16k(tiny_params, tmp_path):
    write_formats(tmp_path / "music")
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}])
    metrics = run_stage("ingest", params)
    assert metrics["ingested"] == len(FORMATS) and metrics["errors"] == 0
    out = Path(params["paths"]["ingest"])
    manifest = pd.read_parquet(out / "manifest.parquet").set_index(
        pd.read_parquet(out / "manifest.parquet")["path"].map(lambda p: Path(p).name)
    )
    for name, (kind, _, rate, channels, lossless) in FORMATS.items():
        row = manifest.loc[name]
        assert (row.format, row.source_rate, row.channels) == (kind, rate, channels)
        got = shard_audio(out, row)
        decoded = sf.read(tmp_path / "music" / name, dtype="float32", always_2d=True)[0].mean(axis=1)
        assert abs(len(got) - len(decoded) * RATE / rate) <= 1
        if lossless:  # the file's own samples, averaged, resampled by soxr
            want = soxr.resample(decoded, rate, RATE, quality="VHQ")
            np.testing.assert_allclose(got, want[: len(got)], atol=2e-3)
        spectrum = np.abs(np.fft.rfft(got[RATE // 4 : RATE // 4 + RATE]))  # 1 s: 1 Hz bins
        assert abs(int(np.argmax(spectrum)) - 440) <= 2, name  # the louder channel's tone, in every file
        if channels == 2:
            assert spectrum[660] > 0.2 * spectrum[440], name  # both channels are in the mono mix
    corpora = yaml.safe_load((out / "corpora.json").read_text())
    assert corpora["corpora"]["lib"]["files"] == len(FORMATS) and corpora["sample_rate"] == RATE


# name: (codec, rate, channels, options, FFmpeg's container and codec names)
FFMPEG_FORMATS = {
    "aac_stereo_44k.m4a": ("aac", 44_100, 2, {}, "M4A", "AAC"),
    "wma_stereo_44k.wma": ("wmav2", 44_100, 2, {"fmt": "asf"}, "ASF", "WMAV2"),
    "opus_mono_48k.webm": ("libopus", 48_000, 1, {}, "WEBM", "OPUS"),
    "video_aac_48k.mp4": ("aac", 48_000, 2, {"video": True}, "MP4", "AAC"),  # a video's sound track
}
# MP3s written by FFmpeg's LAME, with and without the Xing/LAME header that carries the frame
# count: libsndfile reads both (its own format and subtype names)
MP3S = {
    "xing.mp3": ("libmp3lame", 44_100, 2, {}, "MP3", "MPEG_LAYER_III"),
    "no_xing.mp3": ("libmp3lame", 44_100, 2, {"muxer": {"write_xing": "0"}}, "MP3", "MPEG_LAYER_III"),
}


def correlation_at_best_lag(got: np.ndarray, want: np.ndarray, rate: int, most: float = 0.1) -> float:
    """Normalised correlation of `got` with `want` at the best lag within +-`most` seconds
    (codecs' priming shifts a decoded file), over the middle second."""
    middle = want[rate // 2 : rate // 2 + rate]
    best = 0.0
    for lag in range(-int(most * rate), int(most * rate) + 1):
        part = got[rate // 2 + lag : rate // 2 + lag + rate]
        if len(part) == len(middle):
            best = max(best, float(np.dot(part, middle) / (np.linalg.norm(part) * np.linalg.norm(middle))))
    return best


def test_what_libsndfile_cannot_read_ffmpeg_decodes_a_videos_sound_track_too(tiny_params, tmp_path):
    """A folder of M4A, WMA, WebM and a video (none of it even a candidate before), and MP3s
    with and without a Xing header: every file ingested, at 16 kHz mono, its length within
    codec slack, correlating with the source's mono mix (lossy codecs: not bit-exact)."""
    (tmp_path / "music").mkdir()
    for name, (codec, rate, channels, options, *_) in (FFMPEG_FORMATS | MP3S).items():
        encode(tmp_path / "music" / name, codec, rate, channels, seconds=2.0, **options)
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}])
    metrics = run_stage("ingest", params)
    assert (metrics["ingested"], metrics["errors"]) == (len(FFMPEG_FORMATS) + len(MP3S), 0)
    out = Path(params["paths"]["ingest"])
    manifest = pd.read_parquet(out / "manifest.parquet")
    manifest.index = manifest["path"].map(lambda p: Path(p).name)
    for name, (_, rate, channels, _, container, codec) in (FFMPEG_FORMATS | MP3S).items():
        row = manifest.loc[name]
        decoder = "libsndfile" if name in MP3S else "ffmpeg"
        about = (row.decoder, row.format, row.subtype, row.source_rate, row.channels)
        assert about == (decoder, container, codec, rate, channels), name
        assert abs(row.samples - 2 * RATE) <= 0.1 * RATE, (name, row.samples)  # priming, padding
        assert abs(row.decoded_frames * RATE / rate - row.samples) <= 1, name
        got = shard_audio(out, row)
        want = soxr.resample(tones(rate, 2.0, channels).mean(0), rate, RATE, quality="VHQ")
        assert correlation_at_best_lag(got, want, RATE) > 0.99, name


def test_a_header_announcing_a_few_codec_blocks_more_than_decode_is_no_reason_to_reject(
    tiny_params, tmp_path
):
    """Ogg's last granule position announcing more than decodes (the issue's library: 5 806
    frames over): within SHORTFALL_FRAMES it is ingested with both counts kept; one frame
    more and it is a truncated file."""
    folder = tmp_path / "music"
    folder.mkdir()
    audio, rate = stereo(44_100, 2.0), 44_100
    sf.write(folder / "probe.ogg", audio, rate, format="OGG", subtype="VORBIS")
    announce_more(folder / "probe.ogg", 10**6)  # the decoder then keeps the last packet whole
    decoded = len(sf.read(folder / "probe.ogg")[0])
    (folder / "probe.ogg").unlink()
    for name, shortfall in (
        ("issue.ogg", 5806),
        ("within.ogg", SHORTFALL_FRAMES),
        ("beyond.ogg", SHORTFALL_FRAMES + 1),
    ):
        sf.write(folder / name, audio, rate, format="OGG", subtype="VORBIS")
        announce_more(folder / name, decoded + shortfall - len(audio))
        assert sf.info(folder / name).frames == decoded + shortfall  # what the header announces now
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(folder)], "weight": 1.0}])
    metrics = run_stage("ingest", params)
    assert (metrics["ingested"], metrics["errors"]) == (2, 1)
    out = Path(params["paths"]["ingest"])
    manifest = pd.read_parquet(out / "manifest.parquet")
    manifest.index = manifest["path"].map(lambda p: Path(p).name)
    for name, shortfall in (("issue.ogg", 5806), ("within.ogg", SHORTFALL_FRAMES)):
        assert manifest.loc[name, "source_frames"] - manifest.loc[name, "decoded_frames"] == shortfall
        assert manifest.loc[name, "decoded_frames"] == decoded
    (reject,) = pd.read_parquet(out / "rejects.parquet").itertuples()
    announced = decoded + SHORTFALL_FRAMES + 1
    assert Path(reject.path).name == "beyond.ogg" and reject.reason == (
        f"truncated: 0:{decoded / rate:04.1f} of the 0:{announced / rate:04.1f} its header announces "
        f"decode ({decoded} of {announced} frames)"
    )


def test_every_file_under_the_folders_is_accounted_for(tiny_params, tmp_path, caplog):
    """Used per format (files, hours), rejected per reason, and the rest skipped as not audio
    by extension: in the log, the metrics and corpora.json. A file without an extension is
    probed: audio inside is a candidate."""
    folder = tmp_path / "music"
    folder.mkdir()
    sf.write(folder / "a.ogg", stereo(44_100, 2.0), 44_100, format="OGG", subtype="VORBIS")
    encode(folder / "b.m4a", "aac", 44_100, seconds=3.0)
    encode(folder / "track07", "aac", 44_100, seconds=2.0, fmt="mp4")  # audio without an extension
    (folder / "notes.mp3").write_text("not audio\n")
    sf.write(folder / "short.wav", np.zeros(RATE // 4), RATE)
    for name in ("cover.jpg", "back.jpg", "list.m3u", "README"):
        (folder / name).write_text("not audio\n")
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(folder)], "weight": 1.0}])
    with caplog.at_level("INFO", logger="jtm.ingest.account"):
        metrics = run_stage("ingest", params)
    assert (metrics["files"], metrics["ingested"], metrics["skipped_not_audio"]) == (5, 3, 4)
    corpora = yaml.safe_load((Path(params["paths"]["ingest"]) / "corpora.json").read_text())
    assert corpora["corpora"]["lib"]["skipped_not_audio"] == {".jpg": 2, ".m3u": 1, "(none)": 1}
    lines = [r.getMessage().split() for r in caplog.records if r.name == "jtm.ingest.account"]
    assert lines[0][:3] == ["ingest:", "9", "files"]
    assert ["used", "M4A/AAC", "1", "file,", "3.0", "s"] in lines
    assert ["used", "MOV/AAC", "1", "file,", "2.0", "s"] in lines  # track07: FFmpeg names its family "mov"
    assert ["used", "OGG/VORBIS", "1", "file,", "2.0", "s"] in lines
    assert ["rejected", "not", "an", "audio", "file", "1", "file"] in lines
    assert ["rejected", "shorter", "than", "one", "window", "1", "file"] in lines
    assert ["skipped:", "not", "audio", ".jpg", "2", "files"] in lines


def write_bad_files(folder: Path) -> dict[str, str]:
    """Each bad file and the word its reason must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    good = stereo(RATE, 2.0)[:, 0]
    sf.write(folder / "good.wav", good, RATE)
    (folder / "zero.wav").write_bytes(b"")
    (folder / "corrupt.flac").write_bytes(np.random.default_rng(0).bytes(4000))
    nan = good.astype(np.float32)
    nan[RATE] = np.nan
    sf.write(folder / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(folder / "long.wav", stereo(RATE, 4.0)[:, 0], RATE)
    whole = (folder / "long.wav").read_bytes()
    (folder / "long.wav").unlink()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])  # 2 s missing: over SHORTFALL_FRAMES
    sf.write(folder / "short.wav", good[: RATE // 4], RATE)
    (folder / "cover.jpg").write_bytes(b"not audio")  # no audio extension: not a candidate at all
    (folder / "notes.mp3").write_text("a text file named .mp3\n")
    encode(folder / "silent.mp4", "aac", RATE, video=True, audio=False)  # a video without sound
    return {
        "zero.wav": "empty",
        "corrupt.flac": "not an audio file",
        "nan.wav": "non-finite",
        "truncated.wav": "truncated: 0:02.0 of the 0:04.0 its header announces decode",
        "notes.mp3": "not an audio file",
        "silent.mp4": "no audio stream (streams: video)",
    }


def test_bad_files_are_skipped_and_listed_with_their_reason(tiny_params, tmp_path):
    bad = write_bad_files(tmp_path / "music")
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}])
    metrics = run_stage("ingest", params)
    assert (metrics["files"], metrics["ingested"], metrics["errors"], metrics["short"]) == (8, 1, 6, 1)
    rejects = pd.read_parquet(Path(params["paths"]["ingest"]) / "rejects.parquet")
    reasons = {Path(r.path).name: (r.kind, r.reason) for r in rejects.itertuples()}
    for name, word in bad.items():
        assert reasons[name][0] == "error" and word in reasons[name][1], reasons[name]
    assert reasons["short.wav"][0] == "short"
    assert "cover.jpg" not in reasons


def test_too_many_rejects_fail_naming_the_table_and_write_nothing(tiny_params, tmp_path):
    write_bad_files(tmp_path / "music")
    corpora = [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}]
    params = ingest_params(tiny_params, corpora, max_rejected=0.5)  # 6 of 8 files are errors
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(params))
    jtm = Path(sys.executable).with_name("jtm")
    result = subprocess.run([jtm, "ingest", "--params", file], capture_output=True, text=True)
    assert result.returncode == 2
    table = Path(params["paths"]["ingest_work"]) / "rejects.parquet"
    assert f"{table}: 6 of 8 files could not be ingested" in result.stderr
    assert len(pd.read_parquet(table)) == 7 and not Path(params["paths"]["ingest"]).exists()


def test_the_same_bytes_twice_are_ingested_once(tiny_params, tmp_path):
    for corpus in ("a", "b"):
        (tmp_path / corpus).mkdir()
        sf.write(tmp_path / corpus / "same.wav", stereo(RATE, 1.0), RATE)
    sf.write(tmp_path / "b" / "other.wav", stereo(RATE, 1.5), RATE)
    corpora = [
        {"name": "first", "paths": [str(tmp_path / "a")], "weight": 2.0},
        {"name": "second", "paths": [f"{tmp_path}/b/*.wav"], "weight": 1.0},
    ]
    metrics = run_stage("ingest", ingest_params(tiny_params, corpora))
    assert (metrics["ingested"], metrics["duplicates"]) == (2, 1)
    out = Path(tiny_params["paths"]["ingest"])
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert rejects["reason"].tolist() == [f"same bytes as {tmp_path / 'a' / 'same.wav'}"]
    summary = yaml.safe_load((out / "corpora.json").read_text())["corpora"]
    assert summary["first"]["weight"] == 2.0 and summary["second"]["files"] == 1


def test_shards_do_not_depend_on_the_worker_count(tiny_params, tmp_path):
    write_formats(tmp_path / "music", seconds=1.0)
    corpora = [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}]
    built = {}
    for workers in (1, 2):
        params = ingest_params(tiny_params, corpora, workers=workers, shard_mb=0.1)
        set_dotted(params, "paths.ingest", str(tmp_path / f"out{workers}"))
        set_dotted(params, "paths.ingest_work", str(tmp_path / f"work{workers}"))
        run_stage("ingest", params)
        out = tmp_path / f"out{workers}"
        built[workers] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert built[1] == built[2] and len([p for p in built[1] if p.suffix == ".f32"]) > 1


def test_a_killed_ingest_keeps_its_finished_shards_and_resumes(tiny_params, tmp_path):
    """SIGKILL while a file is being read (a FIFO: reading it blocks until the test says so);
    the rerun keeps every finished shard untouched and ends as an uninterrupted run does."""
    music = tmp_path / "music"
    music.mkdir()
    for i in range(5):
        sf.write(music / f"a{i}.wav", stereo(RATE, 1.0 + 0.1 * i), RATE)
    os.mkfifo(music / "z.wav")
    corpora = [{"name": "lib", "paths": [str(music)], "weight": 1.0}]
    params = ingest_params(tiny_params, corpora, shard_mb=0.01)  # one file per shard
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(params))
    work, out = Path(params["paths"]["ingest_work"]), Path(params["paths"]["ingest"])
    jtm = Path(sys.executable).with_name("jtm")
    process = subprocess.Popen([jtm, "ingest", "--params", file], start_new_session=True)
    ledgers = work / "shards" / "lib"
    deadline = time.monotonic() + 600
    while len(list(ledgers.glob("*.parquet"))) < 5:
        assert process.poll() is None and time.monotonic() < deadline, "ingest ended before the FIFO"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in ledgers.iterdir()}
    assert stat.S_ISFIFO((music / "z.wav").stat().st_mode)
    (music / "z.wav").unlink()
    sf.write(music / "z.wav", stereo(RATE, 2.0), RATE)
    metrics = run_stage("ingest", params)
    assert metrics["reused_files"] == 5 and metrics["ingested"] == 6
    assert {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in ((n, ledgers / n) for n in kept)} == kept
    set_dotted(params, "paths.ingest", str(tmp_path / "again"))
    set_dotted(params, "paths.ingest_work", str(tmp_path / "again_work"))
    run_stage("ingest", params)
    for name in ("manifest.parquet", "rejects.parquet", "corpora.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    for shard in (tmp_path / "again" / "shards" / "lib").iterdir():
        assert (out / "shards" / "lib" / shard.name).read_bytes() == shard.read_bytes()


def test_a_pattern_that_matches_no_audio_is_an_error(tiny_params, tmp_path):
    from jtm.config import ConfigError

    (tmp_path / "empty").mkdir()
    corpora = [{"name": "lib", "paths": [str(tmp_path / "empty")], "weight": 1.0}]
    with pytest.raises(ConfigError, match="holds no audio file"):
        run_stage("ingest", ingest_params(tiny_params, corpora))


def test_pretraining_draws_from_musicnet_and_two_corpora_and_the_report_names_them(built, tmp_path):
    """The ingested shards are read sample-exact by the training dataset, a pretraining run mixes
    both corpora with MusicNet, and the report says what the model was pretrained on."""
    from jtm.loading.windows import WindowDataset, WindowRef, load_unlabeled

    params = _two_corpora(built, tmp_path)
    ingest_dir = Path(params["paths"]["ingest"])
    windows, tracks = load_unlabeled(ingest_dir)
    assert set(windows["source"]) == {"radio", "vinyl"} and (windows["length"] == 8000).all()
    dataset = WindowDataset(windows, tracks)
    manifest = pd.read_parquet(ingest_dir / "manifest.parquet")
    last = len(windows) - 1
    row = manifest.iloc[-1 - int(windows["id"].iat[last])]
    want = shard_audio(ingest_dir, row)[windows["start"].iat[last] : windows["start"].iat[last] + 8000]
    np.testing.assert_array_equal(dataset[WindowRef(last, 0)][0].numpy(), want)

    set_dotted(params, "pretrain.musicnet_weight", 0.5)
    metrics = run_stage("pretrain", params, item={"run": 0})
    assert set(metrics["corpora"]) == {"musicnet", "radio", "vinyl"}
    assert metrics["corpora"]["radio"]["weight"] == 2.0
    assert metrics["corpora"]["vinyl"]["hours"] == pytest.approx((2.5 + 3.5 + 4.5) / 3600, rel=1e-3)
    run_stage("report", params)
    text = Path(params["paths"]["report_md"]).read_text()
    assert "Pretrained on: MusicNet's train split (" in text and "radio (0.00 h, weight 2)" in text


def _two_corpora(params: dict, root: Path) -> dict:
    """`params` with two ingested corpora: radio (3 FLAC files, weight 2) and vinyl (3, weight 1)."""
    for corpus, seconds in (("radio", 3.0), ("vinyl", 2.5)):  # no file twice: no duplicates
        (root / corpus).mkdir()
        for i in range(3):
            sf.write(root / corpus / f"{i}.flac", stereo(44_100, seconds + i), 44_100)
    corpora = [
        {"name": "radio", "paths": [str(root / "radio")], "weight": 2.0},
        {"name": "vinyl", "paths": [str(root / "vinyl")], "weight": 1.0},
    ]
    params = ingest_params(params, corpora)
    run_stage("ingest", params)
    return params


@pytest.mark.parametrize("loader, world", [("global", 1), ("sharded", 2)])
def test_pretraining_batches_draw_each_source_by_its_weight(built, tmp_path, loader, world):
    """What the batches hold, counted over epochs (not the summary the stage reports): each
    source's share of the windows drawn is its weight's, within a binomial bound."""
    from collections import Counter

    from jtm.config import PretrainConfig, section
    from jtm.train.sources import training_sources

    params = _two_corpora(built, tmp_path)
    for key, value in (
        ("musicnet_weight", 0.5),
        ("loader", loader),
        ("sampling", "uniform"),
        ("batch_size", 4),
    ):
        set_dotted(params, f"pretrain.{key}", value)
    cfg = section(params, "pretrain", PretrainConfig)
    paths = params["paths"]
    sources = training_sources(Path(paths["index"]), (Path(paths["ingest"]), Path(paths["leakage"])), cfg)
    source_of = sources.windows["source"].to_numpy()
    counts = Counter(
        source_of[ref.index]
        for epoch in range(6)
        for rank in range(world)
        for batch in sources.rank_batches(cfg, epoch, rank, world)
        for ref in batch.refs
    )
    drawn = sum(counts.values())
    weights = {"musicnet": 0.5, "radio": 2.0, "vinyl": 1.0}
    for source, weight in weights.items():
        p = weight / sum(weights.values())
        assert abs(counts[source] / drawn - p) < 4 * np.sqrt(p * (1 - p) / drawn), (source, counts, drawn)


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_a_batch_fetched_at_once_equals_its_windows_collated(tiny_params, tmp_path, dtype):
    """`WindowDataset.__getitems__` (one copy per window into one array: the fast loader path)
    returns what collating `__getitem__` window by window returns, shifts and int16 included."""
    from torch.utils.data import default_collate

    from jtm.loading.windows import WindowDataset, WindowRef, load_unlabeled

    write_formats(tmp_path / "music", seconds=1.5)
    corpora = [{"name": "lib", "paths": [str(tmp_path / "music")], "weight": 1.0}]
    run_stage("ingest", ingest_params(tiny_params, corpora, dtype=dtype))
    windows, tracks = load_unlabeled(tiny_params["paths"]["ingest"])
    dataset = WindowDataset(windows, tracks)
    refs = [
        WindowRef(i, shift, stream, i % 2 == 0)
        for i, shift, stream in ((0, -3000, 0), (3, 777, 1), (5, 0, 2))
    ]
    batched = dataset.__getitems__(refs)
    collated = default_collate([dataset[ref] for ref in refs])
    for a, b in zip(batched, collated, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
