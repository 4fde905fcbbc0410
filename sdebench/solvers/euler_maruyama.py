"""Hand-written Euler–Maruyama on the reverse-time SDE."""

from __future__ import annotations

import itertools

import torch

from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import DENOISE, FixedStepSolver, register, tweedie_denoise
from sdebench.solvers.brownian import Brownian

Tensor = torch.Tensor


@register
class EulerMaruyama(FixedStepSolver):
    """Euler–Maruyama on the reverse SDE: x ← x − [f − g²s]·Δt + g·sqrt(Δt)·z, from t = 1 down to t_end.

    One NFE per step. Strong order 1.0 here, not the general 0.5, because the VE noise is additive (g depends on
    t only); weak order 1.0.
    """

    name = "em"
    kind = "sde"
    strong_order = 1.0
    weak_order = 1.0
    params = (*FixedStepSolver.params, DENOISE)

    def nfe_for_steps(self, steps: int) -> int:
        """One evaluation a step, plus one for the final denoising step."""
        return steps + int(self.options["denoise"])

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian
    ) -> tuple[Tensor, dict]:
        opts = self.options
        reverse = problem.sde.reverse(score)
        x = self.initial_state(problem, n, generator)
        for t_cur, t_next in itertools.pairwise(self.times(problem)):
            drift = reverse.drift(x, t_cur)
            # x ← x − drift·Δt + g·ΔW̄, in place: the loop adds little to the score's own cost.
            x.sub_(drift, alpha=t_cur - t_next).add_(brownian(t_cur, t_next), alpha=reverse.diffusion(t_cur))
        if opts["denoise"]:
            x = tweedie_denoise(problem, score, x)
        return x, {"steps": opts["steps"], "grid": self.grid_name(problem)}
