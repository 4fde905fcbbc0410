"""The score-SDE family: linear SDEs dx = f(t)·x dt + g(t) dw, their reverse-time SDE and probability-flow ODE.

Every SDE here is described by four functions of time (the seed's eqs. 3.26–3.29): the drift coefficient f(t), the
diffusion g(t), the scale s(t) = exp ∫₀ᵗ f and the noise level σ(t), with σ(t)² = σ(0)² + ∫₀ᵗ g²/s². The
perturbation kernel is then

    p_0t(x_t | x_0) = N(s(t)·x_0, s(t)²σ(t)² I),

so x_t / s(t) = x_0 + σ(t)·z: in the *scaled variable* x/s every member is a variance-exploding process with noise
level σ (what EDM's general ODE and the σ-space samplers use). Solvers ask an SDE for f, g, s and σ; they never ask
for its class.

Convention for σ(0): the VE-SDE keeps score_sde's σ(t) = σmin (σmax/σmin)^t for every t in [0, 1], so even t = 0
holds noise of scale σmin; VP and sub-VP have σ(0) = 0; EDM has σ(t) = t on its own time range [σmin, σmax]. In
every case a sampler that stops at t = ε targets p_ε = law of s(ε)(x_0 + σ(ε) z), not p_data.

Time runs over (0, T]: T = 1 for ve, vp and subvp, and T = σmax for edm (whose time *is* σ). Samplers start at T.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import torch

from sdebench.errors import check
from sdebench.registry import Registry

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Any], Tensor]
Time = float | Tensor

#: SDE classes by ``type`` (the ``[sde] type = ...`` of a problem TOML).
SDES: Registry = Registry("sde")


def _lib(t: Time) -> ModuleType:
    """``torch`` for tensors, ``math`` for floats: each formula is written once and serves both."""
    return torch if isinstance(t, Tensor) else math


class LinearSDE:
    """Base class of the family: subclasses define f, g (``diffusion``), s, σ and its inverse, and the prior.

    ``params`` maps each parameter to its default; the values are validated by :meth:`validate` (subclasses add
    their own range checks), with field names ``sde.<param>`` in the errors.
    """

    type: ClassVar[str]
    #: g depends on t only, so the noise is additive (Itô and Stratonovich coincide).
    noise_type: ClassVar[str] = "additive"
    #: f ≡ 0: the reverse SDE and the ODE skip adding it (a measurable share of an EM step's own cost).
    zero_drift: ClassVar[bool] = False
    params: ClassVar[dict[str, float]] = {}
    #: Where samplers stop by default (a problem's ``t_end`` overrides it).
    default_t_end: ClassVar[float] = 1e-3
    #: Final time: samplers start there.
    T: float = 1.0
    #: The grid a fixed-step solver uses when none is given (score_sde's and DDPM's uniform steps in t).
    default_grid: ClassVar[str] = "uniform-t"

    def __init__(self, **values: float) -> None:
        for key in values:
            check(key in self.params, f"sde.{key}", f"unknown key (valid: type, {', '.join(self.params)})")
        for key, default in self.params.items():
            value = values.get(key, default)
            check(
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                f"sde.{key}",
                f"must be a finite number, got {value!r}",
            )
            setattr(self, key, float(value))
        self.validate()

    def validate(self) -> None:
        """Range checks of the parameters (UserError naming the field)."""

    def spec(self) -> dict[str, Any]:
        """Plain-data description (for TOML, hashing and reports)."""
        return {"type": self.type, **{key: getattr(self, key) for key in self.params}}

    def describe(self) -> str:
        """One line for listings and reports."""
        values = ", ".join(f"{k} {getattr(self, k):g}" for k in self.params)
        return f"{self.type} ({values})"

    # -- the four functions ---------------------------------------------------------------------------------------
    def f(self, t: Time) -> Time:
        """Drift coefficient f(t) of dx = f(t)·x dt + g(t) dw."""
        raise NotImplementedError

    def diffusion(self, t: Time) -> Time:
        """Diffusion coefficient g(t)."""
        raise NotImplementedError

    def s(self, t: Time) -> Time:
        """Scale s(t) = exp ∫₀ᵗ f: the kernel's mean is s(t)·x_0."""
        raise NotImplementedError

    def sigma(self, t: Time) -> Time:
        """Noise level σ(t) of the scaled variable x/s: the kernel's std is s(t)·σ(t)."""
        raise NotImplementedError

    def t_of_sigma(self, sigma: Time) -> Time:
        """Inverse of :meth:`sigma` (σ is increasing in t)."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Std of the prior N(0, prior_std² I) that samplers start from at t = T."""
        raise NotImplementedError

    def sigma_range(self) -> tuple[float, float]:
        """The σ range a network is conditioned on: σ at the default t_end, and at T."""
        return float(self.sigma(self.default_t_end)), float(self.sigma(self.T))

    # -- derived ----------------------------------------------------------------------------------------------------
    def std(self, t: Time) -> Time:
        """Std s(t)·σ(t) of the perturbation kernel."""
        return self.s(t) * self.sigma(t)

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """Forward drift f(t)·x."""
        return x * _column(self.f(t))

    def marginal(self, x0: Tensor, t: Time) -> tuple[Tensor, Time]:
        """Mean and std of the perturbation kernel p_0t(x_t | x_0) = N(s·x_0, s²σ² I)."""
        return x0 * _column(self.s(t)), self.std(t)

    def prior_sample(
        self, n: int, dim: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """n draws from the prior N(0, prior_std² I)."""
        return self.prior_std * torch.randn(n, dim, generator=generator, dtype=dtype)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the prior N(0, prior_std² I) at each row of x."""
        d, var = x.shape[-1], self.prior_std**2
        return -0.5 * (x.pow(2).sum(-1) / var + d * math.log(2 * math.pi * var))

    def reverse(self, score: ScoreFn) -> ReverseSDE:
        """The reverse-time SDE dx = [f − g²·s] dt + g dw̄ for a score s."""
        return ReverseSDE(self, score)

    def probability_flow(self, score: ScoreFn) -> ProbabilityFlowODE:
        """The probability-flow ODE dx/dt = f − ½ g²·s for a score s."""
        return ProbabilityFlowODE(self, score)


def _positive(sde: LinearSDE, low: str, high: str) -> None:
    """low > 0 and high > low, as UserErrors naming the field."""
    check(getattr(sde, low) > 0, f"sde.{low}", "must be > 0")
    check(getattr(sde, high) > getattr(sde, low), f"sde.{high}", f"must be > {low} ({getattr(sde, low):g})")


@SDES.register("ve")
class VESDE(LinearSDE):
    """Variance exploding (Song et al. 2021): f = 0, s = 1, σ(t) = σmin (σmax/σmin)^t, g = σ·sqrt(2 log(σmax/σmin))."""

    type = "ve"
    zero_drift = True
    params: ClassVar[dict[str, float]] = {"sigma_min": 0.01, "sigma_max": 10.0}
    default_t_end = 1e-5
    sigma_min: float
    sigma_max: float

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0, **unknown: float) -> None:
        super().__init__(sigma_min=sigma_min, sigma_max=sigma_max, **unknown)

    def validate(self) -> None:
        """σmin > 0 and σmax > σmin."""
        _positive(self, "sigma_min", "sigma_max")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self._g_factor = math.sqrt(2.0 * self._log_ratio)

    def f(self, t: Time) -> Time:
        """0."""
        return 0.0

    def s(self, t: Time) -> Time:
        """1."""
        return 1.0

    def sigma(self, t: Time) -> Time:
        """σmin (σmax/σmin)^t."""
        return self.sigma_min * _lib(t).exp(self._log_ratio * t)

    def t_of_sigma(self, sigma: Time) -> Time:
        """log(σ/σmin) / log(σmax/σmin)."""
        return _lib(sigma).log(sigma / self.sigma_min) / self._log_ratio

    def diffusion(self, t: Time) -> Time:
        """σ(t)·sqrt(2 log(σmax/σmin)) = sqrt(dσ²/dt)."""
        return self.sigma(t) * self._g_factor

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """0."""
        return torch.zeros_like(x)

    @property
    def prior_std(self) -> float:
        """σmax."""
        return self.sigma_max

    def sigma_range(self) -> tuple[float, float]:
        """(σmin, σmax)."""
        return self.sigma_min, self.sigma_max


class _BetaSchedule(LinearSDE):
    """The linear schedule β(t) = β_min + t(β_max − β_min) and its integral B(t) = ∫₀ᵗ β, shared by VP and sub-VP."""

    params: ClassVar[dict[str, float]] = {"beta_min": 0.1, "beta_max": 20.0}
    default_t_end = 1e-3
    beta_min: float
    beta_max: float

    def validate(self) -> None:
        """β_min ≥ 0 and β_max > β_min."""
        check(self.beta_min >= 0, "sde.beta_min", "must be >= 0")
        check(self.beta_max > self.beta_min, "sde.beta_max", f"must be > beta_min ({self.beta_min:g})")

    def beta(self, t: Time) -> Time:
        """β(t)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t: Time) -> Time:
        """B(t) = β_min t + ½ (β_max − β_min) t²."""
        return t * (self.beta_min + 0.5 * t * (self.beta_max - self.beta_min))

    def t_of_integral(self, b: Time) -> Time:
        """Inverse of B: the positive root of ½Δ t² + β_min t − B, in the form that does not cancel."""
        lib = _lib(b)
        return 2 * b / (self.beta_min + lib.sqrt(self.beta_min**2 + 2 * (self.beta_max - self.beta_min) * b))

    def f(self, t: Time) -> Time:
        """−β(t)/2."""
        return -0.5 * self.beta(t)

    def s(self, t: Time) -> Time:
        """exp(−B(t)/2)."""
        return _lib(t).exp(-0.5 * self.integral(t))

    @property
    def prior_std(self) -> float:
        """1 (score_sde's prior; p_1's std differs from 1 by e^(−B(1)) ≈ 4e-5 with the default β's)."""
        return 1.0


