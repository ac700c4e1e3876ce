"""Stage `report`: a self-contained HTML page and a Markdown twin, opened in a real browser."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from jtm.downstream.compare import outcome, verdict
from jtm.features.rank import feature_ranks
from jtm.report.glance import COLOURS, MARKS
from jtm.runner import run_stage
from tests.browser import chromium_path

FIGURES = (
    "forest",
    "cpc_curves",
    "label_efficiency",
    "confusion",
    "piano_roll",
    "projection_pca",
    "projection_tsne",
)


@pytest.fixture
def report(built) -> dict:
    run_stage("report", built)
    return built["paths"]


def test_report_has_the_table_verdicts_and_every_figure(report):
    html = Path(report["report"]).read_text()
    markdown = Path(report["report_md"]).read_text()
    for text in (html, markdown):
        assert "Does CPC win? (paired 95 % intervals)" in text and "Headline table" in text
        assert "What each label budget held" in text and "bootstrap works" in text
        for method in ("cpc-linear", "logmel-mlp", "random-mlp", "supervised", "finetune"):
            assert method in text
        for task in ("ensemble", "composer", "instruments", "transcription"):
            for budget in ("1 track/class", "all labels"):
                for part in ("seen", "unseen"):  # a verdict under each part of the test split
                    where = f"{task}, {budget}, {part} conditions"
                    assert re.search(rf"{where}\*\*|<strong>{where}</strong>", text)
        # every verdict is a paired comparison with its interval
        assert re.search(
            r"(beats \S+ by [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]|cannot be told apart)", text
        )
        assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text)  # means with intervals in the table
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "## What unseen recording conditions cost" in markdown and 'class="dataframe transfer"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing fetched from elsewhere
    # the numbers the study computed, in the report's body (not only in its params dump)
    body = markdown.split("## Parameters")[0]
    downstream = Path(report["downstream"])
    for r in pd.read_parquet(downstream / "intervals.parquet").itertuples():
        assert f"{r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]" in body, (r.task, r.method, r.budget)
    for c in pd.read_parquet(downstream / "comparisons.parquet").itertuples():
        assert verdict(c.a, c.b, c.diff, c.lo, c.hi) in body, (c.task, c.budget, c.rival)
    glance = markdown.split("## At a glance")[1].split("## Does CPC win?")[0]
    for c in pd.read_parquet(downstream / "comparisons.parquet").itertuples():
        if c.rival in ("random", "logmel"):
            assert f"{MARKS[outcome(c.lo, c.hi)]} {c.diff:+.3f} [{c.lo:+.3f}, {c.hi:+.3f}]" in glance
    for name in FIGURES:
        assert f"]({Path('figures')}/{name}.png)" in markdown
        assert (Path(report["figures"]) / f"{name}.png").stat().st_size > 1000


def test_report_renders_in_headless_chromium_with_no_failed_request(report):
    from playwright.sync_api import sync_playwright

    requested, failed = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(Path(report["report"]).resolve().as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        rows = page.evaluate("document.querySelectorAll('table.headline tbody tr').length")
        verdicts = page.evaluate(
            "Array.from(document.querySelectorAll('table.verdicts span.verdict')).map(s => "
            "[s.className, Number(s.dataset.lo), Number(s.dataset.hi), getComputedStyle(s).backgroundColor])"
        )
        first = page.evaluate("document.querySelector('h2').textContent")
        forest = page.evaluate("document.querySelector('#forest img').naturalWidth")
        header = page.evaluate(
            "Array.from(document.querySelectorAll('table.headline th')).map(th => th.textContent)"
        )
        browser.close()
    assert failed == []
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert len(images) == len(FIGURES)
    assert all(complete and width > 100 and height > 100 for complete, width, height in images)
    assert rows >= 4 * 6 and "all labels (unseen)" in header and "1 track/class (seen)" in header
    assert header[:2] == ["task", "metric"] and "column" not in header and "" not in header
    # the verdict grid opens the report: each verdict coloured as its interval says
    assert first.startswith("At a glance") and forest > 100
    comparisons = pd.read_parquet(Path(report["downstream"]) / "comparisons.parquet")
    assert len(verdicts) == comparisons["rival"].isin(["random", "logmel"]).sum() > 0
    for name, lo, hi, colour in verdicts:
        kind = outcome(lo, hi)
        assert name == f"verdict {kind}"
        red, green, blue = (int(COLOURS[kind][i : i + 2], 16) for i in (1, 3, 5))
        assert colour == f"rgb({red}, {green}, {blue})", (name, lo, hi, colour)


def test_the_figures_pick_their_method_on_validation_never_on_test():
    """Test means favour `logmel-linear`, validation `cpc-mlp`: the figures show `cpc-mlp`; a
    validation tie goes to the first listed; a method with no validation score comes last."""
    from jtm.report.build import best_on_validation

    rows = pd.DataFrame(
        {"method": ["logmel-linear", "cpc-linear", "cpc-mlp", "random-linear"],
         "mean": [0.9, 0.5, 0.4, 0.3], "val_score": [0.2, 0.6, 0.7, float("nan")]}
    )  # fmt: skip
    assert best_on_validation(rows) == "cpc-mlp"
    tied = rows.assign(val_score=[0.2, 0.7, 0.7, float("nan")])
    assert best_on_validation(tied) == "cpc-linear"
    assert best_on_validation(rows.assign(val_score=[float("nan"), 0.1, 0.0, 0.0])) == "cpc-linear"


def test_the_report_lists_each_pretraining_run_and_says_when_there_is_only_one(built):
    run_stage("report", built)
    markdown = Path(built["paths"]["report_md"]).read_text()
    runs = pd.read_parquet(Path(built["paths"]["downstream"]) / "runs.parquet")
    section = markdown.split("## Each pretraining run alone")[1].split("##")[0]
    for run in built["pretrain"]["runs"]:
        k1 = json.loads((Path(built["paths"]["pretrain"]) / f"run{run}" / "metrics.json").read_text())[
            "val_acc_k1"
        ]
        line = next(row for row in section.splitlines() if re.match(rf"\|\s+{run}\s+\|", row))
        assert f"{k1:.3f}" in line
        mine = runs[(runs["run"] == run) & (runs["rival"] == "random") & (runs["budget"] == "all")]
        for diff in mine["diff"]:
            assert f"{diff:+.3f}" in line
        ranks = feature_ranks(Path(built["paths"]["embeddings"]) / f"run{run}", ["cpc", "random"])
        assert f"{ranks['cpc']['rank']:.1f} / {ranks['random']['rank']:.1f}" in line
    assert "pretraining runs" in markdown and "leave out pretraining variance" not in markdown
    built["pretrain"]["runs"] = [0]  # the same study with its first run alone
    for name, items in (("downstream", [{}]), ("report", [{}])):
        for item in items:
            run_stage(name, built, item=item or None)
    markdown = Path(built["paths"]["report_md"]).read_text()
    assert "One pretraining run: these intervals leave out pretraining variance" in markdown
