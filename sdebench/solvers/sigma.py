"""What every sampler written in σ on the scaled variable x̂ = x/s(t) shares: the denoiser and the common part.

The derivation is in :mod:`sdebench.solvers.fast`. Shared helpers live here, not in a solver's own module, so that a
fix to one solver's file redoes only that solver's runs (see :mod:`sdebench.fingerprint`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import DENOISE, NFE, STEPS, FixedStepSolver, Param
from sdebench.solvers.grids import GRIDS

Tensor = torch.Tensor

KARRAS_GRID = Param("grid", str, "karras", "time grid from T to t_end", registry=GRIDS)


def denoiser(problem: Problem, score: Score, x: Tensor, t: float, sigma: float) -> Tensor:
    """D(x̂, σ) = x̂ + σ²·s(t)·score(s(t)·x̂, t) with σ = σ(t): the posterior mean of x_0 (one NFE).

    With s(t) = 1 (VE, EDM) the products by s are skipped: the arithmetic is then exactly x̂ + σ²·score(x̂, t).
    """
    scale = float(problem.sde.s(t))
    if scale == 1.0:
        return torch.add(x, score(x, t), alpha=sigma**2)
    return torch.add(x, score(x * scale, t), alpha=scale * sigma**2)


class SigmaSampler(FixedStepSolver):
    """Common part of the samplers written in σ: grid default, denoise option, NFE count, the scaled variable."""

    kind = "ode"
    params: ClassVar[tuple[Param, ...]] = (STEPS, NFE, KARRAS_GRID, DENOISE)
    #: Score evaluations per step.
    evals_per_step: ClassVar[int] = 1

    def nfe_for_steps(self, steps: int) -> int:
        """``evals_per_step`` evaluations a step, plus one for the final denoising step."""
        return self.evals_per_step * steps + int(self.options["denoise"])

    def initial_state(self, problem: Problem, n: int, generator: torch.Generator) -> Tensor:
        """The ``start`` draws at T, in the scaled variable x̂ = x/s(T)."""
        x = super().initial_state(problem, n, generator)
        scale = float(problem.sde.s(problem.t_start))
        return x if scale == 1.0 else x / scale

    def grid(self, problem: Problem) -> tuple[list[float], list[float]]:
        """The grid's times t_i and noise levels σ_i = σ(t_i)."""
        times = self.times(problem)
        return times, [float(problem.sde.sigma(t)) for t in times]

    def finish(self, problem: Problem, score: Score, x: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """Back from x̂ to x = s(t_end)·x̂ (or the denoised E[x_0 | x_ε]); build the info dict."""
        t_end = problem.t_end
        if self.options["denoise"]:
            x = denoiser(problem, score, x, t_end, float(problem.sde.sigma(t_end)))
        else:
            scale = float(problem.sde.s(t_end))
            x = x if scale == 1.0 else x * scale
        return x, {"steps": self.options["steps"], "grid": self.grid_name(problem), "denoise": self.options["denoise"]}


def heun_step(
    problem: Problem, score: Score, x: Tensor, t: float, sigma: float, t_next: float, sigma_next: float
) -> Tensor:
    """One Heun step of dx/dσ = (x − D)/σ from (t, σ) to (t_next, σ_next > 0): two NFE.

    Shared here (not in :mod:`sdebench.solvers.fast`) because several solver modules take Heun steps.
    """
    d = (x - denoiser(problem, score, x, t, sigma)) / sigma
    x_euler = x + (sigma_next - sigma) * d
    d_next = (x_euler - denoiser(problem, score, x_euler, t_next, sigma_next)) / sigma_next
    return x + (0.5 * (sigma_next - sigma)) * (d + d_next)


#: The order option of the Adams–Bashforth samplers in σ (``lms``, ``ipndm``).
AB_MAX_ORDER = 4
AB_ORDER = Param(
    "order",
    int,
    AB_MAX_ORDER,
    "order of the Adams–Bashforth formula (the first steps use lower ones)",
    lambda v: 1 <= v <= AB_MAX_ORDER,
    f"must be in 1..{AB_MAX_ORDER}",
)


class AdamsBashforthSampler(SigmaSampler):
    """Adams–Bashforth in σ on the slope d = (x̂ − D)/σ (the noise direction): x̂_{i+1} = x̂_i + Σ_j c_j d_{i−j}.

    In the scaled variable the probability-flow ODE is dx̂/dσ = d(x̂, σ) with no linear part left, so a linear
    multistep method in σ is an exponential integrator of the original ODE. The first steps, with fewer slopes,
    use the orders they can (1, 2, …): the warm-up. One NFE a step. Subclasses give the weights c_j.
    """

    params: ClassVar[tuple[Param, ...]] = (*SigmaSampler.params, AB_ORDER)

    def step_weights(self, sigmas: list[float], i: int, k: int) -> list[float]:
        """The weights c_j (newest slope first) of the step from σ_i to σ_{i+1} with k slopes."""
        raise NotImplementedError

    def _solve(self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Any) -> Any:
        order = self.options["order"]
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        slopes: list[Tensor] = []  # d_i, d_{i−1}, …: newest first
        for i in range(len(times) - 1):
            slopes.insert(0, (x - denoiser(problem, score, x, times[i], sigmas[i])) / sigmas[i])
            del slopes[order:]
            for c, d in zip(self.step_weights(sigmas, i, len(slopes)), slopes, strict=True):
                x = x + c * d
        x, info = self.finish(problem, score, x)
        return x, {**info, "order": order}
