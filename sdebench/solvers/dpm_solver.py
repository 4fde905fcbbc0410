"""DPM-Solver++ multistep samplers with optional noise: (2M) SDE, (3M) and (3M) SDE (Lu et al. 2022).

Written, like the other σ-samplers (:mod:`sdebench.solvers.fast`, :mod:`sdebench.solvers.sigma`), on the scaled
variable x̂ = x/s(t), for every SDE of the family. In λ = −log σ the family of reverse processes with the
probability-flow ODE's marginals is dx̂ = a·(D − x̂) dλ + sqrt(2η) σ dW, a = 1 + η (η = 0: the ODE; η = 1: the
reverse SDE). Over a step of h = log(σ/σ'), with D(λ₀ + u) replaced by the polynomial through the last denoiser
outputs, it is integrated exactly (H = a·h):

    x̂' = e^{−H} x̂ + (1 − e^{−H}) D₀ + c₁ D₁ + c₂ D₂ + σ' sqrt(1 − e^{−2ηh}) z,

where D₁, D₂ are the polynomial's first and second coefficients in u, c₁ = ∫₀^h a e^{−a(h−u)} u du =
h·(1 − (1 − e^{−H})/H) and c₂ = ∫₀^h a e^{−a(h−u)} u² du = h²·(1 − 2/H + 2(1 − e^{−H})/H²). The noise is the
exact variance of the step's linear part (the generator's normals: like EDM's churn, not increments of a shared
Brownian path, so these samplers declare no strong order). One NFE a step; the first steps, without enough
history, use the orders they can (1, then 2).

The second-order method takes the "midpoint" form of DPM-Solver++(2M), (1 − e^{−H})·(D₀ − D₋₁)/(2r), r =
h_prev/h: with η = 0 it is ``dpmpp-2m`` step for step (tested to round-off).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, register
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.noise import standard_normal_
from sdebench.solvers.sigma import SigmaSampler, denoiser

Tensor = torch.Tensor

_ETA_DOC = "noise level η (0: the probability-flow ODE, 1: the reverse SDE)"
ETA = Param("eta", float, 1.0, _ETA_DOC, lambda v: v >= 0, "must be >= 0")
S_NOISE = Param("s_noise", float, 1.0, "scale of the added noise", lambda v: v > 0, "must be > 0")


class DPMSolverMultistep(SigmaSampler):
    """Common part: the exponential-integrator step of order ``order`` with noise level ``eta``."""

    order: ClassVar[int] = 2
    params: ClassVar[tuple[Param, ...]] = (*SigmaSampler.params, ETA, S_NOISE)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["eta"] > 0:  # the generator's noise: no shared path, no fixed SDE across grids
            self.kind, self.strong_order, self.weak_order = "sde", None, None
        else:
            self.kind, self.strong_order, self.weak_order = "ode", float(self.order), float(self.order)

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        eta, s_noise = self.options["eta"], self.options["s_noise"]
        times, sigmas = self.grid(problem)
        x = self.initial_state(problem, n, generator)
        noise = torch.empty_like(x)
        history: list[tuple[Tensor, float]] = []  # (D, h of the step that followed it), newest first
        for i in range(len(times) - 1):
            d0 = denoiser(problem, score, x, times[i], sigmas[i])
            h = math.log(sigmas[i] / sigmas[i + 1])
            big_h = (1.0 + eta) * h
            decay = math.exp(-big_h)
            x = (x * decay).add_(d0, alpha=1.0 - decay)
            usable = min(self.order - 1, len(history))
            if usable == 1 and self.order == 2:
                d1, h1 = history[0]
                x.add_(d0 - d1, alpha=(1.0 - decay) * h / (2.0 * h1))  # midpoint form: (1 − e^{−H})/(2r)
            elif usable >= 1:
                c1 = h * (1.0 - (1.0 - decay) / big_h)
                d1, h1 = history[0]
                slope01 = (d0 - d1) / h1
                if usable == 1:
                    x.add_(slope01, alpha=c1)
                else:
                    d2, h2 = history[1]
                    curvature = (slope01 - (d1 - d2) / h2) / (h1 + h2)  # second divided difference
                    c2 = h * h * (1.0 - 2.0 / big_h + 2.0 * (1.0 - decay) / big_h**2)
                    x.add_(slope01 + curvature * h1, alpha=c1).add_(curvature, alpha=c2)
            if eta > 0:
                scale = s_noise * sigmas[i + 1] * math.sqrt(-math.expm1(-2.0 * eta * h))
                x.add_(standard_normal_(noise, generator, scale))
            history.insert(0, (d0, h))
            del history[2:]
        x, info = self.finish(problem, score, x)
        return x, {**info, "eta": eta}


@register
class DPMSolverPP2MSDE(DPMSolverMultistep):
    """DPM-Solver++(2M) SDE: the second-order multistep step with the reverse SDE's noise (η = 1 by default)."""

    name = "dpmpp-2m-sde"
    kind = "sde"
    order = 2
    strong_order = None
    weak_order = None


@register
class DPMSolverPP3M(DPMSolverMultistep):
    """DPM-Solver++(3M): third-order multistep on the probability-flow ODE (η = 0 by default)."""

    name = "dpmpp-3m"
    kind = "ode"
    order = 3
    strong_order = 3.0
    weak_order = 3.0
    params = (*SigmaSampler.params, Param("eta", float, 0.0, _ETA_DOC, lambda v: v >= 0, "must be >= 0"), S_NOISE)


@register
class DPMSolverPP3MSDE(DPMSolverMultistep):
    """DPM-Solver++(3M) SDE: the third-order multistep step with the reverse SDE's noise (η = 1 by default)."""

    name = "dpmpp-3m-sde"
    kind = "sde"
    order = 3
    strong_order = None
    weak_order = None
