"""Search for the time grid that makes a solver best at a fixed NFE (the idea of GITS and Align Your Steps).

With the exact score of a mixture problem, a fixed-step solver's samples at a given NFE are a function of its grid
alone (and of the seed). The search varies the grid's interior points and keeps the one that minimises an
objective computed from the samples:

- ``margin`` (default): the worst ratio of the "within noise" bars (:func:`sdebench.metrics.quality_margin`): at
  most 1 exactly when every bar holds, so minimising it aims straight at the verdict;
- any metric output, such as ``sw1``, ``mmd2`` or ``mode_std_rel_err_max`` (signed outputs by absolute value).

The search moves positions u_0 = 0 < u_1 < … < u_N = 1 in normalised log σ (0 at σ(T), 1 at σ(t_end)); the grid
is saved as its σ's (see :func:`sdebench.solvers.grids.saved_grid` for why σ is what carries over between SDEs).
The search is Nelder–Mead on the logs of the N increments, started from each built-in grid in turn; every trial
samples with the same seed (common random numbers), so the objective is a deterministic function of the grid and
differences between grids are not sampling noise. That also means the optimum is fitted to that one sample's
noise: honest use searches on one seed (and problem) and judges on others, which :func:`judge` does.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sdebench.errors import DivergedError, check
from sdebench.metrics import compute_metrics, exact_reference, metric_names, noise_floors
from sdebench.metrics.base import QUALITY_METRICS, quality_failures, quality_margin
from sdebench.problems import Problem
from sdebench.scores import make_score
from sdebench.scores.base import Score
from sdebench.solvers import SOLVERS, make_solver
from sdebench.solvers.base import FixedStepSolver
from sdebench.solvers.grids import GRIDS, make_grid, positions_of, times_from_positions

#: The built-in grids the search starts from.
START_GRIDS = ("karras", "log-sigma", "polyexponential", "time-quadratic")
#: The objective that aims at the verdict itself.
MARGIN = "margin"


@dataclass
class GridSearchResult:
    """What a search found: the grid (positions in normalised log σ and its σ's), its objective value, the start
    grids' values, and what it cost."""

    problem: str
    solver: str
    options: dict[str, Any]
    nfe: int
    steps: int
    objective: str
    seed: int
    n: int
    positions: list[float]
    sigmas: list[float]
    value: float
    starts: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: solver, NFE, problem, objective and value."""
        return (
            f"{self.solver} at {self.nfe} NFE on {self.problem}: {self.objective} {self.value:.4g} "
            f"(seed {self.seed}, n = {self.n})"
        )


class _Objective:
    """The objective as a function of a grid's positions; a solver that diverges on a grid scores +inf."""

    def __init__(
        self, problem: Problem, solver: FixedStepSolver, score: Score, objective: str, n: int, seed: int
    ) -> None:
        self.problem, self.solver, self.score, self.n, self.seed = problem, solver, score, n, seed
        self.objective = objective
        self.reference = exact_reference(problem)
        self.metrics = QUALITY_METRICS if objective == MARGIN else metric_names([objective], "objective")
        self.floors = noise_floors(QUALITY_METRICS, self.reference, n) if objective == MARGIN else {}
        self.calls = 0

    def __call__(self, positions: list[float]) -> float:
        self.calls += 1
        self.solver.on_grid(lambda problem, steps: times_from_positions(problem, positions))
        try:
            samples = self.solver.solve(self.problem, self.score, self.n, torch.Generator().manual_seed(self.seed))
        except DivergedError:
            return math.inf
        finally:
            self.solver.on_grid(None)
        values = compute_metrics(self.metrics, samples.samples, self.reference)
        if self.objective == MARGIN:
            return quality_margin(values, self.floors)
        check(self.objective in values, "objective", f"{self.objective!r} is not an output of its metric")
        return abs(values[self.objective])


def _positions(z: np.ndarray) -> list[float]:
    """Positions from the logs of the increments (any real vector: increments exp(z), normalised to sum 1)."""
    increments = np.exp(z - z.max())
    cumulative = np.concatenate([[0.0], np.cumsum(increments)])
    positions = [float(u) for u in cumulative / cumulative[-1]]
    positions[-1] = 1.0
    return positions


def fixed_step_solver(name: str, nfe: int, options: dict[str, Any] | None = None) -> FixedStepSolver:
    """The solver ``name`` at an NFE budget, refused (one-line error) when it does not walk a grid or when the
    options set what the search chooses."""
    check(isinstance(nfe, int) and nfe > 0, "nfe", f"must be a positive integer, got {nfe!r}")
    check(
        issubclass(SOLVERS.get(name, "solver"), FixedStepSolver),
        "solver",
        f"{name!r} chooses its own steps: there is no grid to search",
    )
    options = dict(options or {})
    check("grid" not in options, "grid", "is what the search chooses: do not set it")
    check("steps" not in options and "nfe" not in options, "nfe", "give the budget as --nfe only")
    return make_solver(name, nfe=nfe, **options)


def search_grid(
    problem: Problem,
    solver_name: str,
    nfe: int,
    options: dict[str, Any] | None = None,
    objective: str = MARGIN,
    n: int = 20_000,
    seed: int = 0,
    evaluations: int = 400,
    score: Score | None = None,
) -> GridSearchResult:
    """The grid minimising ``objective`` for ``solver_name`` at ``nfe`` on ``problem`` (exact score by default).

    Nelder–Mead from each of :data:`START_GRIDS` with an equal share of ``evaluations`` objective calls; the best
    grid seen wins (a start grid itself when nothing beats it).
    """
    from scipy.optimize import minimize

    check(isinstance(n, int) and n >= 100, "n", f"must be an integer >= 100, got {n!r}")
    check(isinstance(evaluations, int) and evaluations > 0, "evaluations", f"must be > 0, got {evaluations!r}")
    check(objective == MARGIN or isinstance(objective, str), "objective", "must be 'margin' or a metric output")
    solver = fixed_step_solver(solver_name, nfe, options)
    if objective != MARGIN:
        metric_names([objective], "objective")
    steps = solver.options["steps"]
    started = time.perf_counter()
    score = score if score is not None else make_score("exact", problem)
    measure = _Objective(problem, solver, score, objective, n, seed)
    start_positions = {name: positions_of(problem, make_grid(name, problem, steps)) for name in START_GRIDS}
    starts = {name: measure(positions) for name, positions in start_positions.items()}
    best_positions, best_value = min(
        ((start_positions[name], value) for name, value in starts.items()), key=lambda pair: pair[1]
    )
    if steps > 1:  # one step has no interior point to move
        # The objective has many local minima (which grid point lands near the modes' scale matters most), so
        # Nelder–Mead starts from every built-in grid that is finite there, with an equal share of the budget,
        # in order from the best start.
        ordered = sorted((value, name) for name, value in starts.items() if math.isfinite(value))
        share = max((evaluations - len(starts)) // max(len(ordered), 1), 1)
        for _, name in ordered:
            z = np.log(np.maximum(np.diff(start_positions[name]), 1e-12))
            found = minimize(
                lambda v: measure(_positions(v)),
                z,
                method="Nelder-Mead",
                options={"maxfev": share, "xatol": 1e-4, "fatol": 1e-5, "adaptive": True},
            )
            if found.fun < best_value:
                best_positions, best_value = _positions(found.x), float(found.fun)
    positions = best_positions
    sigmas = [float(problem.sde.sigma(t)) for t in times_from_positions(problem, positions)]
    return GridSearchResult(
        problem=problem.name,
        solver=solver_name,
        options={k: v for k, v in (options or {}).items()},
        nfe=nfe,
        steps=steps,
        objective=objective,
        seed=seed,
        n=n,
        positions=positions,
        sigmas=sigmas,
        value=best_value,
        starts=starts,
        evaluations=measure.calls,
        seconds=time.perf_counter() - started,
    )


@dataclass
class Verdict:
    """The bars on one seed: the margin (≤ 1 passes), the failures, and the bar metrics."""

    seed: int
    margin: float
    failures: list[str]
    metrics: dict[str, float]


def judge(
    problem: Problem,
    solver: FixedStepSolver,
    seeds: list[int],
    n: int = 20_000,
    positions: list[float] | None = None,
    score: Score | None = None,
) -> list[Verdict]:
    """The bars for ``solver`` on ``problem`` at each seed: on its own grid, or on ``positions`` when given."""
    score = score if score is not None else make_score("exact", problem)
    reference = exact_reference(problem)
    floors = noise_floors(QUALITY_METRICS, reference, n)
    if positions is not None:
        solver.on_grid(lambda p, steps: times_from_positions(p, positions))
    verdicts = []
    try:
        for seed in seeds:
            try:
                samples = solver.solve(problem, score, n, torch.Generator().manual_seed(seed)).samples
            except DivergedError as exc:
                verdicts.append(Verdict(seed, math.inf, [str(exc)], {}))
                continue
            values = compute_metrics(QUALITY_METRICS, samples, reference)
            verdicts.append(Verdict(seed, quality_margin(values, floors), quality_failures(values, floors), values))
    finally:
        solver.on_grid(None)
    return verdicts


def check_grid_name(name: str) -> None:
    """A name a new grid may take: letters, digits, - and _, not taken by a built-in or loaded grid."""
    check(name not in GRIDS, "name", f"a grid called {name!r} exists already (built-in or loaded)")
    ok = name != "" and name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    check(ok, "name", f"use letters, digits, - and _, got {name!r}")


def grid_plugin_source(name: str, result: GridSearchResult) -> str:
    """A plugin file registering the found grid under ``name``: load it with ``--plugin FILE`` or a sweep's
    ``plugins = [...]``, then use ``grid = "<name>"`` like a built-in grid (its code is fingerprinted like any
    plugin's, so an edited grid makes new run keys)."""
    check_grid_name(name)
    info = {
        "solver": result.solver,
        "options": result.options,
        "nfe": result.nfe,
        "problem": result.problem,
        "objective": result.objective,
        "value": result.value,
        "seed": result.seed,
        "n": result.n,
        "summary": result.summary(),
    }
    lines = [
        f'"""Grid {_literal(name)}, found by `sdebench grid-search`:',
        "",
        f"{result.summary()}.",
        f"σ on {result.problem}: {', '.join(f'{s:.4g}' for s in result.sigmas)}",
        f"Load this file with --plugin (or a sweep's plugins = [...]) and use it as grid = {_literal(name)}.",
        '"""',
        "",
        "from sdebench.solvers.grids import saved_grid",
        "",
        "saved_grid(",
        f"    {_literal(name)},",
        "    [",
        *(f"        {sigma!r}," for sigma in result.sigmas),
        "    ],",
    ]
    lines += [f"    {key}={_literal(value)}," for key, value in info.items()]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    """Python source for a plain value, quoted as ruff's formatter would (double quotes), so the file lints clean."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)
