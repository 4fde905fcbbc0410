"""The HTML report: one self-contained page (inline CSS, plots embedded as base64 PNG), nothing fetched."""

from __future__ import annotations

import base64
import html
from typing import Any

from sdebench.reports.tables import (
    BUDGET_METRICS,
    BUDGET_NOTE,
    Group,
    budget_cells,
    failures,
    summary_cells,
    table_cells,
    title,
    verdict_notes,
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1500px;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem;
     margin-top: 2.5rem; } h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; font-size: .8rem; margin: .6rem 0; }
th, td { border: 1px solid #d0d0d0; padding: .2rem .45rem; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
td.best { font-weight: bold; background: #e5f4e3; }
tr.bad td { background: #fdeaea; } td.status-bad { color: #a01010; font-weight: bold; }
td.yes { color: #1b6e1b; font-weight: bold; }
td.error { white-space: normal; text-align: left; font-family: monospace; max-width: 60rem; }
.note { color: #555; font-size: .85rem; max-width: 70rem; }
img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
.scroll { overflow-x: auto; }
nav a { margin-right: 1rem; }
table.header td { white-space: normal; max-width: 80rem; }
table.summary td { text-align: left; }
"""


def e(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def image(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG inline."""
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def table(header: list[str], rows: list[list[str]], text_columns: int = 0, cls: str = "") -> str:
    """A plain HTML table of escaped cells; the first ``text_columns`` columns are left-aligned."""
    head = "".join(f'<th class="{"text" if i < text_columns else ""}">{e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"text" if i < text_columns else ""}">{e(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def main_table(groups: list[Group]) -> str:
    """The main table: best values bold on green, rows with unfinished runs in red, "≈ exact" in green."""
    header, rows = table_cells(groups)
    status_col, flag_col = header.index("status"), len(header) - 1
    head = "".join(f'<th class="{"text" if i < 2 else ""}">{e(h)}</th>' for i, h in enumerate(header))
    body = []
    for g, row in zip(groups, rows, strict=True):
        cells = []
        for i, (text, best) in enumerate(row):
            classes = ["text"] if i < 2 else []
            if best:
                classes.append("best")
            if i == status_col and text != "ok":
                classes.append("status-bad")
            if i == flag_col and text == "yes":
                classes.append("yes")
            cells.append(f'<td class="{" ".join(classes)}">{e(text)}</td>')
        body.append(f'<tr class="{"" if g.all_ok else "bad"}">' + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="main"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div>"
    )


def problem_section(
    problem: str,
    anchor: str,
    groups: list[Group],
    plots: dict[str, bytes],
    notes: dict[str, str],
    reference: str,
    slopes: tuple[list[str], list[list[str]]] | None = None,
) -> str:
    """Everything about one problem: reference, main table, unfinished runs, fitted slopes (header, rows), plots."""
    parts = [f'<h2 id="{e(anchor)}">{e(problem)}</h2>', f'<p class="note">{e(reference)}</p>', "<h3>Results</h3>"]
    summary_header, summary_rows = summary_cells(groups)
    parts.append(table(summary_header, summary_rows, text_columns=2, cls="summary"))
    parts.append(
        '<p class="note">Cheapest ≈ exact: the smallest budget from which every larger budget of the solver is '
        "indistinguishable from exact sampling (every metric within its noise floor over the seeds).</p>"
    )
    parts.append("<h3>All results</h3>")
    parts.append(main_table(groups))
    best, verdict = verdict_notes(groups)
    sides = "one-sided" + (f"; {verdict.removesuffix('; ')}" if verdict else "")
    parts.append(
        '<p class="note">Mean ± 95% CI half-width over seeds (Student t). Floor = the same metric for exact samples '
        "of the same n (5 draws). <b>Bold</b>: best mean of the column within the score, among rows where every "
        f"seed finished{e(best.replace('; ', ' (', 1) + ')' if best else '')}. ≈ exact: every metric within its "
        f"floor ({e(sides)}), needs ≥ 3 seeds. NFE = score evaluations per sample; wall s = solver time per run.</p>"
    )
    budgets = [(m, budget_cells(groups, m)) for m in BUDGET_METRICS]
    budgets = [(m, cells) for m, cells in budgets if cells[1]]
    if budgets:
        parts.append("<h3>Error budget</h3>")
        parts.append(f'<p class="note">{e(BUDGET_NOTE)}</p>')
        for metric, (header, rows) in budgets:
            parts.append(f"<h4>{e(title(groups, metric))}</h4>")
            parts.append(table(header, rows, text_columns=1, cls="budget"))
    bad = failures(groups)
    parts.append("<h3>Runs that did not finish</h3>")
    if bad:
        header = ["score", "solver", "budget", "n", "seed", "status", "error"]
        rows = "".join(
            "<tr>"
            + "".join(f'<td class="text">{e(b[k])}</td>' for k in header[:-1])
            + f'<td class="error">{e(b["error"])}</td></tr>'
            for b in bad
        )
        head = "".join(f'<th class="text">{e(h)}</th>' for h in header)
        parts.append(
            f'<div class="scroll"><table class="failures"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    else:
        parts.append('<p class="note">None: every run finished.</p>')
    if slopes is not None and slopes[1]:
        parts.append("<h3>Fitted convergence slopes</h3>")
        parts.append(table(slopes[0], slopes[1], text_columns=2, cls="slopes"))
    for name, png in plots.items():
        parts.append(f"<h3>{e(name)}</h3>")
        if notes.get(name):
            parts.append(f'<p class="note">{e(notes[name])}</p>')
        parts.append(image(png, f"{problem}: {name}"))
    return "\n".join(parts)


def page(title: str, header_rows: list[tuple[str, str]], sections: list[tuple[str, str, str]]) -> str:
    """A whole page: title, a key–value header table, a link per section, then the sections ``(anchor, name,
    html)``."""
    head = "".join(f'<tr><th class="text">{e(k)}</th><td class="text">{e(v)}</td></tr>' for k, v in header_rows)
    nav = "".join(f'<a href="#{e(a)}">{e(n)}</a>' for a, n, _ in sections)
    body = "\n".join(s for _, _, s in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<style>{_CSS}</style></head>\n<body><h1>{e(title)}</h1><table class="header">{head}</table>'
        f"<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
