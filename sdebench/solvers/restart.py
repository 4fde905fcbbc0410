"""The Restart sampler (Xu et al. 2023, "Restart Sampling for Improving Generative Processes"), for every SDE.

Written, like the other σ-samplers (:mod:`sdebench.solvers.sigma`), on the scaled variable x̂ = x/s(t), which is a
variance-exploding process in σ for every SDE of the family. The run is a deterministic pass of Heun steps of the
probability-flow ODE dx̂/dσ = (x̂ − D)/σ down the main grid (``edm-heun``), interrupted once, at the main grid's
node σ_min nearest to ``restart_sigma_min`` (in log σ), by K = ``restarts`` cycles:

1. jump up to σ_max = ``restart_sigma_max`` by the forward process: x̂ ← x̂ + sqrt(σ_max² − σ_min²)·z, z from the
   run's generator (not a shared Brownian path: the jump is a draw of the forward kernel);
2. come back down to σ_min with ``restart_steps`` Heun steps of the ODE on a Karras (ρ = 7) grid from σ_max to
   σ_min (the paper's sub-grid; its last node is the main grid's own).

Then the main pass goes on from σ_min to σ(t_end). The jump is the forward process, so it maps the exact p at
σ_min to the exact p at σ_max, and it contracts whatever error the pass has brought to σ_min: the paper bounds the
total-variation error after K cycles by a factor (1 − λ)^K < 1 times the error before them, plus the returns' own
discretisation errors. That is what the reverse SDE's noise does continuously, while the ODE returns keep the
ODE's small discretisation error. Its point on the bench: with a trained score, where the probability-flow ODE
carries score errors to the end and the reverse SDE forgives them, restarts where those errors form should close
the ODE–SDE gap at ODE-like NFE.

Defaults, measured on ``ve-gmm2`` (n = 20 000, seeds 1 and 2; per-mode std error, exact score / trained score):

- Interval [σ_min, σ_max] = [0.06, 0.30], the paper's EDM CIFAR-10 setting (``{"0": [3, 2, 0.06, 0.30]}``). σ is
  the scaled variable's noise level, the same denoising problem for every SDE of the family, and the bench's
  data are normalised per dimension as EDM's are (σ_data ≈ 1 here, 0.5 for CIFAR-10), so the absolute interval
  carries over to every SDE. On the seed's data it spans the σ's where each mode's spread (0.05) is resolved.
  Wider does worse with the trained network, whose probability-flow ODE is least accurate for σ in 0.3–1 (from
  exact draws at σ = 1, 60 Heun steps end 6.3% off in spread; from σ = 0.3, 0.8%): a 10-step cycle through
  [0.1, 1] at 120 NFE ends 8–12% off, through [0.06, 0.3] 2.0%.
- One cycle (K = 1) whose return takes ⌈N/2⌉ Heun steps for N main steps, not the paper's two cycles of 2 steps.
  What is left after the last cycle is that return's own discretisation error, so it must be about as fine as the
  main pass: the paper's 2 × 2 steps end 7–8% / 7–9% off at 60 NFE and 8% / 9–9.5% at 120; ⌈N/2⌉ gives 1.9–2.1% /
  2.7–2.8% at 60 NFE (20 main steps + 10) and 1.0–1.3% / 1.9–2.0% at 120 (40 + 20). A fixed count would be too
  coarse at large budgets or eat small ones. ``restart_steps`` sets it.

The interval must lie within (σ(t_end), σ(T)]: elsewhere the solver does not apply.

NFE: 2 per main step + 2·K·(cycle steps) (+ 1 for ``denoise``); an ``nfe`` budget buys the most main steps that
fit with their cycles. ``kind = "sde"`` (it draws noise); no declared orders: the jumps are not increments of a
Brownian path a fine reference could share, and the law it samples at a finite step count is not a
discretisation of one fixed SDE.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, register
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.noise import standard_normal_
from sdebench.solvers.sigma import SigmaSampler, heun_step

Tensor = torch.Tensor

#: The sub-grid's Karras exponent (the paper's ρ, EDM's).
RHO = 7.0


def restart_sigmas(sigma_max: float, sigma_min: float, steps: int) -> list[float]:
    """The cycle's ``steps + 1`` noise levels from σ_max down to σ_min: Karras ρ = 7, exact at both ends."""
    a, b = sigma_max ** (1 / RHO), sigma_min ** (1 / RHO)
    sigmas = [(a + (b - a) * i / steps) ** RHO for i in range(steps + 1)]
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    return sigmas


