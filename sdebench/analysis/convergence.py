"""Convergence analysis: strong and weak errors of a solver against a fine run of itself on the same Brownian path.

For each step count the solver runs from the same initial points (same seed) on the same Brownian path as a
reference run with many more steps, so the differences are discretisation error only. The path is by default a
seeded :class:`PartitionBrownian` on the nodes of every grid of the study (any grid, Lévy areas included);
``path="interval"`` uses a torchsde ``BrownianInterval`` instead (about ten times slower), ``path="nested"``
increments summed in order from a fine uniform grid (memory independent of the step counts, for 10⁵ paths).

- strong error: RMS over paths of ‖X_h − X_ref‖;
- on multimodal data, the same over the paths that end in the same mode as their reference path, and the
  fraction of paths that switch mode: on `ve-gmm2` the RMS error of Euler–Maruyama converges at order ≈ 0.5 only
  because of those switches, while the same-mode error converges at order ≈ 1;
- weak errors: |mean φ(X_h) − mean φ(X_ref)| for φ = first moment, second moment and per-mode spread, with the
  Monte-Carlo standard error of the paired difference φ(X_h) − φ(X_ref). Pairing on the shared path (common
  random numbers) is what makes weak errors measurable at all: the per-path differences are of the size of the
  strong error, not of the data's spread. Comparing with the exact E φ under p_ε instead would also count the
  prior's approximation (N(0, σmax² I) for p_1 shifts the mean of ve-gauss1 by μ·v/(v + σmax²) ≈ 0.005),
  which no step count removes. An order is fitted only over step counts where the error stands above 3 standard
  errors; otherwise the result says the Monte-Carlo error swamps it;
- work–precision data: NFE and wall time per step count.

Orders are fitted as −slope of log error against log step count, with a 95% confidence interval from the
regression (Student t with k − 2 degrees of freedom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers import IntervalBrownian, NestedBrownian, PartitionBrownian, make_solver

Tensor = torch.Tensor
WEAK_FUNCTIONALS = ("mean", "second_moment", "mode_spread")
PATHS = ("partition", "interval", "nested")
#: Largest memory a partition path may take (three float64 arrays of nodes × n × d); beyond it, use a nested path.
PARTITION_BYTES = 2 * 1024**3


@dataclass
class OrderFit:
    """A fitted order with its 95% confidence interval; ``value`` is None when it could not be fitted."""

    value: float | None
    ci: tuple[float, float] | None = None
    points: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "points": self.points, "note": self.note}


def fit_order(steps: list[int], errors: list[float], keep: list[bool] | None = None) -> OrderFit:
    """−slope of log(error) against log(steps) over the kept points, with a 95% CI from the regression."""
    keep = keep or [True] * len(steps)
    pts = [(s, e) for s, e, k in zip(steps, errors, keep, strict=True) if k and e > 0 and math.isfinite(e)]
    if len(pts) < 2:
        return OrderFit(None, points=len(pts), note="fewer than two usable points")
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    fit = stats.linregress(x, y)
    order = -float(fit.slope)
    if len(pts) == 2:
        return OrderFit(order, None, 2, "two points: no confidence interval")
    half = float(stats.t.ppf(0.975, len(pts) - 2) * fit.stderr)
    return OrderFit(order, (order - half, order + half), len(pts))


@dataclass
class ConvergenceResult:
    """Per-step-count rows and the fitted orders."""

    problem: str
    solver: str
    options: dict[str, Any]
    n: int
    fine_steps: int
    multimodal: bool
    path: str = "partition"
    rows: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, OrderFit] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the rows, the switch fraction per step count, and each fitted order as
        ``strong_order``, ``strong_order_same_mode``, ``switch_order``, ``weak_order`` (= of the mean),
        ``weak_order_second_moment``, ``weak_order_mode_spread``, with ``<key>_fit`` holding value, CI and note."""
        out: dict[str, Any] = {
            "problem": self.problem,
            "solver": self.solver,
            "options": self.options,
            "n": self.n,
            "fine_steps": self.fine_steps,
            "path": self.path,
            "multimodal": self.multimodal,
            "rows": self.rows,
            "switch_fraction": {row["steps"]: row["switch_fraction"] for row in self.rows},
        }
        for name, fit in self.orders.items():
            kind, _, detail = name.partition("_")  # "strong_same_mode" → "strong_order_same_mode"
            key = f"{kind}_order" + (f"_{detail}" if detail else "")
            out[key] = fit.value
            out[f"{key}_fit"] = fit.to_dict()
        return out


def _functionals(x: Tensor, problem: Problem) -> dict[str, Tensor]:
    """Per-path values of the weak-error functionals: x itself, ‖x‖², ‖x − μ_k(x)‖² (per-mode spread)."""
    target = problem.target()
    centres = target.means[target.responsibilities(x).argmax(1)]
    return {"mean": x, "second_moment": x.pow(2).sum(1), "mode_spread": (x - centres).pow(2).sum(1)}


