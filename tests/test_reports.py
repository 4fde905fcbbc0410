"""The sweep report: tables, plots and HTML from a store, on synthetic rows whose numbers we chose (so the best
values, statuses and slopes are known) and on one small real sweep."""

from __future__ import annotations

import base64
import math
import re
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sdebench
from sdebench.errors import UserError
from sdebench.reports import build_report
from sdebench.reports import report as report_module
from sdebench.reports.tables import convergence_fits, fit_slope, group_runs
from sdebench.sweeps import Store, expand_sweep, solver_label

SWEEP = {
    "sweep": [
        {
            "problems": ["ve-gmm2"],
            "scores": ["exact"],
            "solvers": [{"name": "em"}, {"name": "edm-heun"}, {"name": "pc", "snr": [0.08]}, {"name": "scipy-rk45"}],
            "budgets": [10, 20, 40, 80],
            "tolerances": [1e-2, 1e-3],
            "seeds": [0, 1, 2],
            "n": [1000],
        }
    ]
}
FLOOR_SW1 = 0.01
# edm-heun at NFE 80 is made the best SW1; em follows |gap| = 3 NFE^-2 exactly up to a tiny seed noise.
BEST = ("edm-heun", 80.0)


def _synthetic_metrics(solver: str, budget: float | None, seed: int, adaptive: bool) -> dict[str, float]:
    nfe = 40.0 / budget if adaptive else budget  # adaptive: finer tolerance, more NFE (1e-2 -> 4000, 1e-3 -> 40000)
    wiggle = 1 + 1e-3 * (seed - 1)  # mean over seeds 0, 1, 2 is exactly the noiseless value
    sw1 = FLOOR_SW1 + (0.5 if solver != BEST[0] else 0.2) / nfe
    if (solver, budget) == BEST:
        sw1 = FLOOR_SW1 * 0.99  # below the floor: sampling noise
    return {
        "sw1": sw1 * wiggle,
        "energy": 1e-4 * wiggle,
        "log_density_gap": -3.0 * nfe**-2 * wiggle,
        "mode_max_dev_se": 1.0 * wiggle,
    }


def _fill(store: Store) -> list:
    """Synthetic results for every run of SWEEP; em at NFE 10 diverges on seed 2, scipy-rk45 at 1e-2 always fails."""
    specs = expand_sweep(SWEEP)
    floors = {"sw1": [FLOOR_SW1, 0.001, 5], "energy": [1e-4, 1e-5, 5], "log_density_gap": [0.0, 1e-4, 5]}
    floors["mode_max_dev_se"] = [1.0, 0.5, 5]
    rng = np.random.default_rng(0)
    for spec in specs:
        adaptive = spec.solver == "scipy-rk45"
        result = spec.result()
        if spec.solver == "em" and spec.budget == 10 and spec.seed == 2:
            result.status, result.error = "diverged", "NaN at step 3"
        elif adaptive and spec.budget == 1e-2:
            result.status, result.error = "failed", "RuntimeError: boom"
        else:
            result.metrics = _synthetic_metrics(spec.solver, spec.budget, spec.seed, adaptive)
            result.floors = floors
            result.nfe = result.nfe_per_sample = 40.0 / spec.budget if adaptive else spec.budget
            result.wall_s = 0.01
            result.preview = rng.normal(size=(500, 2)).astype(np.float32)
        store.record(result)
    return specs


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list, list[Path]]:
    """A synthetic store, its report folder, the specs and the files written."""
    root = tmp_path_factory.mktemp("report")
    with Store(root / "runs.db") as store:
        specs = _fill(store)
    files = build_report(root / "runs.db", root / "out")
    return root / "runs.db", root / "out", specs, files


