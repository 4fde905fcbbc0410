"""The fast samplers of the literature, written in σ on the scaled variable x̂ = x/s(t): for every SDE of the family.

For any linear SDE the kernel is N(s x_0, s²σ² I), so x̂ = x/s has the law of x_0 + σ z: a variance-exploding
process in σ. Tweedie's formula gives the denoiser D(x̂, σ) = E[x_0 | x̂] = x̂ + σ²·∇_x̂ log p̂ = x̂ + σ²·s·s_θ(s x̂, t)
(the score of x̂ is s times the score of x), and the probability-flow ODE becomes, in σ (EDM's general ODE, Karras et
al. 2022, eq. 4, in the scaled variable),

    dx̂/dσ = (x̂ − D(x̂, σ)) / σ,

the form in which EDM, DDIM and DPM-Solver++ (Lu et al. 2022) are written. Each sampler here walks the grid's
σ_i = σ(t_i), evaluating the score at the grid's t_i and at x = s(t_i) x̂; it starts from x̂ = x_T/s(T) and returns
x = s(t_end) x̂. For VE and EDM (s = 1) x̂ is x. The grids end at σ(t_end) > 0 (target p_ε); the optional final
``denoise`` is the Tweedie step, returning D(x̂, σ(t_end)) = E[x_0 | x_ε], which is also exactly one Euler step of
the ODE in σ from σ(t_end) to σ = 0 (EDM's last step).

The default grid is ``karras`` (ρ = 7); any registered grid is accepted. ``denoise`` is off by default: the
target is p_ε, and the Tweedie step narrows each mode of ve-gmm2 by ~4% (from p_ε's spread to E[x_0 | x_ε]'s),
more than the 3% quality bar; measured, it only helps where it happens to cancel a sampler's own overshoot
(edm-heun on Karras near 31 NFE) and hurts everywhere else.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, register
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.noise import standard_normal_
from sdebench.solvers.sigma import SigmaSampler, denoiser, heun_step

Tensor = torch.Tensor


@register
class EDMEuler(SigmaSampler):
    """Probability-flow Euler in σ (EDM's Algorithm 1 without the correction): x ← x + (σ' − σ)·(x − D)/σ.

    One NFE per step. Strong (= weak) order 1.0: Euler's method on an ODE, the error is O(max Δσ).
    """

    name = "edm-euler"
    strong_order = 1.0
    weak_order = 1.0

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        for i in range(len(times) - 1):
            d = (x - denoiser(problem, score, x, times[i], sigmas[i])) / sigmas[i]
            x = x + (sigmas[i + 1] - sigmas[i]) * d
        return self.finish(problem, score, x)


@register
class EDMHeun(SigmaSampler):
    """EDM's deterministic sampler (Karras et al. 2022, Algorithm 1): Heun's method on dx/dσ = (x − D)/σ.

    What "Euler on the last step" means here: EDM takes the Euler step only on a step that ends at σ = 0, where
    the corrector's slope (x − D)/σ is undefined. Our grids end at σ(t_end) > 0, so every step is a Heun step
    (2 NFE a step); EDM's final Euler step to σ = 0 is exactly our ``denoise`` option (x ← D(x, σ(t_end))), so
    ``edm-heun`` with ``denoise=true`` and N steps is Algorithm 1 on the grid σ_0 … σ_N, 0 (2N + 1 NFE; EDM counts
    2(N + 1) − 1 for its N + 1 nonzero σ's). Strong (= weak) order 2.0: Heun's method on an ODE.
    """

    name = "edm-heun"
    strong_order = 2.0
    weak_order = 2.0
    evals_per_step = 2

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        for i in range(len(times) - 1):
            x = heun_step(problem, score, x, times[i], sigmas[i], times[i + 1], sigmas[i + 1])
        return self.finish(problem, score, x)


@register
class DDIM(SigmaSampler):
    """First-order exponential integrator in σ (DDIM; DPM-Solver++(1)): x' = D + (σ'/σ)·(x − D).

    With data prediction and λ = −log σ, the linear part of dx/dσ = (x − D)/σ is integrated exactly and D is held
    at its value at σ. For VE this coincides with Euler in σ (``edm-euler``): D + (σ'/σ)(x − D) =
    x + (σ' − σ)(x − D)/σ identically, because the ODE's linear coefficient 1/σ is what Euler's step already uses
    (Karras et al. 2022 note that DDIM is Euler in this parametrisation); the two differ only by round-off. One NFE
    a step; strong (= weak) order 1.0.
    """

    name = "ddim"
    strong_order = 1.0
    weak_order = 1.0

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        for i in range(len(times) - 1):
            d0 = denoiser(problem, score, x, times[i], sigmas[i])
            x = d0.add_(x - d0, alpha=sigmas[i + 1] / sigmas[i])
        return self.finish(problem, score, x)


@register
class DPMSolverPP2M(SigmaSampler):
    """DPM-Solver++(2M) (Lu et al. 2022): multistep, second order, data prediction in λ = −log σ.

    With h = λ' − λ = log(σ/σ') and r = h_prev/h, the step is x' = (σ'/σ)·x + (1 − σ'/σ)·D̃ with
    D̃ = (1 + 1/(2r))·D_i − (1/(2r))·D_{i−1}, the linear extrapolation in λ of the previous denoiser outputs; the
    first step (no previous output) is DDIM's. One NFE a step. Strong (= weak) order 2.0: a second-order linear
    multistep method on an ODE whose one first-order start step contributes only O(h²) globally.
    """

    name = "dpmpp-2m"
    strong_order = 2.0
    weak_order = 2.0

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        d_prev, h_prev = None, None
        for i in range(len(times) - 1):
            d0 = denoiser(problem, score, x, times[i], sigmas[i])
            ratio = sigmas[i + 1] / sigmas[i]
            h = math.log(sigmas[i] / sigmas[i + 1])
            if d_prev is None:
                d_hat = d0
            else:
                c = h / (2.0 * h_prev)  # 1/(2r)
                d_hat = d0 * (1.0 + c) - d_prev * c
            x = (x * ratio).add_(d_hat, alpha=1.0 - ratio)
            d_prev, h_prev = d0, h
        return self.finish(problem, score, x)


@register
class EDMStochastic(SigmaSampler):
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): churn noise, then a Heun step in σ.

    At each step with S_min ≤ σ_i ≤ S_max, raise the noise level to σ̂ = σ_i(1 + γ), γ = min(S_churn/N, √2 − 1),
    by adding sqrt(σ̂² − σ_i²)·S_noise·z (z from the run's generator: the churn is not an increment of the reverse
    SDE's Brownian motion), then take a Heun step of dx/dσ = (x − D)/σ from σ̂ to σ_{i+1}. As in ``edm-heun``
    every step of our grids ends at σ > 0 and is a Heun step (2 NFE); ``denoise`` is EDM's final Euler step to
    σ = 0. At the first step σ̂ can exceed σ(1), so the score is asked at t(σ̂) > 1 (the exact score is defined
    there; a trained network sees a time slightly past its training range, as in EDM).

    Declared orders depend on S_churn (instance attributes): with S_churn = 0 (the default, as in EDM's code) it
    is ``edm-heun``, strong = weak order 2.0. With S_churn > 0 both are None: the churn noise is not a Brownian
    path that a fine reference could share, so no strong order can be measured, and the SDE it discretises
    depends on the grid and on N through γ = S_churn/N, so there is no fixed SDE for a weak order to refer to.
    """

    name = "edm-stochastic"
    kind = "sde"
    strong_order = 2.0
    weak_order = 2.0
    evals_per_step = 2
    params = (
        *SigmaSampler.params,
        Param("S_churn", float, 0.0, "churn: γ = min(S_churn/N, √2 − 1) a step", lambda v: v >= 0, "must be >= 0"),
        Param("S_min", float, 0.0, "churn only where σ_i ≥ S_min", lambda v: v >= 0, "must be >= 0"),
        Param("S_max", float, None, "churn only where σ_i ≤ S_max (unset: no bound)", lambda v: v >= 0, "must be >= 0"),
        Param("S_noise", float, 1.0, "scale of the churn noise", lambda v: v > 0, "must be > 0"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        s_max = self.options["S_max"]
        check(s_max is None or s_max >= self.options["S_min"], "S_max", f"must be >= S_min ({self.options['S_min']})")
        if self.options["S_churn"] > 0:
            self.strong_order = None
            self.weak_order = None

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        opts = self.options
        times, sigmas = self.grid(problem)
        steps = len(times) - 1
        gamma_max = min(opts["S_churn"] / steps, math.sqrt(2.0) - 1.0)
        s_max = math.inf if opts["S_max"] is None else opts["S_max"]
        x = self.initial_state(problem, n, generator)
        noise = torch.empty_like(x)
        churned = 0
        for i in range(steps):
            t, sigma = times[i], sigmas[i]
            gamma = gamma_max if opts["S_min"] <= sigma <= s_max else 0.0
            if gamma > 0:
                sigma_hat = sigma * (1.0 + gamma)
                t = float(problem.sde.t_of_sigma(sigma_hat))
                scale = opts["S_noise"] * math.sqrt(sigma_hat**2 - sigma**2)
                x = x + standard_normal_(noise, generator, scale)
                sigma = sigma_hat
                churned += 1
            x = heun_step(problem, score, x, t, sigma, times[i + 1], sigmas[i + 1])
        x, info = self.finish(problem, score, x)
        return x, {**info, "churned_steps": churned, "gamma": gamma_max}