def restart_node(sigmas: list[float], sigma_min: float, sigma_max: float) -> int:
    """Index of the main grid's node where the cycles start: nearest to σ_min in log σ among those below σ_max."""
    below = [i for i, s in enumerate(sigmas) if s < sigma_max]
    return min(below, key=lambda i: abs(math.log(sigmas[i] / sigma_min)))


@register
class Restart(SigmaSampler):
    """Restart sampling (Xu et al. 2023): a Heun ODE pass plus K forward-noise jumps and ODE returns in [σ_min, σ_max].

    NFE: 2 per main step + 2·``restarts``·``restart_steps`` (+ 1 for ``denoise``); ``restart_steps`` defaults to
    half the main steps. Draws noise (kind sde); no declared orders (see the module docstring).
    """

    name = "restart"
    kind = "sde"
    strong_order = None
    weak_order = None
    evals_per_step = 2
    params: ClassVar[tuple[Param, ...]] = (
        *SigmaSampler.params,
        Param("restarts", int, 1, "number of restart cycles K", lambda v: v >= 0, "must be >= 0"),
        Param(
            "restart_steps",
            int,
            None,
            "Heun steps of each cycle's return (unset: half the main steps, rounded up)",
            lambda v: v >= 1,
            "must be >= 1",
        ),
        Param(
            "restart_sigma_min",
            float,
            0.06,
            "restart at the main grid's node nearest to this σ (log σ)",
            lambda v: v > 0,
            "must be > 0",
        ),
        Param("restart_sigma_max", float, 0.30, "each cycle jumps up to this σ", lambda v: v > 0, "must be > 0"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        lo, hi = self.options["restart_sigma_min"], self.options["restart_sigma_max"]
        check(hi > lo, "restart_sigma_max", f"must be > restart_sigma_min ({lo:g})")

    def cycle_steps(self, steps: int) -> int:
        """Heun steps of each cycle's return with ``steps`` main steps: ``restart_steps``, or ⌈steps/2⌉ if unset."""
        chosen = self.options["restart_steps"]
        return chosen if chosen is not None else (steps + 1) // 2

    def nfe_for_steps(self, steps: int) -> int:
        """Two a main step, two a cycle's step, one for the final denoising step."""
        return 2 * steps + 2 * self.options["restarts"] * self.cycle_steps(steps) + int(self.options["denoise"])

    def supports(self, problem: Problem) -> str | None:
        """The restart interval must lie within the problem's σ range (σ(t_end), σ(T)]."""
        sde = problem.sde
        lo, hi = float(sde.sigma(problem.t_end)), float(sde.sigma(problem.t_start))
        if self.options["restart_sigma_min"] <= lo or self.options["restart_sigma_max"] > hi:
            return (
                f"restart interval [{self.options['restart_sigma_min']:g}, {self.options['restart_sigma_max']:g}]"
                f" is not within the problem's σ range ({lo:g}, {hi:g}]"
            )
        return None

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        opts = self.options
        times, sigmas = self.grid(problem)
        node = restart_node(sigmas, opts["restart_sigma_min"], opts["restart_sigma_max"])
        sigma_lo, sigma_hi = sigmas[node], opts["restart_sigma_max"]
        cycle_steps = self.cycle_steps(len(times) - 1)
        cycle_sigmas = restart_sigmas(sigma_hi, sigma_lo, cycle_steps)
        # The cycle's times; its last node is the main grid's own, so the return lands exactly on it.
        cycle_times = [float(problem.sde.t_of_sigma(s)) for s in cycle_sigmas[:-1]] + [times[node]]
        jump = math.sqrt(sigma_hi**2 - sigma_lo**2)  # forward kernel from σ_min to σ_max in x̂
        x = self.initial_state(problem, n, generator)
        noise = torch.empty_like(x)
        for i in range(len(times)):
            if i == node:
                for _ in range(opts["restarts"]):
                    x = x + standard_normal_(noise, generator, jump)
                    for j in range(cycle_steps):
                        x = heun_step(
                            problem, score, x, cycle_times[j], cycle_sigmas[j], cycle_times[j + 1], cycle_sigmas[j + 1]
                        )
            if i < len(times) - 1:
                x = heun_step(problem, score, x, times[i], sigmas[i], times[i + 1], sigmas[i + 1])
        x, info = self.finish(problem, score, x)
        extra = {"restarts": opts["restarts"], "restart_steps": cycle_steps, "restart_node": node}
        return x, {**info, **extra, "restart_sigma_min_used": sigma_lo}