@SDES.register("vp")
class VPSDE(_BetaSchedule):
    """Variance preserving (Song et al. 2021; DDPM's limit): f = −β/2, g = sqrt(β), kernel N(√ᾱ x_0, (1 − ᾱ) I).

    With ᾱ = e^(−B): s = √ᾱ and σ² = (1 − ᾱ)/ᾱ = expm1(B), computed with expm1 so it stays exact as t → 0.
    """

    type = "vp"

    def diffusion(self, t: Time) -> Time:
        """sqrt(β(t))."""
        return _lib(t).sqrt(self.beta(t))

    def sigma(self, t: Time) -> Time:
        """sqrt(expm1(B(t)))."""
        lib = _lib(t)
        return lib.sqrt(lib.expm1(self.integral(t)))

    def t_of_sigma(self, sigma: Time) -> Time:
        """B = log1p(σ²), then t from B."""
        return self.t_of_integral(_lib(sigma).log1p(sigma * sigma))


@SDES.register("subvp")
class SubVPSDE(_BetaSchedule):
    """Sub-VP (Song et al. 2021): f = −β/2, g = sqrt(β (1 − e^(−2B))), kernel N(e^(−B/2) x_0, (1 − e^(−B))² I).

    So s = e^(−B/2) and σ = (1 − e^(−B))·e^(B/2) = 2 sinh(B/2): its variance stays below VP's at every t.
    """

    type = "subvp"

    def diffusion(self, t: Time) -> Time:
        """sqrt(β(t)·(1 − e^(−2B(t))))."""
        lib = _lib(t)
        return lib.sqrt(-self.beta(t) * lib.expm1(-2 * self.integral(t)))

    def sigma(self, t: Time) -> Time:
        """2 sinh(B(t)/2)."""
        return 2 * _lib(t).sinh(0.5 * self.integral(t))

    def t_of_sigma(self, sigma: Time) -> Time:
        """B = 2 asinh(σ/2), then t from B."""
        return self.t_of_integral(2 * _lib(sigma).asinh(0.5 * sigma))


