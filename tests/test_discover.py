"""Which files a library holds, as people keep them: names with brackets, unicode and a leading
dash are paths, not patterns; links are followed once; a dangling link or a link loop is
skipped with its reason, never a crash."""

from __future__ import annotations

import logging
import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from jtm.config import ConfigError
from jtm.ingest.account import account_table
from jtm.ingest.discover import Corpus, survey

pytestmark = pytest.mark.check

NAMES = [
    "Title [dQw4w9WgXcQ].wav",  # yt-dlp style: a glob would read [...] as a character class
    "-leading dash.wav",
    unicodedata.normalize("NFC", "Café.wav"),
    unicodedata.normalize("NFD", "Noël.wav"),
    "what? *.wav",
]


def _tone(path: Path, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(int(16_000 * seconds)) / 3), 16_000)


def test_an_existing_path_is_a_path_whatever_its_characters(tmp_path):
    for name in NAMES:
        _tone(tmp_path / "lib" / name)
    for name in NAMES:  # each file named on its own, as `jtm features` and corpus paths take them
        found = survey(Corpus("one", (str(tmp_path / "lib" / name),), 1.0))
        assert [c.path for c in found.candidates] == [str(tmp_path / "lib" / name)]
    folder = survey(Corpus("lib", (str(tmp_path / "lib"),), 1.0))
    assert sorted(Path(c.path).name for c in folder.candidates) == sorted(NAMES)


def test_a_missing_path_with_brackets_says_how_to_write_a_literal_bracket(tmp_path):
    missing = str(tmp_path / "Title [id].mp3")
    with pytest.raises(ConfigError, match=r"no such path.*a literal \[ is \[\[\]"):
        survey(Corpus("lib", (missing,), 1.0))
    _tone(tmp_path / "a1.wav")  # a pattern the user wrote still expands
    assert len(survey(Corpus("lib", (str(tmp_path / "a[0-9].wav"),), 1.0)).candidates) == 1


def test_links_are_followed_once_and_dangling_links_and_loops_are_skipped(tmp_path, caplog):
    lib = tmp_path / "lib"
    _tone(lib / "album" / "song.wav")
    os.symlink(lib / "album" / "song.wav", lib / "alias.wav")  # a second path to the same file
    os.symlink(tmp_path / "gone.mp3", lib / "dangling.mp3")  # its target was deleted
    os.symlink(lib, lib / "album" / "loop")  # a link back up: walking it would never end
    outside = tmp_path / "outside"
    _tone(outside / "far.wav")
    os.symlink(outside, lib / "linked folder")  # a link to a folder elsewhere: walked once
    with caplog.at_level(logging.WARNING, logger="jtm.ingest.discover"):
        found = survey(Corpus("lib", (str(lib),), 1.0))
    names = sorted(Path(c.path).name for c in found.candidates)
    assert names == ["far.wav", "song.wav"] or names == ["alias.wav", "far.wav"]
    reasons = {Path(p).name: r for p, r in found.links.items()}
    assert reasons["dangling.mp3"] == f"dangling link to {tmp_path / 'gone.mp3'}"
    assert reasons["loop"].startswith("link loop:")
    assert "another path to" in reasons.get("alias.wav", reasons.get("song.wav", ""))
    assert any("dangling.mp3: skipped: dangling link" in m for m in caplog.messages)
    files = pd.DataFrame({"status": ["ok"] * 2, "reason": [""] * 2, "format": ["WAV"] * 2,
                          "subtype": ["PCM_16"] * 2, "samples": [3200] * 2})  # fmt: skip
    table = account_table(files, found.skipped, 16_000, found.links)
    links = table[table["fate"] == "skipped: link"].set_index("what")["files"].to_dict()
    assert links == {"dangling link": 1, "link loop": 1, "another path": 1}


def test_a_folder_of_only_dangling_links_is_no_crash(tmp_path):
    (tmp_path / "lib").mkdir()
    os.symlink(tmp_path / "gone.flac", tmp_path / "lib" / "a.flac")
    found = survey(Corpus("lib", (str(tmp_path / "lib"),), 1.0))
    assert found.candidates == [] and list(found.links.values()) == [
        f"dangling link to {tmp_path / 'gone.flac'}"
    ]
