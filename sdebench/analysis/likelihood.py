"""Negative log-likelihood through the probability-flow ODE and the instantaneous change of variables.

Which density. Points x are taken at the problem's t_end = ε (where samplers stop), i.e. as points of p_ε. The ODE
dx/dt = f − ½ g²·s is integrated *forward* from t = ε to t = T (1, or σmax for EDM), together with
d(Δ)/dt = div(drift):

    log p_ε(x) = log p_prior(x(T)) + ∫_ε^T div(drift)(x(t), t) dt.

Any SDE of the family: the drift's divergence includes f(t)·d, which autograd finds like the rest.

So the result is the NLL of the **model's p_ε** — the distribution a sampler stopping at ε targets — and must be
compared with the exact −log p_ε (:func:`exact_nll`). Under the VE's σ(0) convention (see
:mod:`sdebench.problems.sde`) even t = 0 carries noise of scale σmin, so the ODE can never reach p_data itself;
starting at 0 instead of ε would give log p_0 at points of p_ε (a different, if here very close, density). With the
exact score the only modelling error left is the prior: p_T is replaced by the SDE's prior (N(0, σmax² I) for VE,
N(0, I) for VP); ``log_prior`` and ``x_end`` are returned so that gap can be measured (:func:`prior_gap`).

Divergence: ``"exact"`` takes d backward passes per evaluation (low d); ``"hutchinson"`` takes one per probe,
E[vᵀ J v] = tr J for probes with E[v vᵀ] = I (Rademacher ±1 or Gaussian), drawn once per run from the generator
and held fixed along the trajectory (so the estimate is vᵀ(∫J dt)v: unbiased, and the ODE sees a smooth
right-hand side).

Integration: scipy's ``solve_ivp`` on the flattened (x, Δ) state of all points at once, in float64. As in any joint
solve, the step sizes are shared and the error test is scipy's RMS over the whole state, not a per-point bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from tqdm import tqdm

from sdebench.choices import DIVERGENCES, NOISES
from sdebench.errors import DivergedError, UserError, check
from sdebench.problems import Problem
from sdebench.scores.base import CountingScore

Tensor = torch.Tensor

#: Explicit methods only: the implicit ones would build a finite-difference Jacobian of the n·(d+1) system.
METHODS = ("RK45", "RK23", "DOP853")


@dataclass
class LikelihoodResult:
    """Per-point NLL (nats) of the model's p_ε at the given points, its summary, and the integration's cost.

    ``nll`` = −(``log_prior`` + ``delta_logp``); ``x_end`` are the points carried to t = 1 by the ODE.
    ``bpd`` is the mean NLL / (d ln 2) of the continuous density (no dequantisation offset, so it can be negative).
    ``nfe`` counts batched score evaluations (one per right-hand side); ``backward`` counts backward passes.
    """

    nll: Tensor
    log_prior: Tensor
    delta_logp: Tensor
    x_end: Tensor
    mean: float
    se: float
    bpd: float
    bpd_se: float
    nfe: int
    backward: int
    wall_s: float
    t_start: float
    divergence: str
    noise: str | None
    n_probes: int | None
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (floats, ints, strings) for JSON and reports."""
        return {
            "nll_mean": self.mean,
            "nll_se": self.se,
            "bpd": self.bpd,
            "bpd_se": self.bpd_se,
            "n": int(self.nll.shape[0]),
            "nfe": self.nfe,
            "backward": self.backward,
            "wall_s": self.wall_s,
            "t_start": self.t_start,
            "divergence": self.divergence,
            "noise": self.noise,
            "n_probes": self.n_probes,
            **self.options,
        }


def exact_nll(problem: Problem, x: Tensor) -> Tensor:
    """The exact −log p_ε(x) per row: what :func:`negative_log_likelihood` targets."""
    return -problem.target().log_prob(_check_points(problem, x))


def prior_gap(problem: Problem, result: LikelihoodResult) -> Tensor:
    """Per point, log p_T(x(T)) − log p_prior(x(T)): the error the prior alone puts into log p_ε."""
    return problem.marginal_at(problem.t_start).log_prob(result.x_end) - result.log_prior


