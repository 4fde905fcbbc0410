"""``build_report``: read a sweep store, write per problem the tables, plots and an HTML page, and an index page.

Everything is validated, then rendered in memory, then written file by file atomically: a bad input writes nothing,
and a failure while rendering leaves the output folder untouched.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sdebench
from sdebench.errors import check
from sdebench.io import write_atomic
from sdebench.problems.problem import problem_from_spec
from sdebench.reports import html as pages
from sdebench.reports.plots import convergence_png, density_grid_png, work_precision_png
from sdebench.reports.tables import (
    COMPARISON_NOTE,
    Group,
    comparison_cells,
    convergence_fits,
    convergence_metric,
    group_runs,
    latest_runs,
    markdown_budget,
    markdown_comparison,
    markdown_summary,
    markdown_table,
    summary_frame,
    title,
)
from sdebench.sweeps.store import Store

#: The second work–precision plot's metric: the largest relative error of a mode's spread.
SPREAD_METRIC = "mode_std_rel_err_max"
#: Exact draws in the density picture's reference panel (the stored previews hold at most 10 000 rows too).
EXACT_PANEL_ROWS = 10_000


def build_report(store_path: str | Path, out_dir: str | Path, density_budget: float | None = None) -> list[Path]:
    """Read only the store; write per problem the tables (Markdown, CSV), plots (PNG) and one self-contained HTML
    page, plus ``index.html`` holding every problem; return the files written.

    ``density_budget`` is the NFE budget of the fixed-step runs shown in ``density.png`` (default: the middle
    one of those present; adaptive solvers show their middle tolerance).
    """
    out = _check_out(Path(out_dir))
    if density_budget is not None:
        check(
            isinstance(density_budget, (int, float)) and math.isfinite(density_budget) and density_budget > 0,
            "budget",
            f"must be a positive number, got {density_budget!r}",
        )
    with Store(store_path, readonly=True) as store:
        runs, superseded = latest_runs(store.runs())
        check(bool(runs), "store", "holds no runs")
        if density_budget is not None:
            present = sorted({r["budget"] for r in runs if r["budget"] is not None and not r["info"]["adaptive"]})
            check(
                density_budget in present,
                "budget",
                f"no fixed-step run has budget {density_budget:g} (present: {', '.join(f'{b:g}' for b in present)})",
            )
        files, sections = _render(store, runs, density_budget)
    header = _header(Path(store_path), runs, superseded)
    title = f"sdebench sweep report: {Path(store_path).name}"
    for anchor, name, section in sections:
        if anchor == "comparison":
            continue
        files[Path(anchor) / "report.html"] = pages.page(
            f"{title} · {name}", header, [(anchor, name, section)]
        ).encode()
    files[Path("index.html")] = pages.page(title, header, sections).encode()

    out.mkdir(exist_ok=True)
    mode = _file_mode()
    written = []
    for relative, data in files.items():
        path = out / relative
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, lambda tmp, data=data: (tmp.write_bytes(data), tmp.chmod(mode)))
        written.append(path)
    return written


def _file_mode() -> int:
    # the temporary file is private (0600); the report is meant to be shared, so give it the usual umask mode
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _check_out(out: Path) -> Path:
    parent = out.parent if str(out.parent) else Path(".")
    check(parent.is_dir(), "out", f"folder {str(parent)!r} does not exist")
    check(not out.exists() or out.is_dir(), "out", f"{str(out)!r} is a file, not a folder")
    target = out if out.exists() else parent
    check(os.access(target, os.W_OK), "out", f"folder {str(target)!r} is not writable")
    return out


def _code_line(runs: list[dict[str, Any]], superseded: int) -> str:
    """Which code made the runs shown: the installed code, or other code (and which modules changed since)."""
    stale = [r for r in runs if r["changed_code"]]
    if not stale:
        text = f"every run was made by the installed code (sdebench {sdebench.__version__})"
    else:
        modules = Counter(m for r in stale for m in r["changed_code"])
        shown = ", ".join(f"{m} ({k} runs)" for m, k in modules.most_common(6))
        more = f" and {len(modules) - 6} more modules" if len(modules) > 6 else ""
        text = (
            f"{len(stale)} of {len(runs)} runs were made by other code than the installed one; changed since: "
            f"{shown}{more}. Their rows say so in the 'code' column; run the sweep again to redo them"
        )
    unknown = [r for r in runs if r.get("unknown_code")]
    if unknown:
        modules = sorted({m for r in unknown for m in r["unknown_code"]})
        text += (
            f". {len(unknown)} runs used plugin code not loaded here ({', '.join(modules[:3])}"
            f"{' and more' if len(modules) > 3 else ''}), so it could not be compared with theirs"
        )
    if superseded:
        text += f". {superseded} earlier runs of the same configs by older code are kept in the store, not shown"
    return text


def _versions_line(runs: list[dict[str, Any]]) -> str:
    """The library versions the runs were made with (recorded, not part of the key): mixed versions are flagged."""
    parts = []
    for lib in ("torch", "numpy", "python"):
        counts = Counter(str(r["env"].get(lib, "?")) for r in runs)
        parts.append(f"{lib} " + " / ".join(f"{v} ({k} runs)" if len(counts) > 1 else v for v, k in counts.items()))
    return ", ".join(parts)


def _header(store_path: Path, runs: list[dict[str, Any]], superseded: int) -> list[tuple[str, str]]:
    counts = Counter(r["status"] for r in runs)
    return [
        ("store", str(store_path.resolve())),
        ("runs", f"{len(runs)} (" + ", ".join(f"{s} {counts[s]}" for s in ("ok", "diverged", "failed")) + ")"),
        ("problems", ", ".join(sorted({r["problem"] for r in runs}))),
        ("scores", ", ".join(sorted({r["score"] for r in runs}))),
        ("code", _code_line(runs, superseded)),
        ("libraries", _versions_line(runs)),
        (
            "reference",
            "every metric compares samples with the exact p_ε, the law of s(ε)(x_0 + σ(ε) z) (where a sampler stopping "
            "at t_end should land), not p_data; noise floor = the same metric for exact samples of the same n",
        ),
    ]


def _dir_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "problem"
    candidate, k = base, 2
    while candidate in taken or candidate == "index.html":
        candidate, k = f"{base}-{k}", k + 1
    taken.add(candidate)
    return candidate


def _render(store: Store, runs: list[dict[str, Any]], density_budget: float | None):
    """Every file's bytes by path relative to the output folder, and the HTML section of each problem."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        # two problems may share a name (e.g. another t_end): group by the whole spec
        by_problem.setdefault(json.dumps(run["config"]["problem"], sort_keys=True), []).append(run)
    files: dict[Path, bytes] = {}
    sections = []
    compared: list[tuple[str, str, list[Group]]] = []
    taken: set[str] = {"comparison"}  # the side-by-side section's anchor
    for spec_text, problem_runs in sorted(by_problem.items(), key=lambda kv: kv[1][0]["problem"]):
        spec = json.loads(spec_text)
        groups = group_runs(problem_runs)
        folder = _dir_name(groups[0].problem, taken)
        problem = problem_from_spec(spec)
        compared.append((folder, problem.sde.type, groups))
        t_end = problem.t_end
        sde = problem.sde
        reference = (
            f"SDE: {sde.describe()}, from T = {sde.T:g} to ε = {t_end:g}. Reference: the exact p_ε of "
            f"{groups[0].problem}, the law of s(ε)(x_0 + σ(ε) z) with s(ε) = {float(sde.s(t_end)):.4g}, σ(ε) = "
            f"{float(sde.sigma(t_end)):.4g}."
        )
        files[Path(folder) / "summary.md"] = markdown_summary(groups).encode()
        files[Path(folder) / "table.md"] = (f"{reference}\n\n" + markdown_table(groups)).encode()
        files[Path(folder) / "table.csv"] = summary_frame(groups).to_csv(index=False).encode()
        budget = markdown_budget(groups)
        if budget:
            files[Path(folder) / "budget.md"] = budget.encode()
        plots = {"work–precision": work_precision_png(groups)}
        files_of = {"work–precision": "work_precision.png"}
        # SW1 sees mode balance and gross shape; a mode's spread shows the local bias that SW1 hides at n = 10⁴
        if any(SPREAD_METRIC in g.estimates for g in groups):
            plots["work–precision, mode spread"] = work_precision_png(groups, SPREAD_METRIC)
            files_of["work–precision, mode spread"] = "work_precision_mode_std.png"
        plots["convergence"] = convergence_png(groups)
        plots["density"] = _density(store, groups, problem, density_budget)
        files_of.update(convergence="convergence.png", density="density.png")
        for name, file in files_of.items():
            files[Path(folder) / file] = plots[name]
        notes = {
            "work–precision": "SW1 against the exact p_ε (mean over seeds, bars: 95% CI) against score evaluations "
            "per sample; grey band: SW1 of exact samples (the noise floor). One row per score, one column per "
            "solver family.",
            "work–precision, mode spread": "The largest relative error of a mode's standard deviation (over modes "
            "and coordinates) against NFE: the discretisation's and the score's local bias, which SW1 at this n "
            "mostly cannot see. Grey band: its noise floor.",
            "convergence": "Fixed-step solvers only (adaptive ones pick their own steps). Legend: fitted slope of "
            "log error on log NFE and the solver's declared weak order; NFE per step differs between solvers, so a "
            "slope is an order per NFE.",
            "density": "2-D histograms of the stored sample previews (smallest seed), shared axes and log colour "
            "scale, beside exact draws from p_ε.",
        }
        sections.append(
            (
                folder,
                groups[0].problem,
                pages.problem_section(groups[0].problem, folder, groups, plots, notes, reference, _slopes(groups)),
            )
        )
    if len(compared) > 1:
        files[Path("comparison.md")] = markdown_comparison(compared).encode()
        header, rows = comparison_cells(compared)
        section = (
            '<h2 id="comparison">SDEs side by side</h2>'
            + pages.table(header, rows, text_columns=3, cls="summary")
            + f'<p class="note">{pages.e(COMPARISON_NOTE)}</p>'
        )
        sections.insert(0, ("comparison", "SDEs side by side", section))
    return files, sections


