"""Predictor–corrector samplers (Song et al. 2021, Algorithm 2; the shapes of score_sde's ``sampling.py``).

A *predictor* takes one step of the reverse-time SDE from t_cur down to t_next; a *corrector* runs a few steps of
score-based MCMC (Langevin dynamics) at a fixed time, moving the samples towards p_t without moving time. Each is a
small class registered by name in :data:`PREDICTORS` or :data:`CORRECTORS` with a decorator (a duplicate name is an
error); the solver ``pc`` composes any predictor with any corrector, including corrector-only sampling (predictor
``none``: annealed Langevin dynamics when the corrector is ``annealed_langevin``) and predictor-only sampling
(corrector ``none``).

Predictors ask the problem's SDE for s and σ, never for its class. The ones that use the SDE's own discretisation
(``reverse_diffusion``, ``ancestral``) reverse the forward process's exact step between two grid times,
x_cur = a·x_next + G·z with a = s(t_cur)/s(t_next) and G² = s(t_cur)²(σ(t_cur)² − σ(t_next)²): for VE (a = 1) this
is SMLD's step, for VP it is DDPM's (a = sqrt(1 − β_i), G² = β_i), as score_sde discretises each SDE.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.problems.sde import LinearSDE
from sdebench.registry import Registry
from sdebench.scores.base import Score
from sdebench.solvers.base import DENOISE, FixedStepSolver, Param, register, tweedie_denoise
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.noise import standard_normal_

Tensor = torch.Tensor

#: Predictor classes by name.
PREDICTORS: Registry = Registry("predictor")
#: Corrector classes by name.
CORRECTORS: Registry = Registry("corrector")


class Predictor:
    """One reverse-time step x(t_cur) → x(t_next); subclasses set ``nfe`` and the orders, and implement ``step``.

    The declared orders are those of predictor-only sampling (corrector ``none``) on an SDE with additive noise.
    """

    name: ClassVar[str]
    #: Score evaluations per step.
    nfe: ClassVar[int] = 1
    strong_order: ClassVar[float | None] = None
    weak_order: ClassVar[float | None] = None

    def supports(self, sde: LinearSDE) -> str | None:
        """None when this predictor applies to ``sde``; otherwise the reason it does not."""
        return None

    def step(self, sde: LinearSDE, score: Score, x: Tensor, t_cur: float, t_next: float, brownian: Brownian) -> Tensor:
        """x at t_next (may update ``x`` in place and return it)."""
        raise NotImplementedError


class Corrector:
    """``n_steps`` MCMC steps at a fixed time t; subclasses set ``nfe`` (per MCMC step) and implement ``correct``."""

    name: ClassVar[str]
    #: Score evaluations per MCMC step (the corrector costs n_steps_each times this at every grid step).
    nfe: ClassVar[int] = 1

    def supports(self, sde: LinearSDE) -> str | None:
        """None when this corrector applies to ``sde``; otherwise the reason it does not."""
        return None

    def correct(
        self, sde: LinearSDE, score: Score, x: Tensor, t: float, snr: float, n_steps: int, generator: torch.Generator
    ) -> Tensor:
        """x after the MCMC steps (may update ``x`` in place and return it)."""
        raise NotImplementedError


def predictor(name: str) -> Callable[[type[Predictor]], type[Predictor]]:
    """Class decorator: register a predictor under ``name`` (a name registered twice is an error)."""

    def decorate(cls: type[Predictor]) -> type[Predictor]:
        cls.name = name
        return PREDICTORS.register(name)(cls)

    return decorate


def corrector(name: str) -> Callable[[type[Corrector]], type[Corrector]]:
    """Class decorator: register a corrector under ``name`` (a name registered twice is an error)."""

    def decorate(cls: type[Corrector]) -> type[Corrector]:
        cls.name = name
        return CORRECTORS.register(name)(cls)

    return decorate


# ----------------------------------------------------------------------------------------------------- predictors


@predictor("none")
class NoPredictor(Predictor):
    """Leave x as it is (corrector-only sampling); no score evaluation, no order: it discretises nothing."""

    nfe = 0

    def step(self, sde: LinearSDE, score: Score, x: Tensor, t_cur: float, t_next: float, brownian: Brownian) -> Tensor:
        return x


@predictor("euler_maruyama")
class EulerMaruyamaPredictor(Predictor):
    """Euler–Maruyama on the reverse SDE: x ← x − [f − g²s](x, t_cur)·Δt + g(t_cur)·ΔW̄.

    Strong order 1.0 (not 0.5) because the noise is additive; weak order 1.0.
    """

    strong_order = 1.0
    weak_order = 1.0

    def step(self, sde: LinearSDE, score: Score, x: Tensor, t_cur: float, t_next: float, brownian: Brownian) -> Tensor:
        drift = sde.reverse(score).drift(x, t_cur)
        return x.sub_(drift, alpha=t_cur - t_next).add_(brownian(t_cur, t_next), alpha=sde.diffusion(t_cur))


def forward_step(sde: LinearSDE, t_cur: float, t_next: float) -> tuple[float, float]:
    """(a, G²) of the forward process's exact step x_cur = a·x_next + G·z over [t_next, t_cur].

    a = s(t_cur)/s(t_next) and G² = s(t_cur)²(σ(t_cur)² − σ(t_next)²) (for VE: a = 1, G² = σ_c² − σ_n²).
    """
    s_cur = float(sde.s(t_cur))
    a = s_cur / float(sde.s(t_next))
    return a, s_cur**2 * (float(sde.sigma(t_cur)) ** 2 - float(sde.sigma(t_next)) ** 2)


@predictor("reverse_diffusion")
class ReverseDiffusionPredictor(Predictor):
    """The reverse-diffusion discretisation: reverse the forward step x_cur = a·x_next + G·z in form (score_sde's).

    With the forward step's drift (a − 1)·x and noise G (:func:`forward_step`): x ← x − (a − 1)·x + G²·s(x, t_cur) +
    G·z. For VE (a = 1) this is SMLD's x ← x + (σ_i² − σ_{i−1}²)·s + sqrt(σ_i² − σ_{i−1}²)·z; for VP it is score_sde's
    x ← (2 − sqrt(1 − β_i))·x + β_i·s + sqrt(β_i)·z. The noise G·z is G·ΔW̄/sqrt(Δt), the Brownian increment
    rescaled, so the predictor runs on a shared Brownian path. a − 1 and G² differ from EM's f·Δt and g²·Δt by
    O(Δt²) per step: strong and weak order 1.0, as EM (additive noise).
    """

    strong_order = 1.0
    weak_order = 1.0

    def step(self, sde: LinearSDE, score: Score, x: Tensor, t_cur: float, t_next: float, brownian: Brownian) -> Tensor:
        a, g2 = forward_step(sde, t_cur, t_next)
        noise_scale = math.sqrt(g2 / (t_cur - t_next))
        grad = score(x, t_cur)
        if a != 1.0:
            x = x * (2.0 - a)
        return x.add_(grad, alpha=g2).add_(brownian(t_cur, t_next), alpha=noise_scale)


@predictor("ancestral")
class AncestralPredictor(ReverseDiffusionPredictor):
    """Ancestral sampling: a draw from the Gaussian posterior q(x_next | x_cur, x_0) with x_0 at its posterior mean.

    With a, G² of the forward step (:func:`forward_step`), σ_c = σ(t_cur), σ_n = σ(t_next):
    x ← (x + G²·s(x, t_cur) + sqrt(σ_n²·G²/σ_c²)·z) / a. For VE (a = 1) this is SMLD's ancestral step (score_sde's
    VE predictor); for VP it is DDPM's, with mean (x + β_i·s)/sqrt(1 − β_i) and the posterior variance
    β̃_i = β_i (1 − ᾱ_{i−1})/(1 − ᾱ_i). The noise variance is G²·(1 − O(Δt)) and the noise is the rescaled Brownian
    increment, so strong and weak order 1.0 as EM (additive noise).
    """

    def step(self, sde: LinearSDE, score: Score, x: Tensor, t_cur: float, t_next: float, brownian: Brownian) -> Tensor:
        a, g2 = forward_step(sde, t_cur, t_next)
        ratio = float(sde.sigma(t_next)) ** 2 / float(sde.sigma(t_cur)) ** 2
        noise_scale = math.sqrt(ratio * g2 / (t_cur - t_next))
        x = x.add_(score(x, t_cur), alpha=g2).add_(brownian(t_cur, t_next), alpha=noise_scale)
        return x if a == 1.0 else x.div_(a)


# ----------------------------------------------------------------------------------------------------- correctors


@corrector("none")
class NoCorrector(Corrector):
    """No correction (predictor-only sampling); no score evaluation."""

    nfe = 0

    def correct(
        self, sde: LinearSDE, score: Score, x: Tensor, t: float, snr: float, n_steps: int, generator: torch.Generator
    ) -> Tensor:
        return x


def _batch_norm(v: Tensor) -> float:
    """Mean over the batch of the per-sample L2 norms (one number for the whole batch, as score_sde)."""
    return float(torch.linalg.vector_norm(v, dim=1).mean())


@corrector("langevin")
class LangevinCorrector(Corrector):
    """Langevin MCMC with a step set by a signal-to-noise ratio: x ← x + ε·s(x, t) + sqrt(2ε)·z.

    ε = 2·(snr·‖z‖/‖s‖)², where ‖z‖ and ‖s‖ are the *batch means* of the per-sample norms (as score_sde does): one
    step size for the whole batch, so it is not fooled by the few samples whose score is near zero (at a mode's
    centre a per-sample ratio would give them a huge step), but it depends on the batch's composition. The noise z
    comes from the run's generator (it is not a Brownian increment of the reverse SDE).
    """

    def correct(
        self, sde: LinearSDE, score: Score, x: Tensor, t: float, snr: float, n_steps: int, generator: torch.Generator
    ) -> Tensor:
        noise = torch.empty_like(x)
        for _ in range(n_steps):
            grad = score(x, t)
            standard_normal_(noise, generator)
            grad_norm = _batch_norm(grad)
            # A zero (or NaN) score gives an infinite step, which the base class then reports as diverged.
            eps = 2.0 * (snr * _batch_norm(noise) / grad_norm) ** 2 if grad_norm > 0 else math.inf
            x = x.add_(grad, alpha=eps).add_(noise, alpha=math.sqrt(2.0 * eps))
        return x


@corrector("annealed_langevin")
class AnnealedLangevinCorrector(Corrector):
    """Annealed Langevin dynamics (Song & Ermon 2019, as score_sde's ALD corrector): x ← x + ε·s + sqrt(2ε)·z.

    ε = 2·(snr·s(t)σ(t))²: the step follows the kernel's std instead of the score's norm (for p_t ≈ N(·, s²σ² I) the
    two agree). score_sde multiplies this by α_i = 1 − β_i for VP, a factor 1 − O(Δt) left out here (for VE it is 1).
    """

    def correct(
        self, sde: LinearSDE, score: Score, x: Tensor, t: float, snr: float, n_steps: int, generator: torch.Generator
    ) -> Tensor:
        eps = 2.0 * (snr * float(sde.std(t))) ** 2
        noise = torch.empty_like(x)
        for _ in range(n_steps):
            grad = score(x, t)
            x = x.add_(grad, alpha=eps).add_(standard_normal_(noise, generator), alpha=math.sqrt(2.0 * eps))
        return x


# ---------------------------------------------------------------------------------------------------------- solver

PREDICTOR = Param("predictor", str, "reverse_diffusion", "predictor: one reverse-SDE step", registry=PREDICTORS)
CORRECTOR = Param("corrector", str, "langevin", "corrector: MCMC steps at fixed time", registry=CORRECTORS)
SNR = Param("snr", float, 0.16, "corrector signal-to-noise ratio (sets its step size)", lambda v: v > 0, "must be > 0")
N_STEPS_EACH = Param(
    "n_steps_each", int, 1, "corrector steps after each predictor step", lambda v: v >= 1, "must be >= 1"
)


@register
class PredictorCorrector(FixedStepSolver):
    """Predictor–corrector sampling: each grid step runs the predictor from t_i to t_{i+1}, then the corrector there.

    Order *predictor first, then corrector*, as Song et al. 2021's Algorithm 2 (score_sde's ``pc_sampler`` runs the
    corrector first): on our grid, which ends at t_end, the last correction then acts on the returned samples at
    t_end, and none is spent on the initial draw, which is already from the prior. NFE per run =
    steps·(predictor NFE + n_steps_each·corrector NFE) + denoise, all counted.

    ``denoise`` defaults to false, unlike score_sde: the honest target is p_ε, and the Tweedie step returns
    E[x_0 | x_ε], whose per-mode spread on ve-gmm2 is ~4% *below* p_ε's (a posterior mean shrinks the spread; it is
    not a draw of p_0 either): measured with the defaults at 141 and 501 NFE, denoised samples fail the 3% spread bar
    (spread 2–3% low) where the same runs without it pass.

    Declared orders depend on the options, so they are set on the built instance: with corrector ``none`` they are the
    predictor's (1.0 strong and weak for ``euler_maruyama``, ``reverse_diffusion`` and ``ancestral``: additive noise);
    with any corrector, or predictor ``none``, they are None: the Langevin step is set by snr and σ(t), not by Δt, and
    its noise is not from the Brownian path, so the run does not converge to a solution of the reverse SDE as the grid
    is refined. The class-level orders (what ``sdebench list`` shows) are those of the default options: None.

    Measured on ve-gmm2 with the exact score (n = 20 000): the defaults pass the quality bars from 140 NFE (70 steps;
    100 NFE leaves the spread 3–4% high), against ~300 NFE for reverse diffusion alone, so the corrector helps at
    score_sde's snr 0.16. It costs a bias: a Langevin step ε = 2·snr²·v on a Gaussian of variance v has stationary
    variance v/(1 − snr²), so the spread stays 1.5–2.5% high at any budget; at snr 0.32 it is 5% (fails the 3% bar
    at every budget), at snr 0.08 ~1% but the bars need ~200–300 NFE. Corrector-first (score_sde's order) measured
    the same within noise.
    """

    name = "pc"
    kind = "sde"
    strong_order = None
    weak_order = None
    params = (*FixedStepSolver.params, PREDICTOR, CORRECTOR, SNR, N_STEPS_EACH, DENOISE)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.nfe_for_steps(1)  # refuses predictor none with corrector none when steps (not a budget) was given
        pred = PREDICTORS.get(self.options["predictor"])
        if self.options["corrector"] == "none":
            self.strong_order = pred.strong_order
            self.weak_order = pred.weak_order

    def nfe_for_steps(self, steps: int) -> int:
        """steps·(predictor NFE + n_steps_each·corrector NFE), plus one for the final denoising step."""
        opts = self.options
        per_step = PREDICTORS.get(opts["predictor"]).nfe + opts["n_steps_each"] * CORRECTORS.get(opts["corrector"]).nfe
        check(per_step > 0, "corrector", "predictor and corrector cannot both be 'none': a step would do nothing")
        return steps * per_step + int(opts["denoise"])

    def supports(self, problem: Problem) -> str | None:
        for kind, registry in (("predictor", PREDICTORS), ("corrector", CORRECTORS)):
            reason = registry.get(self.options[kind])().supports(problem.sde)
            if reason is not None:
                return f"{kind} {self.options[kind]!r}: {reason}"
        return None

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian
    ) -> tuple[Tensor, dict]:
        opts = self.options
        sde = problem.sde
        pred = PREDICTORS.get(opts["predictor"])()
        corr = CORRECTORS.get(opts["corrector"])()
        snr, n_each = opts["snr"], opts["n_steps_each"]
        x = self.initial_state(problem, n, generator)
        for t_cur, t_next in itertools.pairwise(self.times(problem)):
            x = pred.step(sde, score, x, t_cur, t_next, brownian)
            x = corr.correct(sde, score, x, t_next, snr, n_each, generator)
        if opts["denoise"]:
            x = tweedie_denoise(problem, score, x)
        info = {"steps": opts["steps"], "grid": self.grid_name(problem), "predictor": opts["predictor"]}
        info.update(corrector=opts["corrector"], snr=snr, n_steps_each=n_each)
        return x, info