def negative_log_likelihood(
    problem: Problem,
    score: Callable[[Tensor, Any], Tensor],
    x: Tensor,
    *,
    divergence: str = "exact",
    noise: str = "rademacher",
    n_probes: int = 1,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    method: str = "RK45",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> LikelihoodResult:
    """NLL (nats) of the points ``x`` (n, d) under the model's p_ε, by the probability-flow ODE from t_end to T.

    ``score(x, t)`` must be differentiable in x by autograd. A score with a ``model`` attribute (a
    :class:`torch.nn.Module`, as :class:`~sdebench.scores.training.TrainedScore` has) is evaluated through that model
    directly, because its own ``__call__`` runs under ``torch.no_grad``. ``generator`` draws the Hutchinson probes
    (unused for the exact divergence). ``progress`` shows a bar (stderr, only on a terminal) of how much of
    [t_end, T] the adaptive integration has covered. Raises :class:`UserError` for bad input before any work, and
    :class:`DivergedError` when the integration produces NaN/inf or scipy gives up.
    """
    x = _check_points(problem, x)
    check(divergence in DIVERGENCES, "divergence", f"unknown {divergence!r} (valid: {', '.join(DIVERGENCES)})")
    check(noise in NOISES, "noise", f"unknown {noise!r} (valid: {', '.join(NOISES)})")
    check(
        isinstance(n_probes, int) and not isinstance(n_probes, bool) and n_probes >= 1,
        "n_probes",
        f"must be an integer ≥ 1, got {n_probes!r}",
    )
    for name, value in (("rtol", rtol), ("atol", atol)):
        check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, "must be > 0")
    check(method in METHODS, "method", f"unknown {method!r} (valid: {', '.join(METHODS)})")

    n, d = x.shape
    counting = CountingScore(_differentiable(score))
    flow = problem.sde.probability_flow(counting)
    probes = _draw_probes(divergence, noise, n_probes, n, d, generator)
    backward = 0
    t_start, t_stop = float(problem.t_end), float(problem.t_start)
    # a bar in % of the time interval: an adaptive solver's NFE is not known in advance, its progress in t is
    bar = tqdm(total=100, desc="nll", unit="%", disable=None if progress else True, leave=False)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal backward
        covered = int(100 * (t - t_start) / (t_stop - t_start))
        if covered > bar.n:
            bar.update(covered - bar.n)
        # from_numpy shares scipy's buffer; a fresh leaf per call so each graph is freed after its backward passes.
        xt = torch.from_numpy(y[: n * d]).view(n, d).detach().requires_grad_(True)
        with torch.enable_grad():
            drift = flow.drift(xt, float(t))
            check(
                drift.requires_grad,
                "score",
                "returns values without gradients (evaluated under no_grad?); the divergence needs autograd",
            )
            div = _divergence(drift, xt, probes)
        backward += d if probes is None else probes.shape[0]
        out = np.concatenate([drift.detach().to(torch.float64).numpy().ravel(), div.detach().numpy()])
        if not np.isfinite(out).all():
            raise _NonFinite(f"the drift or its divergence is not finite at t = {t:.6g}")
        return out

    y0 = np.concatenate([x.numpy().ravel(), np.zeros(n)])
    start = time.perf_counter()
    try:
        sol = solve_ivp(rhs, (t_start, t_stop), y0, method=method, rtol=rtol, atol=atol)
    except _NonFinite as exc:
        raise DivergedError(str(exc)) from None
    finally:
        bar.close()
    wall = time.perf_counter() - start
    if sol.status != 0:
        raise DivergedError(f"solve_ivp ({method}) failed: {sol.message}")

    y1 = torch.from_numpy(sol.y[:, -1].copy())
    x_end = y1[: n * d].view(n, d)
    delta = y1[n * d :]
    log_prior = problem.sde.prior_log_prob(x_end)
    nll = -(log_prior + delta)
    # SE of the mean over points; it says nothing about the ODE's own error (checked against exact_nll in tests).
    se = float(nll.std() / math.sqrt(n)) if n > 1 else float("nan")
    per_dim = d * math.log(2.0)
    return LikelihoodResult(
        nll=nll,
        log_prior=log_prior,
        delta_logp=delta,
        x_end=x_end,
        mean=float(nll.mean()),
        se=se,
        bpd=float(nll.mean()) / per_dim,
        bpd_se=se / per_dim,
        nfe=counting.calls,
        backward=backward,
        wall_s=wall,
        t_start=t_start,
        divergence=divergence,
        noise=noise if divergence == "hutchinson" else None,
        n_probes=n_probes if divergence == "hutchinson" else None,
        options={"rtol": rtol, "atol": atol, "method": method, "score": getattr(score, "name", "score")},
    )