@SDES.register("edm")
class EDMSDE(LinearSDE):
    """EDM's SDE (Karras et al. 2022): f = 0, s = 1, σ(t) = t, g = sqrt(2t), on t in [σmin, σmax].

    Time is σ itself, so T = σmax (80 by default) and the default t_end is σmin (0.002): EDM's own σ range.
    """

    type = "edm"
    zero_drift = True
    #: Time is σ here, so uniform steps in t would be uniform in σ: EDM's own ρ = 7 schedule instead.
    default_grid = "karras"
    params: ClassVar[dict[str, float]] = {"sigma_min": 0.002, "sigma_max": 80.0}
    sigma_min: float
    sigma_max: float

    def validate(self) -> None:
        """σmin > 0 and σmax > σmin; T = σmax."""
        _positive(self, "sigma_min", "sigma_max")
        self.T = self.sigma_max
        self.default_t_end = self.sigma_min

    def f(self, t: Time) -> Time:
        """0."""
        return 0.0

    def s(self, t: Time) -> Time:
        """1."""
        return 1.0

    def sigma(self, t: Time) -> Time:
        """t."""
        return t

    def t_of_sigma(self, sigma: Time) -> Time:
        """σ."""
        return sigma

    def diffusion(self, t: Time) -> Time:
        """sqrt(2t) = sqrt(dσ²/dt)."""
        return _lib(t).sqrt(2 * t)

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """0."""
        return torch.zeros_like(x)

    @property
    def prior_std(self) -> float:
        """σmax."""
        return self.sigma_max

    def sigma_range(self) -> tuple[float, float]:
        """(σmin, σmax)."""
        return self.sigma_min, self.sigma_max