def _markdown_rows(text: str) -> list[list[str]]:
    """Body rows of the first Markdown table, as cells without bold markers."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip().strip("*") for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_files_written(synthetic) -> None:
    _, out, _, files = synthetic
    names = {p.relative_to(out).as_posix() for p in files}
    expected = {"summary.md", "table.md", "table.csv", "work_precision.png", "convergence.png", "density.png"}
    expected.add("report.html")
    assert names == {f"ve-gmm2/{n}" for n in expected} | {"index.html"}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == names  # no temporary file left behind
    for p in files:
        if p.suffix == ".png":
            assert p.read_bytes().startswith(b"\x89PNG")


def test_markdown_one_row_per_score_solver_budget(synthetic) -> None:
    _, out, specs, _ = synthetic
    rows = _markdown_rows((out / "ve-gmm2" / "table.md").read_text())
    expected = {("exact", solver_label(s.solver, s.options, s.budget), s.budget) for s in specs}
    assert len(rows) == len(expected) == 4 * 3 + 2  # em, edm-heun, pc × 4 budgets; rk45 × 2 tolerances
    shown = {(r[0], r[1], r[2]) for r in rows}
    budget_text = {b: (f"tol {b:.0e}" if b < 1 else f"{b:g}") for _, _, b in expected}
    assert shown == {(score, label, budget_text[b]) for score, label, b in expected}


def test_csv_raw_numbers_and_best(synthetic) -> None:
    _, out, _, _ = synthetic
    frame = pd.read_csv(out / "ve-gmm2" / "table.csv")
    for column in ("sw1_mean", "sw1_ci", "sw1_floor", "nfe_per_sample", "wall_s", "log_density_gap_mean"):
        assert pd.api.types.is_float_dtype(frame[column]), column
    best = frame[frame["sw1_best"]]
    assert list(zip(best["solver"], best["budget"], strict=True)) == [BEST]
    # seed wiggles are symmetric, so the mean is the noiseless value
    row = frame[(frame["solver"] == "em") & (frame["budget"] == 40)].iloc[0]
    assert row["sw1_mean"] == pytest.approx(FLOOR_SW1 + 0.5 / 40, rel=1e-9)
    assert row["sw1_ci"] > 0 and row["seeds_ok"] == 3
    # the gap is signed: the best is the smallest |mean|, i.e. the largest NFE among rows where every seed finished
    gap_best = frame[frame["log_density_gap_best"]]
    assert list(gap_best["solver"]) == ["scipy-rk45"] and gap_best["budget"].iloc[0] == pytest.approx(1e-3)
    # a row whose every seed failed has no numbers and no best mark
    failed = frame[frame["status"].str.startswith("failed")].iloc[0]
    assert math.isnan(failed["sw1_mean"]) and not failed["sw1_best"]


def test_diverged_and_failed_visible(synthetic) -> None:
    _, out, _, _ = synthetic
    text = (out / "ve-gmm2" / "table.md").read_text()
    rows = {(r[1], r[2]): r for r in _markdown_rows(text)}
    assert rows[("em", "10")][4] == "diverged (1/3)" and rows[("em", "10")][3] == "2/3"
    assert rows[("scipy-rk45", "tol 1e-02")][4] == "failed (3/3)"
    assert rows[("em", "20")][4] == "ok"
    assert "NaN at step 3" in text and "RuntimeError: boom" in text
    html = (out / "ve-gmm2" / "report.html").read_text()
    assert "diverged (1/3)" in html and "failed (3/3)" in html and "NaN at step 3" in html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append(attributes.get("class") or "")
        if tag == "img":
            self.images.append(attributes.get("src") or "")


@pytest.mark.parametrize("page", ["ve-gmm2/report.html", "index.html"])
def test_html_self_contained(synthetic, page: str) -> None:
    _, out, _, _ = synthetic
    parser = _Collect()
    parser.feed((out / page).read_text())
    parser.close()
    assert parser.tables == ["header", "summary", "main", "failures", "slopes"]
    assert len(parser.images) == 3
    for src in parser.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :], validate=True).startswith(b"\x89PNG")


def test_fitted_slope_recovers_power_law(synthetic) -> None:
    store_path, _, _, _ = synthetic
    with Store(store_path, readonly=True) as store:
        groups = group_runs(store.runs())
    fits = convergence_fits(groups)
    # em's |gap| = 3 NFE^-2: the diverged NFE-10 row still has two seeds (wiggles ±0.1% shift its mean by 0.05%)
    assert fits[("exact", "em", 1000)].slope == pytest.approx(-2.0, abs=0.05)
    assert ("exact", "scipy-rk45", 1000) not in fits  # adaptive: no order to fit


def test_fit_slope_needs_points_above_noise() -> None:
    nfe = [10.0, 20.0, 40.0, 80.0]
    error = [5 * x**-1.5 for x in nfe]
    assert fit_slope(nfe, error, [0.0] * 4).slope == pytest.approx(-1.5, abs=1e-9)
    # only two points clear their noise: not fitted rather than a slope flattened by the noise
    fit = fit_slope(nfe, error, [0.01, 0.02, 0.1, 0.1])
    assert fit.slope is None and fit.used == (True, True, False, False)


def _no_files(path: Path) -> bool:
    return not path.exists() or not any(path.rglob("*"))


def test_bad_store_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        build_report(tmp_path / "missing.db", out)
    assert err.value.field == "store"
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(UserError) as err:
        build_report(tmp_path / "notes.txt", out)
    assert err.value.field == "store"
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(UserError, match="not an sdebench store"):
        build_report(tmp_path / "other.db", out)
    Store(tmp_path / "empty.db").close()
    with pytest.raises(UserError, match="holds no runs") as err:
        build_report(tmp_path / "empty.db", out)
    assert err.value.field == "store"
    assert not out.exists()


def test_bad_out_and_budget_write_nothing(synthetic, tmp_path: Path) -> None:
    store_path = synthetic[0]
    with pytest.raises(UserError) as err:
        build_report(store_path, tmp_path / "no" / "such" / "out")
    assert err.value.field == "out"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as err:
        build_report(store_path, tmp_path / "file")
    assert err.value.field == "out"
    with pytest.raises(UserError, match="present: 10, 20, 40, 80") as err:
        build_report(store_path, tmp_path / "out", density_budget=30)
    assert err.value.field == "budget"
    assert not (tmp_path / "out").exists() and not (tmp_path / "no").exists()


def test_failure_while_rendering_leaves_nothing(synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report_module, "work_precision_png", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        build_report(synthetic[0], tmp_path / "out")
    assert _no_files(tmp_path / "out")


def _run_serial(config: dict, store_path: Path) -> None:
    """Run a sweep config serially into a new store (the real sweeps of these tests)."""
    from sdebench.sweeps.executors import make_executor
    from sdebench.sweeps.sweep import prepare_scores, run_sweep

    runs = expand_sweep(config)
    with Store(store_path) as store:
        run_sweep(runs, store, make_executor("serial", 1), prepare_scores(runs, progress=False), progress=False)


def test_real_sweep(tmp_path: Path) -> None:
    """A small real sweep end to end: exact score, an SDE and an ODE solver, two seeds."""
    config = {
        "sweep": [
            {
                "problems": ["ve-gmm2"],
                "scores": ["exact"],
                "solvers": [{"name": "em"}, {"name": "dpmpp-2m"}],
                "budgets": [10, 40],
                "seeds": [0, 1],
                "n": [500],
                "metrics": ["sliced_wasserstein", "log_density", "mode_balance"],
            }
        ]
    }
    _run_serial(config, tmp_path / "runs.db")
    files = build_report(tmp_path / "runs.db", tmp_path / "out", density_budget=40)
    table = (tmp_path / "out" / "ve-gmm2" / "table.md").read_text()
    rows = _markdown_rows(table)
    assert sorted((r[1], r[2]) for r in rows) == [("dpmpp-2m", "10"), ("dpmpp-2m", "40"), ("em", "10"), ("em", "40")]
    assert all(r[3] == "2/2" and r[4] == "ok" for r in rows)
    assert "SW1 (floor" in table and "energy" not in table  # only the metrics that were computed
    assert all(p.stat().st_size > 0 for p in files)


def test_summary_cheapest_exact_like_needs_every_larger_budget():
    """The summary names the smallest budget from which every larger one is ≈ exact (a lone lucky pass is not it)."""
    from sdebench.reports.tables import Group, _cheapest_exact_like

    def group(budget, flag):
        run = {"status": "ok", "nfe_per_sample": float(budget), "wall_s": 0.1, "seed": 0}
        return Group("p", "exact", "em", "em", "sde", False, float(budget), 100, runs=[run], exact_like=flag)

    assert _cheapest_exact_like([group(8, True), group(16, False), group(32, True), group(64, True)]) == "32 NFE"
    assert _cheapest_exact_like([group(8, True), group(16, False)]) == "not within 16 NFE"


def test_summary_with_too_few_seeds_is_undecided_not_a_no():
    """Fewer than 3 seeds cannot decide "≈ exact": the summary says so instead of a false "not within"."""
    from sdebench.reports.tables import Group, _cheapest_exact_like

    def group(budget, seeds, flag):
        runs = [{"status": "ok", "nfe_per_sample": float(budget), "wall_s": 0.1, "seed": s} for s in range(seeds)]
        return Group("p", "exact", "em", "em", "sde", False, float(budget), 100, runs=runs, exact_like=flag)

    assert _cheapest_exact_like([group(8, 2, None), group(16, 2, None)]) == "undecided (needs ≥ 3 seeds, has 2)"
    assert _cheapest_exact_like([group(8, 3, False), group(16, 3, False)]) == "not within 16 NFE"


def test_fit_slope_leaves_out_pre_asymptotic_errors() -> None:
    """Errors of 10⁷ at 4 NFE collapsing to 1e-2 would pass for a slope of −10; only errors below 1 are fitted."""
    nfe = [4.0, 8.0, 16.0, 32.0, 64.0]
    error = [1e7, 0.2, 0.1, 0.05, 0.025]
    fit = fit_slope(nfe, error, [0.0] * 5)
    assert fit.used == (False, True, True, True, True)
    assert fit.slope == pytest.approx(-1.0, abs=1e-9)


def test_rows_are_whole_configs_never_merged_as_seeds(tmp_path: Path) -> None:
    """Two training configs, or a steps grid given without budgets, are separate rows with labels that say how."""
    specs = expand_sweep(
        {
            "sweep": [
                {
                    "problems": ["ve-gmm2"],
                    "scores": [{"name": "trained", "steps": 100}, {"name": "trained", "steps": 300}],
                    "solvers": [{"name": "em", "steps": [10, 40]}],
                    "seeds": [0, 1, 2],
                    "n": [100],
                }
            ]
        }
    )
    with Store(tmp_path / "runs.db") as store:
        for spec in specs:
            store.record(spec.result(metrics={"sw1": 0.1}, floors={}))
        groups = group_runs(store.runs())
    assert len(groups) == 4 and all(len(g.runs) == 3 for g in groups)
    assert {(g.score, g.label) for g in groups} == {
        (f"trained (steps={a})", f"em (steps={b})") for a in (100, 300) for b in (10, 40)
    }


def test_reports_need_nothing_but_the_store(synthetic, tmp_path: Path) -> None:
    """A store whose solver no longer exists (renamed, or from a plugin that is not installed) reports as before:
    kind, adaptivity, labels and declared orders are stored with each run."""
    store_path, out, _, _ = synthetic
    copy = tmp_path / "runs.db"
    shutil.copy(store_path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "UPDATE runs SET solver = 'gone-plugin', info = replace(info, '\"em', '\"gone-plugin') WHERE solver = 'em'"
        )
    build_report(copy, tmp_path / "out")
    rows = _markdown_rows((tmp_path / "out" / "ve-gmm2" / "table.md").read_text())
    assert {r[1] for r in rows} == {r[1] for r in _markdown_rows((out / "ve-gmm2" / "table.md").read_text())} - {
        "em"
    } | {"gone-plugin"}
    assert "gone-plugin" in (tmp_path / "out" / "ve-gmm2" / "summary.md").read_text()


def test_declared_orders_are_those_of_the_configured_instance(tmp_path: Path) -> None:
    """pc with corrector none declares its predictor's order 1 and edm-stochastic with churn declares none: the
    report shows what the configured instance declares, not the class default."""
    specs = expand_sweep(
        {
            "sweep": [
                {
                    "problems": ["ve-gmm2"],
                    "solvers": [
                        {"name": "pc", "corrector": "none"},
                        {"name": "pc"},
                        {"name": "edm-stochastic"},
                        {"name": "edm-stochastic", "S_churn": 10.0},
                    ],
                    "budgets": [10, 20, 40],
                    "seeds": [0, 1, 2],
                    "n": [100],
                }
            ]
        }
    )
    with Store(tmp_path / "runs.db") as store:
        for spec in specs:
            gap = -(spec.budget**-1.0) * (1 + 1e-3 * spec.seed)
            store.record(
                spec.result(
                    metrics={"log_density_gap": gap},
                    floors={"log_density_gap": [0.0, 1e-9, 5]},
                    nfe=spec.budget,
                    nfe_per_sample=spec.budget,
                    wall_s=0.1,
                )
            )
        groups = group_runs(store.runs())
    declared = {g.label: g.weak_order for g in groups}
    assert declared == {
        "pc (corrector=none)": 1.0,
        "pc": None,
        "edm-stochastic": 2.0,
        "edm-stochastic (S_churn=10.0)": None,
    }
    build_report(tmp_path / "runs.db", tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    slopes = page[page.index('class="slopes"') :]
    assert re.search(r"pc \(corrector=none\)</td>.*?<td[^>]*>1</td></tr>", slopes)


def test_reports_import_no_solver() -> None:
    """Building a report loads no solver module (checked in a fresh interpreter), and the report and metric layers
    never name the solver registry."""
    code = (
        "import sys; import sdebench.reports; print(sorted(m for m in sys.modules if m.startswith('sdebench.solvers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    root = Path(sdebench.__file__).parent
    for layer in ("reports", "metrics"):
        for path in (root / layer).glob("*.py"):
            assert not re.search(r"SOLVERS|sdebench\.solvers", path.read_text()), path


def test_real_sweep_on_two_sdes_gives_budget_and_side_by_side(tmp_path: Path) -> None:
    """A small real sweep over ve-asym3 and vp-gmm2 with prior- and exact-start runs: each problem gets budget.md
    (one row per solver × budget that ran from both starts, every term a number with its half-width), and the
    report a side-by-side table with one column per problem, in comparison.md and first in index.html."""
    config = {
        "sweep": [
            {
                "problems": ["ve-asym3", "vp-gmm2"],
                "scores": ["exact"],
                "solvers": [{"name": "dpmpp-2m", "start": ["prior", "exact"]}, {"name": "em"}],
                "budgets": [16],
                "seeds": [0, 1],
                "n": [500],
                "metrics": ["sliced_wasserstein", "mode_balance", "mode_moments"],
            }
        ]
    }
    _run_serial(config, tmp_path / "runs.db")
    build_report(tmp_path / "runs.db", tmp_path / "out")
    for problem in ("ve-asym3", "vp-gmm2"):
        budget = (tmp_path / "out" / problem / "budget.md").read_text()
        rows = [r for r in _markdown_rows(budget) if r[0] == "dpmpp-2m"]
        assert len(rows) == 3  # one per budget metric (SW1, mode weights, mode spread), for the one budget
        for row in rows:
            discretisation, prior = row[5], row[6]
            assert re.fullmatch(r"[+-][0-9.e+-]+ ± [0-9.e+-]+\*?", discretisation), row
            assert re.fullmatch(r"[+-][0-9.e+-]+ ± [0-9.e+-]+\*?", prior), row
            assert row[7] == "—"  # no trained score in this sweep
    comparison = (tmp_path / "out" / "comparison.md").read_text()
    header = comparison.splitlines()[2]
    assert "ve-asym3 (ve)" in header and "vp-gmm2 (vp)" in header
    labels = [r[0] for r in _markdown_rows(comparison)]
    assert sorted(labels) == ["dpmpp-2m", "em"]  # start = exact runs belong to the budget, not to this table
    index = (tmp_path / "out" / "index.html").read_text()
    assert index.index('id="comparison"') < index.index('id="ve-asym3"')


def test_plot_styles_are_one_per_solver_across_panels_and_axes_are_shared():
    """SDE, ODE and adaptive solvers never share a colour (25 labels, as on ve-gmm2's report), a solver keeps its
    colour in a figure of fewer families, and the panels share the NFE axis (all) and the metric axis (per row)."""
    import matplotlib.pyplot as plt

    from sdebench.reports.plots import _family_grid, _styles
    from sdebench.reports.tables import Group

    def group(label, kind, adaptive, score="exact"):
        return Group("p", score, label, label, kind, adaptive, 1e-3 if adaptive else 16.0, 100)

    groups = [group(f"sde{i}", "sde", False) for i in range(12)]
    groups += [group(f"ode{i}", "ode", False) for i in range(5)]
    groups += [group(f"ada{i}", "ode", True) for i in range(8)]
    styles = _styles(groups)
    assert len({tuple(s["color"]) for s in styles.values()}) == len(groups) == 25
    fixed_only = _styles([g for g in groups if not g.adaptive])
    assert all(fixed_only[label] == styles[label] for label in fixed_only)
    fig, axes, scores, families, _ = _family_grid([*groups, group("sde0", "sde", False, score="trained")])
    assert len(scores) == 2 and len(families) == 3
    corner, far = axes[0][0], axes[1][2]
    assert corner.get_shared_x_axes().joined(corner, far)
    assert corner.get_shared_y_axes().joined(corner, axes[0][2]) and not corner.get_shared_y_axes().joined(corner, far)
    plt.close(fig)
