"""Sweep results as tables: runs grouped by (score, solver, budget, n), seeds aggregated to mean ± 95% CI.

One :class:`Group` per table row. The Markdown and HTML tables mark the best mean of each main metric (within a
problem and score) and flag rows indistinguishable from exact sampling; the CSV keeps the raw numbers. Which
metrics are main columns, their titles, which way is better and how "≈ exact" compares them come from the
metrics' output declarations (:class:`sdebench.metrics.Output`), stored with each run: a store reports the same
without the metric's module (a plugin's) loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdebench.fingerprint import PACKAGE, changed_modules, module_file
from sdebench.metrics.base import METRICS, Output, declared_outputs, find_output
from sdebench.metrics.budget import SOURCES, budget_terms, dominant, format_term
from sdebench.metrics.uncertainty import Estimate, summarize, within_floor

#: Seeds a row needs before it can be flagged "≈ exact".
MIN_SEEDS_EXACT_LIKE = 3
#: Solver families, in the order tables and plots show them.
FAMILIES = ("SDE, fixed step", "ODE, fixed step", "adaptive")


@dataclass
class Group:
    """The runs of one table row: one problem, score, solver label, budget and n, over seeds."""

    problem: str
    score: str
    label: str
    solver: str
    kind: str
    adaptive: bool
    budget: float | None
    n: int
    #: Declared orders of the configured solver (as stored with its runs: options such as pc's corrector set them).
    strong_order: float | None = None
    weak_order: float | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: The output declarations of the row's metrics, as stored with its runs (see :func:`run_outputs`).
    declared: tuple[Output, ...] = ()
    estimates: dict[str, Estimate] = field(default_factory=dict)
    floors: dict[str, Estimate] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    exact_like: bool | None = None  # None: cannot tell (fewer than two ok seeds, or a seed did not finish)

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        """The runs that finished with finite samples."""
        return [r for r in self.runs if r["status"] == "ok"]

    @property
    def all_ok(self) -> bool:
        """Whether every seed finished."""
        return all(r["status"] == "ok" for r in self.runs)

    @property
    def family(self) -> str:
        """One of :data:`FAMILIES`."""
        if self.adaptive:
            return FAMILIES[2]
        return FAMILIES[0] if self.kind == "sde" else FAMILIES[1]

    @property
    def status(self) -> str:
        """ "ok", or e.g. "diverged (1/3)", "failed (3/3)"."""
        total = len(self.runs)
        parts = []
        for status in ("diverged", "failed"):
            k = sum(r["status"] == status for r in self.runs)
            if k:
                parts.append(f"{status} ({k}/{total})")
        return ", ".join(parts) or "ok"

    @property
    def nfe(self) -> float | None:
        """Mean score evaluations per sample over the ok seeds."""
        return _mean([r["nfe_per_sample"] for r in self.ok_runs])

    @property
    def wall_s(self) -> float | None:
        """Mean solver wall time in seconds over the ok seeds."""
        return _mean([r["wall_s"] for r in self.ok_runs])

    @property
    def budget_text(self) -> str:
        """The budget as shown: an NFE budget, a tolerance, or "default"."""
        if self.budget is None:
            return "default"
        return f"tol {self.budget:.0e}" if self.adaptive else f"{self.budget:g}"

    @property
    def budget_caption(self) -> str:
        """The budget with its unit, for plot titles: "NFE 40", "tol 1e-03"."""
        return self.budget_text if self.adaptive or self.budget is None else f"NFE {self.budget:g}"

    @property
    def stale_runs(self) -> int:
        """How many of the runs were made by code that differs from the installed code."""
        return sum(bool(r.get("changed_code")) for r in self.runs)

    @property
    def code_text(self) -> str:
        """ "current", or e.g. "other (1/3)" when some runs were made by code that has changed since."""
        stale = self.stale_runs
        return "current" if not stale else f"other ({stale}/{len(self.runs)})"

    @property
    def start(self) -> str:
        """The runs' initial law at T: "prior" (the default), "exact" (draws of p_T) or the seed's quirk."""
        return self.runs[0]["config"]["options"].get("start", "prior")

    @property
    def first_run(self) -> dict[str, Any]:
        """The run of the smallest seed (the one the density pictures show)."""
        return min(self.runs, key=lambda r: r["seed"])


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _clean(metrics: dict[str, float | None]) -> dict[str, float]:
    # the store writes non-finite metrics as null
    return {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}


def run_outputs(run: dict[str, Any]) -> tuple[Output, ...]:
    """The output declarations of a stored run's metrics: those stored with it (``info["outputs"]``), or, for a run
    stored by older code without them, the declarations of its metrics as registered now (a metric that is no
    longer registered then declares nothing: its keys are shown as informational)."""
    stored = run["info"].get("outputs")
    if stored is not None:
        return tuple(Output.from_dict(d) for d in stored)
    names = run["config"].get("metrics", ())
    return tuple(o for m in names if m in METRICS for o in declared_outputs(METRICS.get(m)))


def declarations(groups: list[Group]) -> dict[str, Output]:
    """Every metric key of the rows (in an estimate or a floor) with its declaration, in the order the runs declare
    them (a family's keys sorted), undeclared keys last. Where rows declare a key differently (runs by other code)
    the first row's declaration is shown; each row is judged by its own (:func:`group_runs`)."""
    declared: dict[str, Output] = {}
    for g in groups:
        for o in g.declared:
            declared.setdefault(o.key, o)
    order = list(declared.values())
    present = {k for g in groups for k in (*g.estimates, *g.floors)}
    resolved = {key: find_output(order, key) for key in present}
    rank = {o.key: i for i, o in enumerate(order)}
    return {key: resolved[key] for key in sorted(present, key=lambda k: (rank.get(resolved[k].key, len(order)), k))}


def title(groups: list[Group], metric: str) -> str:
    """The declared short title of ``metric`` (its key when undeclared)."""
    return find_output([o for g in groups for o in g.declared], metric).title


def latest_runs(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Per config, the runs of the most recent code that ran it (earlier ones are superseded), each with
    ``changed_code``: the modules whose installed code differs from the code that made the run, and
    ``unknown_code``: the plugin modules this process cannot find to compare. Also returns how many runs were
    superseded."""
    newest: dict[str, dict[str, Any]] = {}
    for run in runs:
        held = newest.get(run["config_key"])
        if held is None or (run["created"], run["key"]) > (held["created"], held["key"]):
            newest[run["config_key"]] = run
    changed: dict[str, list[str]] = {}
    out = []
    for run in runs:
        if newest[run["config_key"]] is not run:
            continue
        code = json.dumps(run["code"], sort_keys=True)
        if code not in changed:
            changed[code] = changed_modules(run["code"])
        # A plugin's module that this process cannot find (the plugin not loaded, or its file moved) cannot be
        # compared: that is "unknown", not "changed" (a report reads the store without loading plugins).
        unknown = [m for m in changed[code] if not m.startswith(f"{PACKAGE}.") and module_file(m) is None]
        stale = [m for m in changed[code] if m not in unknown]
        out.append({**run, "changed_code": stale, "unknown_code": unknown})
    return out, len(runs) - len(out)


def group_runs(runs: list[dict[str, Any]]) -> list[Group]:
    """Group the runs of one problem into table rows, aggregate seeds, mark the best and the "≈ exact" rows.

    Everything a row shows comes from the store: labels, kind, adaptivity and declared orders are stored with each
    run (``info``), so a store reports the same whether or not its solvers are still installed.
    """
    groups: dict[str, Group] = {}
    for run in runs:
        info = run["info"]
        # A row is everything in the run's config but its seed: two training configs, or a steps grid given without
        # budgets, are different rows (their labels say how), never extra "seeds" of one row.
        key = json.dumps({k: v for k, v in run["config"].items() if k != "seed"}, sort_keys=True)
        if key not in groups:
            groups[key] = Group(
                declared=run_outputs(run),
                problem=run["problem"],
                score=info["score_label"],
                label=info["label"],
                solver=run["solver"],
                kind=info["kind"],
                adaptive=bool(info["adaptive"]),
                budget=run["budget"],
                n=run["n"],
                strong_order=info["strong_order"],
                weak_order=info["weak_order"],
            )
        groups[key].runs.append(run)
    out = sorted(groups.values(), key=_order)
    for g in out:
        ok = g.ok_runs
        if ok:
            g.estimates = summarize([_clean(r["metrics"]) for r in ok])
            g.floors = {k: Estimate(float(v[0]), float(v[1]), int(v[2])) for k, v in ok[0]["floors"].items()}
        # the judged outputs, as this row's own runs declare them (main columns with a direction and a floor)
        judged = [(m, find_output(g.declared, m)) for m in g.estimates if m in g.floors]
        judged = [(m, o) for m, o in judged if o.judged]
        # ≥ 3 seeds: with 2 the t-interval is 12.7 standard errors wide and nearly anything passes
        if g.all_ok and len(ok) >= MIN_SEEDS_EXACT_LIKE and judged:
            g.exact_like = all(within_floor(o, g.estimates[m], g.floors[m]) for m, o in judged)
    _mark_best(out)
    return out


def _order(g: Group) -> tuple:
    score_rank = 0 if g.score == "exact" else 1
    # adaptive rows go from coarse to fine tolerance, so NFE grows down the table as it does for fixed-step rows
    budget = -math.inf if g.budget is None else (-g.budget if g.adaptive else g.budget)
    return (score_rank, g.score, FAMILIES.index(g.family), g.label, g.n, budget)


def _mark_best(groups: list[Group]) -> None:
    # Only rows where every seed finished compete: a mean over the surviving seeds of a diverging solver is biased.
    # within one score and one n: a larger n has a lower floor, and would win every column
    # Runs from exact draws of p_T (start = exact) isolate a budget term; they do not compete with real samplers.
    declared, main = declarations(groups), main_metrics(groups)
    for score, n in {(g.score, g.n) for g in groups}:
        rows = [g for g in groups if g.score == score and g.n == n and g.all_ok and g.start == "prior"]
        for metric in main:
            direction = declared[metric].direction
            if direction == "info":  # shown, but no direction to be best in
                continue
            values = [(_badness(direction, g.estimates[metric].mean), g) for g in rows if metric in g.estimates]
            if values:
                best = min(v for v, _ in values)
                for v, g in values:
                    if v == best:
                        g.best.add(metric)


def _badness(direction: str, mean: float) -> float:
    """What "best" minimises: the mean (lower is better), −mean (higher), |mean| (signed, exact value 0)."""
    return {"signed": abs(mean), "higher": -mean}.get(direction, mean)


def main_metrics(groups: list[Group]) -> list[str]:
    """The outputs declared main columns that any row has, in declaration order."""
    present = {m for g in groups for m in g.estimates}
    return [m for m, o in declarations(groups).items() if o.main and m in present]


def all_metrics(groups: list[Group]) -> list[str]:
    """Every metric present in any row, main ones first, then the others in declaration order."""
    present = {m for g in groups for m in g.estimates}
    main = main_metrics(groups)
    return main + [m for m in declarations(groups) if m in present and m not in main]


def floors_by_n(groups: list[Group]) -> dict[int, dict[str, Estimate]]:
    """The noise floors (exact samples of the same n) for each sample size present."""
    out: dict[int, dict[str, Estimate]] = {}
    for g in groups:
        if g.floors:
            out.setdefault(g.n, g.floors)
    return out


def format_estimate(e: Estimate | None) -> str:
    """``mean ± half-width``, with the seed count when there is no interval."""
    if e is None:
        return "—"
    if not math.isfinite(e.half_width):
        return f"{e.mean:.3g} (1 seed)"
    return f"{e.mean:.3g} ± {e.half_width:.2g}"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table_cells(groups: list[Group]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and rows of the main table as text cells, each with whether it is a best value (Markdown and HTML
    share this so they always agree)."""
    metrics = main_metrics(groups)
    floors = floors_by_n(groups)
    many_n = len({g.n for g in groups}) > 1
    any_stale = any(g.stale_runs for g in groups)
    header = ["score", "solver", "budget"] + (["n"] if many_n else []) + ["seeds ok", "status", "NFE", "wall s"]
    header += ["code"] if any_stale else []
    declared = declarations(groups)
    for m in metrics:
        text = declared[m].title
        if len(floors) == 1 and declared[m].floor:  # one sample size: the floor fits in the header
            floor = next(iter(floors.values())).get(m)
            text += f" (floor {format_estimate(floor)})" if floor else ""
        header.append(text)
    header.append("≈ exact")
    rows = []
    for g in groups:
        cells = [g.score, g.label, g.budget_text] + ([str(g.n)] if many_n else [])
        cells += [f"{len(g.ok_runs)}/{len(g.runs)}", g.status, _fmt(g.nfe, ".4g"), _fmt(g.wall_s, ".3g")]
        cells += [g.code_text] if any_stale else []
        row = [(c, False) for c in cells]
        row += [(format_estimate(g.estimates.get(m)), m in g.best) for m in metrics]
        row.append(({True: "yes", False: "no", None: "—"}[g.exact_like], False))
        rows.append(row)
    return header, rows


def failures(groups: list[Group]) -> list[dict[str, Any]]:
    """Every run that did not finish, with its error message."""
    out = []
    for g in groups:
        for r in sorted(g.runs, key=lambda r: r["seed"]):
            if r["status"] != "ok":
                out.append(
                    {
                        "score": g.score,
                        "solver": g.label,
                        "budget": g.budget_text,
                        "n": g.n,
                        "seed": r["seed"],
                        "status": r["status"],
                        "error": (r["error"] or "").strip() or "(no message)",
                    }
                )
    return out


def markdown_table(groups: list[Group]) -> str:
    """The main table in Markdown (best values in bold), then the floors and the runs that did not finish."""
    header, rows = table_cells(groups)
    line = _md_line
    problem = groups[0].problem
    lines = [f"## {problem}", "", line(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [line([f"**{c}**" if best else c for c, best in row]) for row in rows]
    best, verdict = verdict_notes(groups)
    lines += [
        "",
        "Metrics: mean ± 95% CI half-width over seeds, against the exact p_ε; floor = the same metric for exact "
        f"samples of the same n. **Bold**: best mean in the column for that score (rows where every seed finished"
        f"{best}). ≈ exact: every metric within its floor ({verdict}needs ≥ 3 seeds).",
    ]
    floors = floors_by_n(groups)
    if len(floors) > 1:
        metrics = main_metrics(groups)
        declared = declarations(groups)
        lines += ["", "Noise floors:", "", line(["n"] + [declared[m].title for m in metrics])]
        lines.append("|" + "|".join("---" for _ in range(len(metrics) + 1)) + "|")
        for n, fl in sorted(floors.items()):
            lines.append(line([str(n)] + [format_estimate(fl.get(m)) for m in metrics]))
    bad = failures(groups)
    if bad:
        lines += ["", "Runs that did not finish:", ""]
        lines += [
            f"- {b['score']} · {b['solver']} · budget {b['budget']} · seed {b['seed']}: **{b['status']}** — "
            f"{b['error'].splitlines()[0]}"
            for b in bad
        ]
    return "\n".join(lines) + "\n"


def verdict_notes(groups: list[Group]) -> tuple[str, str]:
    """What the tables' notes say about the main columns that are not lower-is-better, from their declarations:
    ("; log p_ε gap by |mean|", "log p_ε gap two-sided; ") for the default metrics (empty strings when none)."""
    declared = declarations(groups)
    main = main_metrics(groups)
    signed = [declared[m].title for m in main if declared[m].direction == "signed"]
    higher = [declared[m].title for m in main if declared[m].direction == "higher"]
    unjudged = [declared[m].title for m in main if not declared[m].judged]
    best = "".join(
        f"; {', '.join(names)} {how}" for names, how in ((signed, "by |mean|"), (higher, "highest")) if names
    )
    verdict = "".join(
        f"{', '.join(names)} {how}; "
        for names, how in ((signed, "two-sided"), (higher, "one-sided from below"), (unjudged, "not judged"))
        if names
    )
    return best, verdict


def summary_cells(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    """The report's headline: per solver, the cheapest budget from which every larger budget is ≈ exact, per score.

    "From which every larger one is too" rather than "the first": with 3 seeds a lucky low budget can pass alone.
    A cell reads e.g. "32 NFE (SW1 0.0071)", or "not within 128 NFE" (the largest budget tried), or "diverged", or
    "undecided (needs ≥ 3 seeds, has 2)" where too few seeds ran to tell.
    """
    scores = sorted({g.score for g in groups}, key=lambda s: (s != "exact", s))
    many_n = len({g.n for g in groups}) > 1
    by_solver: dict[tuple[str, str, int], dict[str, list[Group]]] = {}
    for g in groups:  # one series per sample size: a larger n has a lower floor, so the verdicts differ
        by_solver.setdefault((g.family, g.label, g.n), {}).setdefault(g.score, []).append(g)
    header = ["solver", "kind"] + (["n"] if many_n else []) + [f"{s} score: cheapest ≈ exact" for s in scores]
    rows = []
    order = sorted(by_solver.items(), key=lambda kv: (FAMILIES.index(kv[0][0]), kv[0][1], kv[0][2]))
    for (family, label, n), per_score in order:
        row = [label, family] + ([str(n)] if many_n else [])
        for score in scores:
            series_ = sorted(per_score.get(score, []), key=lambda g: (g.nfe is None, g.nfe or 0.0))
            cell = _cheapest_exact_like(series_) if series_ else "—"
            stale = sum(g.stale_runs for g in series_)
            row.append(cell + (f" [{stale} runs by other code]" if stale else ""))
        rows.append(row)
    return header, rows


def _cheapest_exact_like(series_: list[Group]) -> str:
    if not any(g.all_ok for g in series_):
        return series_[0].status
    cheapest = None
    for g in reversed(series_):  # from the largest budget down, while every row is ≈ exact
        if g.exact_like is not True:
            break
        cheapest = g
    if cheapest is None:
        largest = series_[-1]
        if largest.all_ok and largest.exact_like is None and len(largest.ok_runs) < MIN_SEEDS_EXACT_LIKE:
            # not a "no": with fewer seeds the test cannot tell (its interval is too wide to decide either way)
            return f"undecided (needs ≥ {MIN_SEEDS_EXACT_LIKE} seeds, has {len(largest.ok_runs)})"
        tried = largest.budget_text if largest.adaptive else f"{largest.budget_text} NFE"
        return f"not within {tried}" + ("" if largest.all_ok else f" ({largest.status})")
    sw1 = cheapest.estimates.get("sw1")
    where = cheapest.budget_caption if cheapest.adaptive else f"{cheapest.nfe:.3g} NFE"
    nfe = f", {cheapest.nfe:.3g} NFE" if cheapest.adaptive and cheapest.nfe is not None else ""
    return where + nfe + (f" (SW1 {sw1.mean:.2g})" if sw1 else "")


def markdown_summary(groups: list[Group]) -> str:
    """:func:`summary_cells` as a Markdown table with its explanation."""
    header, rows = summary_cells(groups)
    lines = [f"## {groups[0].problem}: summary", "", _md_line(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [_md_line(r) for r in rows]
    lines += [
        "",
        "Cheapest ≈ exact: the smallest budget from which every larger budget of the solver is indistinguishable "
        "from exact sampling (every metric within its noise floor, over the seeds); NFE = score evaluations per "
        "sample. The full table (every metric, every budget) is in table.md.",
    ]
    return "\n".join(lines) + "\n"


# -- SDEs side by side -------------------------------------------------------------------------------------------------
COMPARISON_NOTE = (
    "Per solver and score, the cheapest budget from which every larger one is ≈ exact (as in each problem's "
    "summary), on every problem of the store side by side; — where the solver did not run on that problem. The same "
    "data under different SDEs (ve-gmm2, vp-gmm2, ...) show what the SDE's own schedule costs or saves a solver."
)


def comparison_cells(problems: list[tuple[str, str, list[Group]]]) -> tuple[list[str], list[list[str]]]:
    """One row per (solver, score), one column per problem ``(name, sde type, groups)``: the cheapest ≈ exact cell.

    Rows are the solvers run with the default start (the prior); ``start = exact`` runs belong to the error budget.
    """
    cells: dict[tuple[int, str, str], dict[str, str]] = {}
    for name, _, groups in problems:
        series_: dict[tuple[int, str, str, int], list[Group]] = {}
        for g in groups:
            if g.start == "prior":
                series_.setdefault((FAMILIES.index(g.family), g.label, g.score, g.n), []).append(g)
        many_n = len({key[3] for key in series_}) > 1
        for (family, label, score, n), gs in series_.items():
            gs.sort(key=lambda g: (g.nfe is None, g.nfe or 0.0))
            text = _cheapest_exact_like(gs) + (f" (n = {n})" if many_n else "")
            row = cells.setdefault((family, label, score), {})
            row[name] = f"{row[name]}; {text}" if name in row else text
    header = ["solver", "kind", "score"] + [f"{name} ({sde})" for name, sde, _ in problems]
    rows = []
    for (family, label, score), per_problem in sorted(
        cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "exact", kv[0][2])
    ):
        rows.append([label, FAMILIES[family], score] + [per_problem.get(name, "—") for name, _, _ in problems])
    return header, rows


def markdown_comparison(problems: list[tuple[str, str, list[Group]]]) -> str:
    """:func:`comparison_cells` as Markdown with its explanation."""
    header, rows = comparison_cells(problems)
    lines = [
        "## SDEs side by side: cheapest ≈ exact",
        "",
        _md_line(header),
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += [_md_line(r) for r in rows]
    return "\n".join([*lines, "", COMPARISON_NOTE]) + "\n"


# -- error budget -----------------------------------------------------------------------------------------------------
#: The metrics an error budget is shown for: the overall distance, the mode weights (where the prior mismatch shows)
#: and a mode's spread (where discretisation and score error show first).
BUDGET_METRICS = ("sw1", "mode_max_dev_se", "mode_std_rel_err_max")


@dataclass
class BudgetRow:
    """One solver × budget × n (× trained score) of an error budget: the four terms of one metric."""

    label: str
    budget_text: str
    n: int
    nfe: float | None
    score: str | None  # the trained score's label, None when only the exact score ran
    floor: Estimate | None
    terms: dict[str, Estimate | None]

    @property
    def dominant(self) -> str:
        """The source that dominates the sampler's error (see :func:`sdebench.metrics.budget.dominant`)."""
        return dominant(self.terms)


def _stored_estimates(run: dict[str, Any], column: str) -> dict[str, Estimate]:
    return {k: Estimate(float(v[0]), float(v[1]), int(v[2])) for k, v in (run.get(column) or {}).items()}


def budget_rows(groups: list[Group], metric: str) -> list[BudgetRow]:
    """The error budget of ``metric`` for every solver and budget that ran with the exact score from exact p_T
    draws (``start = exact``): that run against the floor, the prior-start run and, when present, each trained score
    from the prior (one row per trained score)."""
    index: dict[tuple[str, str, str], Group] = {}
    for g in groups:
        if not g.all_ok or metric not in g.estimates:
            continue
        options = dict(g.runs[0]["config"]["options"])
        options.pop("start", None)
        base = json.dumps([g.solver, options, g.budget, g.n], sort_keys=True)
        index[(base, g.score, g.start)] = g
    rows = []
    for (base, score, start), exact_start in index.items():
        if score != "exact" or start != "exact":
            continue
        prior = index.get((base, "exact", "prior"))
        trained = [g for (b, s, st), g in index.items() if b == base and s != "exact" and st == "prior"]
        truncation = _stored_estimates(exact_start.ok_runs[0], "truncation").get(metric)
        floor = exact_start.floors.get(metric)
        label = prior.label if prior is not None else exact_start.label
        for other in trained or [None]:
            terms = budget_terms(
                floor,
                exact_start.estimates.get(metric),
                prior.estimates.get(metric) if prior else None,
                other.estimates.get(metric) if other else None,
                truncation,
            )
            nfe = (prior or exact_start).nfe
            score_label = other.score if other else None
            rows.append(BudgetRow(label, exact_start.budget_text, exact_start.n, nfe, score_label, floor, terms))
    return sorted(rows, key=lambda r: (r.label, r.n, r.nfe or 0.0, r.score or ""))


BUDGET_NOTE = (
    "Each term is what one departure from exact sampling adds to the metric (mean over seeds ± 95% CI of a "
    "difference; * = distinguishable from 0). discretisation = exact score from exact draws of p_T − floor; "
    "prior mismatch = exact score from the prior − the same from exact p_T draws; score error = the trained "
    "score from the prior − the exact score from the prior; ε-truncation = exact p_data draws judged against "
    "p_ε − floor (for scale: what stopping at ε costs if p_data is the goal). dominant = the largest "
    "significant term of the sampler's own error."
)


def budget_cells(groups: list[Group], metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of ``metric``'s error budget as text cells (Markdown and HTML share them)."""
    header = ["solver", "budget", "NFE", "n", "floor", *SOURCES[:2], "score error (score)", SOURCES[3], "dominant"]
    rows = []
    for r in budget_rows(groups, metric):
        score_cell = format_term(r.terms["score error"]) + (f" ({r.score})" if r.score else "")
        cells = [r.label, r.budget_text, _fmt(r.nfe, ".4g"), str(r.n), format_estimate(r.floor)]
        cells += [format_term(r.terms[s]) for s in SOURCES[:2]] + [score_cell, format_term(r.terms[SOURCES[3]])]
        rows.append([*cells, r.dominant])
    return header, rows


def markdown_budget(groups: list[Group]) -> str:
    """The error budgets as Markdown (one table per metric of :data:`BUDGET_METRICS`), or "" when no run isolates
    them (no ``start = exact`` runs)."""
    sections = []
    for metric in BUDGET_METRICS:
        header, rows = budget_cells(groups, metric)
        if not rows:
            continue
        lines = [f"### {title(groups, metric)}", "", _md_line(header)]
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += [_md_line(row) for row in rows]
        sections.append("\n".join(lines))
    if not sections:
        return ""
    return f"## {groups[0].problem}: error budget\n\n{BUDGET_NOTE}\n\n" + "\n\n".join(sections) + "\n"


def _md_line(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def summary_frame(groups: list[Group]) -> pd.DataFrame:
    """The table as raw numbers for the CSV: per metric mean, CI half-width, floor, floor CI, and a best flag."""
    metrics = all_metrics(groups)
    declared = declarations(groups)
    records = []
    for g in groups:
        rec: dict[str, Any] = {
            "problem": g.problem,
            "score": g.score,
            "solver": g.label,
            "solver_name": g.solver,
            "family": g.family,
            "budget": g.budget,
            "budget_kind": None if g.budget is None else ("tolerance" if g.adaptive else "nfe"),
            "n": g.n,
            "seeds_ok": len(g.ok_runs),
            "seeds_total": len(g.runs),
            "status": g.status,
            "nfe_per_sample": g.nfe,
            "wall_s": g.wall_s,
            "stale_runs": g.stale_runs,
        }
        for m in metrics:
            e, f = g.estimates.get(m), g.floors.get(m)
            rec[f"{m}_mean"] = e.mean if e else np.nan
            rec[f"{m}_ci"] = e.half_width if e else np.nan
            rec[f"{m}_floor"] = f.mean if f else np.nan
            rec[f"{m}_floor_ci"] = f.half_width if f else np.nan
            if declared[m].main:
                rec[f"{m}_best"] = m in g.best
        rec["exact_like"] = g.exact_like
        records.append(rec)
    return pd.DataFrame.from_records(records)


# -- convergence ------------------------------------------------------------------------------------------------------
#: Error measures for the convergence plot, in order of preference (the first present is used).
#: |log p_ε gap| comes first: it is the error of one expectation E[log p_ε(x)] (a weak error), signed, so sampling
#: noise does not add a positive bias the way it does to a distance such as SW1, and its exact value is 0; the bias
#: therefore shows as a clean power law of the step until it meets the Monte-Carlo noise.
CONVERGENCE_METRICS = ("log_density_gap", "mode_std_rel_err_max", "sw1")
#: Errors above this are not in the asymptotic regime an order describes, and are left out of the fit: a gap of
#: a nat or more in E[log p_ε] means samples far outside the modes (at 4–8 NFE some SDE solvers reach 10⁷), whose
#: collapse as the step shrinks would otherwise pass for slopes of −8 to −13. Same units for the fallbacks: a
#: relative std error of 1 (100%) and an SW1 of 1 (the data's unit scale) are just as far from asymptotic.
ASYMPTOTIC_ERROR = 1.0


@dataclass(frozen=True)
class Fit:
    """A least-squares slope of log error against log NFE (``slope`` None when too few points clear the noise)."""

    slope: float | None
    points: int
    used: tuple[bool, ...]


def error_above_floor(output: Output, e: Estimate, floor: Estimate | None) -> tuple[float, float]:
    """(error, noise) of a result, read as ``output`` declares: for a signed output |mean| (its exact value is 0)
    with the result's CI half-width; else its distance from the floor on the bad side (mean − floor, or floor −
    mean when higher is better) with the combined half-width of result and floor (both means are noisy)."""
    if output.direction == "signed":
        return abs(e.mean), e.half_width
    if floor is None or not output.floor:
        return e.mean, e.half_width
    sign = -1.0 if output.direction == "higher" else 1.0
    return sign * (e.mean - floor.mean), math.hypot(e.half_width, floor.half_width)


def fit_slope(
    nfe: list[float], error: list[float], noise: list[float], min_points: int = 3, ceiling: float = ASYMPTOTIC_ERROR
) -> Fit:
    """Slope of log(error) on log(NFE) by least squares over the points above their noise (error > the 95% CI
    half-width ``noise``: the error is significantly non-zero) and below ``ceiling`` (pre-asymptotic errors); not
    fitted (None) with fewer than ``min_points`` such points."""
    used = tuple(
        bool(x > 0 and s < e < ceiling and math.isfinite(s)) for x, e, s in zip(nfe, error, noise, strict=True)
    )
    xs = [math.log(x) for x, u in zip(nfe, used, strict=True) if u]
    ys = [math.log(e) for e, u in zip(error, used, strict=True) if u]
    if len(xs) < min_points or len(set(xs)) < 2:
        return Fit(None, len(xs), used)
    slope = float(np.polyfit(xs, ys, 1)[0])
    return Fit(slope, len(xs), used)


def convergence_metric(groups: list[Group]) -> str | None:
    """The error measure used for the convergence plot (first of :data:`CONVERGENCE_METRICS` present)."""
    present = set(all_metrics(groups))
    return next((m for m in CONVERGENCE_METRICS if m in present), None)


def series(groups: list[Group]) -> dict[tuple[str, str, int], list[Group]]:
    """Rows of the same (score, solver label, n) across budgets, in increasing NFE, for lines in the plots."""
    out: dict[tuple[str, str, int], list[Group]] = {}
    for g in groups:
        out.setdefault((g.score, g.label, g.n), []).append(g)
    return out


def convergence_fits(groups: list[Group], metric: str | None = None) -> dict[tuple[str, str, int], Fit]:
    """The fitted slope for each fixed-step series (adaptive solvers choose their own steps: no order to fit)."""
    metric = metric or convergence_metric(groups)
    out = {}
    for key, rows in series(groups).items():
        rows = [g for g in rows if not g.adaptive and metric in g.estimates and g.nfe]
        if not rows:
            continue
        pairs = [
            error_above_floor(find_output(g.declared, metric), g.estimates[metric], g.floors.get(metric)) for g in rows
        ]
        out[key] = fit_slope([g.nfe for g in rows], [p[0] for p in pairs], [p[1] for p in pairs])
    return out
