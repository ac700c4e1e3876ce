"""The report at a glance: a verdict grid (tasks x label budgets, each cell the paired verdict
of the best CPC method against the random-init control and against log-mel) in HTML and
Markdown. The forest plot of every paired difference is jtm/report/figures.py's `forest`.
"""

from __future__ import annotations

import html

import pandas as pd

from jtm.downstream.compare import outcome

RIVALS = {"random": "vs control", "logmel": "vs log-mel"}  # the grid's two rivals, in cell order
MARKS = {"wins": "▲ wins", "ties": "● ties", "loses": "▼ loses"}
COLOURS = {"wins": "#b9e4bf", "ties": "#e6e6e6", "loses": "#f6c3c3"}  # background of a verdict

GRID_STYLE = (
    "table.verdicts td { text-align: left; vertical-align: top; }"
    " .verdict { display: block; padding: 0.15em 0.4em; margin: 0.1em 0; border-radius: 3px; }"
    + "".join(f" .verdict.{name} {{ background: {colour}; }}" for name, colour in COLOURS.items())
)


def grid_cells(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The grid's comparisons (rival random or logmel) with their `outcome` column."""
    rows = comparisons[comparisons["rival"].isin(list(RIVALS))]
    return rows.assign(outcome=[outcome(lo, hi) for lo, hi in zip(rows["lo"], rows["hi"], strict=True)])


def _text(row) -> str:
    return f"{RIVALS[row.rival]}: {MARKS[row.outcome]} {row.diff:+.3f} [{row.lo:+.3f}, {row.hi:+.3f}]"


def _grid(comparisons: pd.DataFrame) -> tuple[list[str], list[tuple[str, list[pd.DataFrame]]]]:
    """(budgets, [(task, its verdict rows per budget)]): the grid both renderers draw."""
    cells = grid_cells(comparisons)
    budgets = list(dict.fromkeys(cells["budget"]))
    rows = [
        (task, [mine[mine["budget"] == budget] for budget in budgets])
        for task, mine in cells.groupby("task", sort=False)
    ]
    return budgets, rows


PARTS = {
    "seen": "Recording conditions seen in training",
    "unseen": "Unseen recording conditions (a room, or SoundFont, no train or validation recording uses)",
    "all": "Every test recording",
}


def by_part(comparisons: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """[(part, its comparisons)] in order (seen, unseen; or all alone)."""
    return [(part, comparisons[comparisons["part"] == part]) for part in comparisons["part"].unique()]


def grid_markdown(comparisons: pd.DataFrame, label) -> str:
    """Markdown table: a row per task, a column per budget (`label` names it), each cell the
    best CPC method and its verdicts against the two rivals (▲ wins, ● ties, ▼ loses; the
    rivals' chosen methods are in the comparisons table)."""
    budgets, grid = _grid(comparisons)
    lines = ["| task | " + " | ".join(label(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for task, cells in grid:
        texts = [
            (f"**{mine['a'].iloc[0]}**<br>" if len(mine) else "–")
            + "<br>".join(_text(r) for r in mine.itertuples())
            for mine in cells
        ]
        lines.append(f"| {task} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def grid_html(comparisons: pd.DataFrame, label) -> str:
    """The same grid as an HTML table (class `verdicts`); each verdict a span of class `verdict`
    and its outcome, carrying its interval in data-lo/data-hi."""
    budgets, grid = _grid(comparisons)
    head = "".join(f"<th>{html.escape(label(b))}</th>" for b in budgets)
    body = []
    for task, cells in grid:
        tds = []
        for mine in cells:
            spans = "".join(
                f'<span class="verdict {r.outcome}" data-lo="{r.lo:.6f}" data-hi="{r.hi:.6f}" '
                f'title="{html.escape(r.a)} - {html.escape(r.b)}">'
                f"{html.escape(_text(r))}</span>"
                for r in mine.itertuples()
            )
            best = f"<strong>{html.escape(mine['a'].iloc[0])}</strong>" if len(mine) else "–"
            tds.append(f"<td>{best}{spans}</td>")
        body.append(f"<tr><th>{html.escape(task)}</th>{''.join(tds)}</tr>")
    header = f"<thead><tr><th>task</th>{head}</tr></thead>"
    return f'<table class="verdicts">{header}<tbody>{"".join(body)}</tbody></table>'
