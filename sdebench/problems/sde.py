"""The variance-exploding SDE (Song et al. 2021), its reverse-time SDE and its probability-flow ODE.

Convention for σ(0) (used everywhere in sdebench): the perturbation kernel is
p_0t(x_t | x_0) = N(x_0, σ(t)² I) with σ(t) = σmin (σmax/σmin)^t for every t in [0, 1], as in the score_sde code.
So p_t = p_data ⊛ N(0, σ(t)² I); between any two times s < t the SDE adds variance
∫_s^t g² = σ(t)² − σ(s)², so these marginals are exactly those of the SDE. Even at t = 0 the process holds noise
of scale σmin: a sampler that stops at t = ε targets p_ε, not p_data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from sdebench.errors import check

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Any], Tensor]


class VESDE:
    """dx = g(t) dw with σ(t) = σmin (σmax/σmin)^t and g(t) = σ(t)·sqrt(2 log(σmax/σmin)); any dimension."""

    #: g depends on t only, so the noise is additive (Itô and Stratonovich coincide).
    noise_type = "additive"
    #: f ≡ 0: the reverse SDE and the ODE skip adding it (a measurable share of an EM step's own cost).
    zero_drift = True

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        check(isinstance(sigma_min, (int, float)) and sigma_min > 0, "sde.sigma_min", "must be > 0")
        check(
            isinstance(sigma_max, (int, float)) and sigma_max > sigma_min,
            "sde.sigma_max",
            f"must be > sigma_min ({sigma_min})",
        )
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self._g_factor = math.sqrt(2.0 * self._log_ratio)

    def spec(self) -> dict[str, Any]:
        """Plain-data description (for TOML, hashing and reports)."""
        return {"type": "ve", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def sigma(self, t: float | Tensor) -> float | Tensor:
        """Noise scale σ(t) of the perturbation kernel."""
        if isinstance(t, Tensor):
            return self.sigma_min * torch.exp(self._log_ratio * t)
        return self.sigma_min * math.exp(self._log_ratio * t)

    def t_of_sigma(self, sigma: float | Tensor) -> float | Tensor:
        """Inverse of :meth:`sigma`."""
        if isinstance(sigma, Tensor):
            return torch.log(sigma / self.sigma_min) / self._log_ratio
        return math.log(sigma / self.sigma_min) / self._log_ratio

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """Forward drift f(x, t) = 0."""
        return torch.zeros_like(x)

    def diffusion(self, t: float | Tensor) -> float | Tensor:
        """Diffusion coefficient g(t) = σ(t)·sqrt(2 log(σmax/σmin)) = sqrt(dσ²/dt)."""
        return self.sigma(t) * self._g_factor

    def marginal(self, x0: Tensor, t: float | Tensor) -> tuple[Tensor, float | Tensor]:
        """Mean and std of the perturbation kernel p_0t(x_t | x_0) = N(x_0, σ(t)² I)."""
        return x0, self.sigma(t)

    def prior_sample(
        self, n: int, dim: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """n draws from the prior N(0, σmax² I)."""
        return self.sigma_max * torch.randn(n, dim, generator=generator, dtype=dtype)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the prior N(0, σmax² I) at each row of x."""
        d = x.shape[-1]
        return -0.5 * (x.pow(2).sum(-1) / self.sigma_max**2 + d * math.log(2 * math.pi * self.sigma_max**2))

    def reverse(self, score: ScoreFn) -> ReverseSDE:
        """The reverse-time SDE dx = [f − g²·s] dt + g dw̄ for a score s."""
        return ReverseSDE(self, score)

    def probability_flow(self, score: ScoreFn) -> ProbabilityFlowODE:
        """The probability-flow ODE dx/dt = f − ½ g²·s for a score s."""
        return ProbabilityFlowODE(self, score)


class ReverseSDE:
    """Reverse-time SDE built from an SDE and a score: drift f − g²·s, diffusion g (time runs from 1 down)."""

    def __init__(self, sde: VESDE, score: ScoreFn) -> None:
        self.sde = sde
        self.score = score

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """f(x, t) − g(t)²·s(x, t)."""
        out = self.score(x, t) * -(_column(self.sde.diffusion(t)) ** 2)
        return out if self.sde.zero_drift else out.add_(self.sde.drift(x, t))

    def diffusion(self, t: float | Tensor) -> float | Tensor:
        """g(t)."""
        return self.sde.diffusion(t)


class ProbabilityFlowODE:
    """The probability-flow ODE dx/dt = f − ½ g²·s, whose marginals equal the SDE's."""

    def __init__(self, sde: VESDE, score: ScoreFn) -> None:
        self.sde = sde
        self.score = score

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """f(x, t) − ½ g(t)²·s(x, t)."""
        out = self.score(x, t) * -(0.5 * _column(self.sde.diffusion(t)) ** 2)
        return out if self.sde.zero_drift else out.add_(self.sde.drift(x, t))


def _column(value: float | Tensor) -> float | Tensor:
    """A per-sample (n,) tensor as an (n, 1) column so it broadcasts against (n, d); scalars pass through."""
    if isinstance(value, Tensor) and value.dim() == 1:
        return value[:, None]
    return value
