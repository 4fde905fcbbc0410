"""The Python API for notebooks: sample, sweep, report, and every stored run as a pandas DataFrame.

Each function does what the command of the same name does, with the same validation (a :class:`UserError`
for bad input, before any work) and the same numbers::

    import sdebench

    out = sdebench.sample("ve-asym3", "dpmpp-2m", nfe=32, n=10_000, seed=1)
    out["metrics"]["sw1"], out["floors"]["sw1"], out["nfe"]

    sdebench.sweep("configs/default.toml", "runs.db", workers=2)
    df = sdebench.results("runs.db")          # one row per run, schema in :func:`results`
    df[df.status == "ok"].groupby(["problem", "solver", "budget"])["metric.sw1"].mean()
    sdebench.report("runs.db", "report/")

Plugins (see :mod:`sdebench.plugins`) load with ``plugins=[...]`` on each function, or by importing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from sdebench.sweeps.sweep import SweepSummary

#: The fixed columns of :func:`results`, in order (then one ``metric.<key>`` and ``floor.<key>`` per output).
RESULT_COLUMNS = (
    "key",
    "config_key",
    "status",
    "problem",
    "sde",
    "score",
    "solver",
    "label",
    "kind",
    "adaptive",
    "start",
    "budget",
    "seed",
    "n",
    "nfe",
    "nfe_per_sample",
    "wall_s",
    "metrics_s",
    "error",
    "created",
    "code_changed",
)


def sample(
    problem: str | dict[str, Any],
    solver: str,
    *,
    score: str = "exact",
    n: int = 10_000,
    seed: int = 0,
    metrics: list[str] | None = None,
    plugins: list[str] = (),  # type: ignore[assignment]
    **options: Any,
) -> dict[str, Any]:
    """Sample ``problem`` (a registered name or a problem spec dict) with ``solver`` and its ``options`` (``nfe``,
    ``steps``, ``grid``, ``rtol``, ...), then judge the samples against the exact p_ε with ``metrics`` (names of
    metrics or of their outputs, e.g. ``["sw1", "mode_balance"]``; default: the default metrics).

    Returns ``samples`` (float64 tensor (n, d)), ``metrics`` and their noise ``floors`` (the same metrics for
    exact n-samples), ``nfe``, ``nfe_per_sample``, ``wall_s`` and the solver's resolved ``options``. The run's
    randomness is ``torch.Generator().manual_seed(seed)``, as in ``sdebench sample``. A trained score is trained
    first or loaded from the cache.
    """
    import torch

    from sdebench.choices import DEFAULT_METRICS
    from sdebench.errors import check
    from sdebench.metrics import compute_metrics, exact_reference, metric_names, noise_floors
    from sdebench.plugins import load_plugins
    from sdebench.problems import get_problem, problem_from_spec
    from sdebench.scores import make_score
    from sdebench.solvers import make_solver

    load_plugins(plugins)
    check(isinstance(n, int) and not isinstance(n, bool) and n > 0, "n", f"must be a positive integer, got {n!r}")
    built = problem_from_spec(problem) if isinstance(problem, dict) else get_problem(problem)
    method = make_solver(solver, **options)
    reason = method.supports(built)
    check(reason is None, "solver", f"{solver!r} does not apply to {built.name!r}: {reason}")
    names = metric_names(list(metrics) if metrics is not None else list(DEFAULT_METRICS), "metrics")
    reference = exact_reference(built)
    result = method.solve(built, make_score(score, built, progress=False), n, torch.Generator().manual_seed(seed))
    return {
        "samples": result.samples,
        "metrics": compute_metrics(names, result.samples, reference),
        "floors": noise_floors(names, reference, n),
        "nfe": result.nfe,
        "nfe_per_sample": result.nfe_per_sample,
        "wall_s": result.wall_s,
        "options": method.options,
        "reference": reference.label,
    }


def sweep(
    config: str | Path | dict[str, Any],
    store: str | Path,
    *,
    workers: int = 1,
    executor: str | None = None,
    scheduler: str | None = None,
    plugins: list[str] = (),  # type: ignore[assignment]
    retry_failed: bool = False,
    progress: bool = False,
) -> SweepSummary:
    """Run a sweep (a TOML file, or the same structure as a dict) into the SQLite ``store``, resumable, exactly as
    ``sdebench sweep`` does: trained scores first (side by side on the workers), then every run not yet stored.
    ``executor`` is serial, pool or dask (default: serial, or pool with several workers)."""
    from sdebench.plugins import load_plugins
    from sdebench.sweeps import Store, expand_sweep, load_sweep
    from sdebench.sweeps.executors import make_executor
    from sdebench.sweeps.sweep import prepare_scores, run_sweep

    extra = load_plugins(plugins)
    runs = (
        expand_sweep(config, "config", plugins=extra) if isinstance(config, dict) else load_sweep(config, plugins=extra)
    )
    chosen = make_executor(executor or ("pool" if workers > 1 else "serial"), workers, scheduler)
    try:
        checkpoints = prepare_scores(runs, progress=progress, executor=chosen)
        with Store(store) as opened:
            return run_sweep(runs, opened, chosen, checkpoints, retry_failed=retry_failed, progress=progress)
    finally:
        chosen.close()


def report(store: str | Path, out: str | Path, density_budget: float | None = None) -> list[Path]:
    """Write the report of everything in ``store`` (tables, plots, one HTML page) into ``out``, reading only the
    store, as ``sdebench report`` does; returns the files written."""
    from sdebench.reports import build_report

    return build_report(store, out, density_budget=density_budget)


def results(store: str | Path, latest: bool = True) -> pd.DataFrame:
    """Every run in ``store`` as one row of a DataFrame, read without writing.

    Columns, in order: :data:`RESULT_COLUMNS` — the run's ``key`` and ``config_key``; ``status`` (ok, diverged,
    failed); ``problem`` and its ``sde`` type; ``score`` (exact, trained, or a plugin's); ``solver`` (registered
    name) and ``label`` (with the options that differ from its defaults); ``kind`` (sde or ode) and ``adaptive``;
    ``start`` (prior, exact, standard-normal); ``budget`` (NFE budget, tolerance, or NaN for defaults); ``seed``;
    ``n``; ``nfe`` (counted score evaluations) and ``nfe_per_sample``; ``wall_s`` (solver) and ``metrics_s``;
    ``error`` (why a run failed or diverged); ``created`` (Unix time); ``code_changed`` (modules whose installed
    code differs from the code that made the run, comma-separated, empty when none). Then for every metric
    output ``metric.<key>`` (NaN where not computed or not finite) and its noise floor ``floor.<key>`` (the mean
    over exact draws). With ``latest`` (default) only the newest code's run of each config is kept, as reports do.
    """
    import pandas as pd

    from sdebench.reports.tables import latest_runs
    from sdebench.sweeps import Store

    with Store(store, readonly=True) as opened:
        runs = opened.runs()
    if latest:
        runs, _ = latest_runs(runs)
    rows = []
    for run in runs:
        config, info = run["config"], run["info"]
        row = {
            "key": run["key"],
            "config_key": run["config_key"],
            "status": run["status"],
            "problem": run["problem"],
            "sde": config["problem"].get("sde", {}).get("type", "ve"),
            "score": config["score"]["name"],
            "solver": run["solver"],
            "label": info.get("label", run["solver"]),
            "kind": info.get("kind"),
            "adaptive": info.get("adaptive"),
            "start": config["options"].get("start", "prior"),
            "budget": run["budget"],
            "seed": run["seed"],
            "n": run["n"],
            "nfe": run["nfe"],
            "nfe_per_sample": run["nfe_per_sample"],
            "wall_s": run["wall_s"],
            "metrics_s": run["metrics_s"],
            "error": run["error"] or "",
            "created": run["created"],
            "code_changed": ", ".join(run.get("changed_code", [])),
        }
        row.update({f"metric.{k}": v for k, v in run["metrics"].items()})
        row.update({f"floor.{k}": v[0] for k, v in run["floors"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(RESULT_COLUMNS))
    extra = sorted(c for c in frame.columns if c not in RESULT_COLUMNS)
    numeric = [c for c in extra if c.startswith(("metric.", "floor."))]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")  # stored nulls (not finite) become NaN
    return frame[list(RESULT_COLUMNS) + extra]