def sde_from_spec(spec: dict[str, Any]) -> LinearSDE:
    """Build (and validate) the SDE of a ``[sde]`` table: ``type`` (default ``ve``) and that type's parameters."""
    check(isinstance(spec, dict), "sde", "must be a table")
    kind = spec.get("type", "ve")
    check(isinstance(kind, str), "sde.type", f"must be a string, got {kind!r}")
    cls = SDES.get(kind, "sde.type")
    return cls(**{k: v for k, v in spec.items() if k != "type"})


class ReverseSDE:
    """Reverse-time SDE built from an SDE and a score: drift f − g²·s, diffusion g (time runs from T down)."""

    def __init__(self, sde: LinearSDE, score: ScoreFn) -> None:
        self.sde = sde
        self.score = score

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """f(t)·x − g(t)²·s(x, t)."""
        out = self.score(x, t) * -(_column(self.sde.diffusion(t)) ** 2)
        return out if self.sde.zero_drift else out.add_(self.sde.drift(x, t))

    def diffusion(self, t: Time) -> Time:
        """g(t)."""
        return self.sde.diffusion(t)


class ProbabilityFlowODE:
    """The probability-flow ODE dx/dt = f − ½ g²·s, whose marginals equal the SDE's."""

    def __init__(self, sde: LinearSDE, score: ScoreFn) -> None:
        self.sde = sde
        self.score = score

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """f(t)·x − ½ g(t)²·s(x, t)."""
        out = self.score(x, t) * -(0.5 * _column(self.sde.diffusion(t)) ** 2)
        return out if self.sde.zero_drift else out.add_(self.sde.drift(x, t))


def _column(value: Time) -> Time:
    """A per-sample (n,) tensor as an (n, 1) column so it broadcasts against (n, d); scalars pass through."""
    if isinstance(value, Tensor) and value.dim() == 1:
        return value[:, None]
    return value
