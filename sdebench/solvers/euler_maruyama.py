"""Hand-written Euler–Maruyama on the reverse-time SDE."""

from __future__ import annotations

import itertools
import math

import torch

from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, Solver, register
from sdebench.solvers.grids import GRIDS, make_grid
from sdebench.solvers.noise import standard_normal_

Tensor = torch.Tensor

STEPS = Param("steps", int, 1000, "number of steps", lambda v: v > 0, "must be > 0")
GRID = Param("grid", str, "uniform-t", "time grid from 1 to t_end", registry=GRIDS)
DENOISE = Param("denoise", bool, False, "finish with the Tweedie step x + σ(ε)²·s(x, ε) (one more NFE)")
START = Param(
    "start",
    str,
    "prior",
    "initial law: the prior N(0, σmax² I), or the seed's N(0, I) (a quirk, kept to reproduce the seed)",
    choices=("prior", "standard-normal"),
)


def initial_state(problem: Problem, n: int, start: str, generator: torch.Generator) -> Tensor:
    """n float64 draws from the prior (or, with ``start="standard-normal"``, from the seed's N(0, I))."""
    if start == "standard-normal":
        return torch.randn(n, problem.dim, generator=generator, dtype=torch.float64)
    return problem.sde.prior_sample(n, problem.dim, generator=generator)


def tweedie_denoise(problem: Problem, score: Score, x: Tensor) -> Tensor:
    """E[x_0 | x_ε] = x + σ(ε)²·s(x, ε): removes the kernel noise left at t_end (costs one NFE)."""
    return x + problem.sde.sigma(problem.t_end) ** 2 * score(x, problem.t_end)


@register
class EulerMaruyama(Solver):
    """Euler–Maruyama on the reverse SDE: x ← x − [f − g²s]·Δt + g·sqrt(Δt)·z, from t = 1 down to t_end.

    One NFE per step. Strong order 1.0 here, not the general 0.5, because the VE noise is additive (g depends on
    t only); weak order 1.0.
    """

    name = "em"
    kind = "sde"
    strong_order = 1.0
    weak_order = 1.0
    params = (STEPS, GRID, DENOISE, START)

    def _solve(self, problem: Problem, score: Score, n: int, generator: torch.Generator) -> tuple[Tensor, dict]:
        opts = self.options
        times = make_grid(opts["grid"], problem, opts["steps"])
        reverse = problem.sde.reverse(score)
        x = initial_state(problem, n, opts["start"], generator)
        noise = torch.empty_like(x)
        for t_cur, t_next in itertools.pairwise(times):
            dt = t_cur - t_next
            drift = reverse.drift(x, t_cur)
            standard_normal_(noise, generator)
            # x ← x − drift·Δt + g·sqrt(Δt)·z, in place: the loop adds little to the score's own cost.
            x.sub_(drift, alpha=dt).add_(noise, alpha=reverse.diffusion(t_cur) * math.sqrt(dt))
        if opts["denoise"]:
            x = tweedie_denoise(problem, score, x)
        return x, {"steps": opts["steps"], "grid": opts["grid"]}