def _slopes(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    metric = convergence_metric([g for g in groups if not g.adaptive])
    fits = convergence_fits([g for g in groups if not g.adaptive], metric) if metric else {}
    order_of = {(g.score, g.label, g.n): g.weak_order for g in groups}
    header = ["score", "solver", "n", "error measure", "fitted slope", "points used", "declared weak order"]
    rows = []
    measure = title(groups, metric) if metric else ""
    for (score, label, n), fit in fits.items():
        order = order_of[(score, label, n)]
        rows.append(
            [
                score,
                label,
                str(n),
                measure,
                "not fitted" if fit.slope is None else f"{fit.slope:+.2f}",
                str(fit.points),
                "—" if order is None else f"{order:g}",
            ]
        )
    return header, rows


def _middle(values: list[float]) -> float:
    # the largest value not above the median
    values = sorted(values)
    return values[(len(values) - 1) // 2]


def _density(store: Store, groups: list[Group], problem, density_budget: float | None) -> bytes:
    fixed = sorted({g.budget for g in groups if not g.adaptive and g.budget is not None})
    budget = density_budget if density_budget in fixed else (_middle(fixed) if fixed else None)
    # adaptive solvers: each at the middle of its own tolerances (families use different ranges)
    tolerances: dict[tuple[str, str, int], list[float]] = {}
    for g in groups:
        if g.adaptive and g.budget is not None:
            tolerances.setdefault((g.score, g.label, g.n), []).append(g.budget)
    rows = max(min(EXACT_PANEL_ROWS, g.n) for g in groups)
    many_n = len({g.n for g in groups}) > 1
    exact = problem.target().sample(rows, generator=torch.Generator().manual_seed(0))[0].numpy()[:, :2]
    panels: list[tuple[str, np.ndarray | str]] = [(f"exact p_ε (n = {rows:,})", exact)]
    for g in groups:
        if g.budget is None:
            wanted = None
        elif g.adaptive:
            wanted = _middle(tolerances[(g.score, g.label, g.n)])
        else:
            wanted = budget
        if g.budget != wanted:
            continue
        run = g.first_run
        name = f"{g.score} · {g.label}" + (f"\n{g.budget_caption}" if g.budget is not None else "")
        name += f", n = {g.n:,}" if many_n else ""
        if run["status"] != "ok":
            message = (run["error"] or "").strip().splitlines()[0][:60] if run["error"] else ""
            panels.append((name, f"{run['status']}\n(seed {run['seed']})\n{message}"))
            continue
        preview = store.preview(run["key"])
        panels.append((name, preview if preview is not None and len(preview) else "no preview stored"))
    lim = float(np.quantile(np.abs(exact), 0.999)) * 1.3
    what = []
    if budget is not None:
        chosen = "" if density_budget is None or density_budget == budget else f" ({density_budget:g} not run here)"
        what.append(f"fixed-step at NFE budget {budget:g}{chosen}")
    if tolerances:
        what.append("adaptive at the middle of their tolerances")
    title = f"{groups[0].problem}: samples of the smallest seed — {', '.join(what) or 'default budgets'}"
    if problem.dim > 2:
        # the stored preview keeps the first two coordinates: say so, the picture is a projection
        title += f"\nprojection onto (x₁, x₂) of the {problem.dim}-D samples"
    return density_grid_png(panels, title, lim, dim=problem.dim)