def convergence_study(
    problem: Problem,
    score: Score,
    solver_name: str,
    steps_list: list[int],
    *,
    n: int = 2000,
    fine_steps: int | None = None,
    seed: int = 0,
    path: str = "partition",
    options: dict[str, Any] | None = None,
) -> ConvergenceResult:
    """Strong and weak errors of ``solver_name`` at each step count against a fine run on the same path.

    ``path="partition"`` (any grid, the default): one path on the nodes of every grid of the study, held in memory
    (three float64 arrays of nodes × n × d: refused beyond 2 GiB). ``path="interval"`` (any grid): a seeded dyadic
    BrownianInterval; its queries cost ~1 ms. ``path="nested"`` (uniform-t grid; every step count must divide
    ``fine_steps``): increments summed in order from a fine uniform grid, in O(n·d) memory, cheap enough for 10⁵
    paths, which resolves weak errors.
    """
    options = dict(options or {})
    check(len(steps_list) >= 2, "steps", "need at least two step counts")
    check(all(isinstance(s, int) and s > 0 for s in steps_list), "steps", "must be positive integers")
    steps_list = sorted(set(steps_list))
    fine_steps = fine_steps or 8 * steps_list[-1]
    check(fine_steps > steps_list[-1], "fine_steps", f"must exceed the largest step count ({steps_list[-1]})")
    check(n >= 10, "n", "need at least 10 paths")
    check(path in PATHS, "path", f"unknown {path!r} (valid: {', '.join(PATHS)})")
    if path == "nested":
        check(
            make_solver(solver_name, **options).grid_name(problem) == "uniform-t",
            "path",
            "nested paths need the uniform-t grid",
        )
        check(all(fine_steps % s == 0 for s in steps_list), "fine_steps", "must be a multiple of every step count")
    target = problem.target()
    multimodal = target.n_components > 1
    partition = None
    if path == "partition" and make_solver(solver_name, **options).kind == "sde":
        grids = [make_solver(solver_name, **options, steps=s).times(problem) for s in [*steps_list, fine_steps]]
        nodes = len({t for grid in grids for t in grid})
        need = 3 * nodes * n * problem.dim * 8
        check(
            need <= PARTITION_BYTES,
            "path",
            f"a partition path for {n} paths on {nodes} nodes takes {need / 1024**3:.1f} GiB: use the nested path "
            "(uniform-t grid) or fewer paths",
        )
        partition = PartitionBrownian(n, problem.dim, grids, seed)

    def run(steps: int):
        solver = make_solver(solver_name, **options, steps=steps)
        brownian = None
        if solver.kind == "sde":
            if path == "nested":
                brownian = NestedBrownian(n, problem.dim, problem.t_end, fine_steps, seed, t_start=problem.t_start)
            elif path == "interval":
                brownian = IntervalBrownian(n, problem.dim, problem.t_end, entropy=seed, t_start=problem.t_start)
            else:
                brownian = partition
        return solver.solve(problem, score, n, torch.Generator().manual_seed(seed), brownian=brownian)

    reference = run(fine_steps).samples
    ref_labels = target.responsibilities(reference).argmax(1)
    ref_phi = _functionals(reference, problem)
    result = ConvergenceResult(problem.name, solver_name, options, n, fine_steps, multimodal, path)
    for steps in steps_list:
        res = run(steps)
        x = res.samples
        labels = target.responsibilities(x).argmax(1)
        dist2 = (x - reference).pow(2).sum(1)
        same = labels == ref_labels
        row: dict[str, Any] = {
            "steps": steps,
            "nfe": res.nfe,
            "wall_s": res.wall_s,
            "strong_error": float(dist2.mean().sqrt()),
            "switch_fraction": float(1 - same.double().mean()),
            "strong_error_same_mode": float(dist2[same].mean().sqrt()) if bool(same.any()) else float("nan"),
        }
        for name, value in _functionals(x, problem).items():
            diff = value - ref_phi[name]
            if diff.dim() == 2:  # the mean (a vector): error = norm of the mean difference, SE = sqrt(Σ var / n)
                row[f"weak_{name}"] = float(diff.mean(0).norm())
                row[f"weak_{name}_se"] = float((diff.var(0).sum() / n).sqrt())
            else:
                row[f"weak_{name}"] = float(diff.mean().abs())
                row[f"weak_{name}_se"] = float(diff.std() / math.sqrt(n))
        result.rows.append(row)

    steps = [r["steps"] for r in result.rows]
    result.orders["strong"] = fit_order(steps, [r["strong_error"] for r in result.rows])
    if multimodal:
        result.orders["strong_same_mode"] = fit_order(steps, [r["strong_error_same_mode"] for r in result.rows])
        result.orders["switch"] = fit_order(steps, [r["switch_fraction"] for r in result.rows])
    for name in WEAK_FUNCTIONALS:
        errors = [r[f"weak_{name}"] for r in result.rows]
        resolved = [r[f"weak_{name}"] > 3 * r[f"weak_{name}_se"] for r in result.rows]
        fit = fit_order(steps, errors, resolved)
        if not all(resolved):
            swamped = [s for s, ok in zip(steps, resolved, strict=True) if not ok]
            fit.note = (fit.note + "; " if fit.note else "") + f"Monte-Carlo error swamps the weak error at {swamped}"
        result.orders[f"weak_{name}"] = fit
    result.orders["weak"] = result.orders["weak_mean"]
    return result
