"""benchmarks/levers.py's table: each row's wins/ties/losses against the control and against the
raw features of its own front-end (log-CQT for a CQT row), and every interval in bold only
where it excludes 0."""

import json
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.check

sys.path.insert(0, str(REPO / "benchmarks"))
import levers  # noqa: E402


def _row(name: str, raw: str, diffs: dict) -> dict:
    row = {"variant": name, "raw": raw, "pretrain_minutes": 1.5, "val_acc_k1": 0.5}
    row["rank"] = {"cpc": 10.0, "random": 20.0}
    for part in levers.PARTS:
        for task in levers.TASKS:
            for budget in levers.BUDGETS:
                cell = {}
                for rival in ("random", raw):
                    d = diffs.get((part, task, budget, rival), 0.0)
                    cell[rival] = {
                        "pair": f"cpc-linear - {rival}-linear",
                        "diff": d,
                        "lo": d - 0.01,
                        "hi": d + 0.01,
                    }
                    if d == 0.0:
                        cell[rival] |= {"lo": -0.01, "hi": 0.01}
                row[f"{part}/{task}/{budget}"] = cell
    return row


def test_the_table_counts_wins_against_the_row_s_own_raw_features(tmp_path, monkeypatch, capsys):
    rows = [
        _row(
            "logmel row",
            "logmel",
            {
                ("unseen", "ensemble", "all", "random"): 0.05,
                ("unseen", "transcription", "1-per-class", "logmel"): -0.2,
            },
        ),  # fmt: skip
        _row(
            "cqt row",
            "cqt",
            {
                ("unseen", "composer", "1-per-class", "cqt"): 0.03,
                ("unseen", "composer", "1-per-class", "logmel"): -0.5,
            },
        ),  # fmt: skip
    ]
    monkeypatch.setattr(levers, "ROWS", tmp_path / "rows.jsonl")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    levers.table()
    out = capsys.readouterr().out
    summary = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in out.splitlines()[:4]}
    # columns: variant, k=1, rank, then unseen (all: control, raw; 1/class: control, raw), seen
    assert summary["logmel row"][3:7] == ["1/3/0", "0/4/0", "0/4/0", "0/3/1"]
    assert summary["cqt row"][3:7] == ["0/4/0", "0/4/0", "0/4/0", "1/3/0"]  # against log-CQT, not log-mel
    assert "**+0.050 [+0.040, +0.060]**" in out and "+0.000 [-0.010, +0.010] |" in out