class _NonFinite(Exception):
    """Raised inside scipy's callback to stop at once (scipy would otherwise shrink the step until it underflows)."""


class _ModelScore:
    """A score evaluated through its network directly, with gradients (TrainedScore's ``__call__`` disables them)."""

    def __init__(self, model: torch.nn.Module, name: str) -> None:
        self.model = model
        self.name = name

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        return self.model(x, t)


def _differentiable(score: Callable[[Tensor, Any], Tensor]) -> Callable[[Tensor, Any], Tensor]:
    """The score itself, or a call straight into its ``model`` when it has one (to get around ``no_grad``)."""
    check(callable(score), "score", "must be a callable score(x, t)")
    model = getattr(score, "model", None)
    if isinstance(model, torch.nn.Module):
        return _ModelScore(model, getattr(score, "name", "score"))
    return score


def _check_points(problem: Problem, x: Any) -> Tensor:
    """Points as a float64 (n, d) tensor matching the problem, or a :class:`UserError`."""
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise UserError("x", "must be an array of shape (n, d)") from None
    check(t.dim() == 2, "x", f"must have shape (n, d), got {tuple(t.shape)}")
    check(t.shape[1] == problem.dim, "x", f"has dimension {t.shape[1]}, the problem has {problem.dim}")
    check(t.shape[0] >= 1, "x", "needs at least one point")
    check(not t.is_complex(), "x", "must be real")
    t = t.to(torch.float64)
    check(bool(torch.isfinite(t).all()), "x", "contains NaN or inf")
    # A private contiguous copy: the ODE state is built from it and the caller's array must stay untouched.
    return t.detach().clone().contiguous()


def _draw_probes(
    divergence: str, noise: str, n_probes: int, n: int, d: int, generator: torch.Generator | None
) -> Tensor | None:
    """Hutchinson probes (n_probes, n, d) with E[v vᵀ] = I, drawn once per run; None for the exact divergence."""
    if divergence == "exact":
        return None
    if noise == "gaussian":
        return torch.randn(n_probes, n, d, generator=generator, dtype=torch.float64)
    signs = torch.randint(0, 2, (n_probes, n, d), generator=generator)
    return signs.to(torch.float64).mul_(2).sub_(1)


def _divergence(drift: Tensor, x: Tensor, probes: Tensor | None) -> Tensor:
    """Per row, tr ∂drift/∂x: exactly (d backward passes) or by Hutchinson's vᵀJv averaged over the probes.

    Each row's drift depends only on that row, so one backward pass of a sum over rows gives every row's entry.
    """
    n, d = x.shape
    div = torch.zeros(n, dtype=torch.float64)
    if probes is None:
        for i in range(d):
            (grad,) = torch.autograd.grad(drift[:, i].sum(), x, retain_graph=i < d - 1)
            div += grad[:, i]
        return div
    k = probes.shape[0]
    for j in range(k):
        (vjp,) = torch.autograd.grad(drift, x, grad_outputs=probes[j].to(drift.dtype), retain_graph=j < k - 1)
        div += (vjp.to(torch.float64) * probes[j]).sum(-1)
    return div / k
