"""The probability-flow ODE dx/dt = f − ½ g²·s integrated by ``scipy.integrate.solve_ivp``, one solver per method.

The whole batch is integrated as ONE flattened vector of n·d unknowns (as score_sde's ``ode_sampler`` does): scipy
sees a single system, so every sample takes the same step sizes, and the error test is the RMS of the scaled local
errors over the whole batch (scipy's norm), not a per-sample bound. A step is therefore as small as the hardest
sample needs, and one sample can end with a larger error than the tolerance suggests while the batch RMS is small.
Per-sample step sizes (one solve_ivp per sample) were measured on ve-gmm2 at rtol = atol = 1e-5: mean NFE per
sample RK45 91 / RK23 177 / DOP853 112 / LSODA 103, against 104 / 197 / 173 / 183 for the batch, but ~11–30 ms of
scipy overhead per sample (minutes for n = 20 000 instead of seconds), so they are not offered here; the saving
needs a batched integrator with per-sample steps written in torch.

Score evaluations are counted, never inferred: every call of the drift (scipy's own calls and the calls made to
build Jacobians for the implicit methods) goes through the counting score.

Implicit methods (Radau, BDF, LSODA in its stiff mode) need a Jacobian of the n·d system. A dense finite-difference
Jacobian would cost n·d evaluations; but each sample's drift depends only on that sample, so the Jacobian is block
diagonal with d×d blocks. By default (``jacobian="block-fd"``) the solver builds it with d evaluations: perturb
coordinate j of every sample at once, and read sample i's column j from sample i's rows. The base value f(y) is
taken from a short cache of the latest drift evaluations (scipy has nearly always just evaluated f at that point),
and costs one more evaluation when it is not there. ``jacobian="scipy"`` leaves it to scipy instead: Radau and BDF
get the block-diagonal ``jac_sparsity`` pattern (scipy groups columns into d groups and may spend up to d more
evaluations refining its difference steps; BDF also spends one on f(y)), LSODA gets the band ``lband = uband = d − 1``
(its Fortran banded difference scheme costs 2d − 1 evaluations).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np
import scipy.sparse
import torch

from sdebench.errors import DivergedError
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import Param, Solver, register
from sdebench.solvers.brownian import Brownian

Tensor = torch.Tensor

RTOL = Param("rtol", float, 1e-5, "relative tolerance of scipy's local error test", lambda v: v > 0, "must be > 0")
ATOL = Param("atol", float, 1e-5, "absolute tolerance of scipy's local error test", lambda v: v > 0, "must be > 0")
MAX_NFE = Param(
    "max_nfe",
    int,
    200_000,
    "give up (a diverged result) after this many score evaluations",
    lambda v: v > 0,
    "must be > 0",
)
JACOBIAN = Param(
    "jacobian",
    str,
    "block-fd",
    "how the implicit method gets its Jacobian: block-fd (d evaluations, block diagonal) or scipy's own differences",
    choices=("block-fd", "scipy"),
)


def _fd_rel_step(score: Score) -> float:
    """Relative size of a forward-difference step: sqrt(ε) of the precision the score is computed in balances
    truncation and round-off. With float64's 1.5e-8 on a float32 network, the differences were round-off noise:
    Radau's Newton iterations kept failing and it spent 520 NFE at rtol 1e-2 (93 with the exact score)."""
    return math.sqrt(float(torch.finfo(getattr(score, "precision", torch.float64)).eps))


#: Distinct times whose first and last drift evaluations are kept for the Jacobian's base value f(t, y). The
#: implicit methods ask for J(t, y) at a point they evaluated a few calls earlier: BDF and LSODA at the predicted
#: state, their first Newton evaluation at the new time; Radau at the start of the step, the last evaluation there
#: (its Newton evaluations since then sit at the 3 stage times of each tried step size).
_CACHE_TIMES = 4


class _GiveUp(Exception):
    """Raised inside scipy's callback to stop the integration; turned into DivergedError by the solver."""


class _Drift:
    """The probability-flow drift as scipy wants it (flat float64 numpy in and out), with counting and a cache.

    Arrays are shared with torch without copies (``torch.from_numpy`` / ``Tensor.numpy``). A non-finite drift stops
    the run at once: scipy would only shrink the step until it underflows, spending evaluations on a broken score.
    """

    def __init__(self, problem: Problem, score: Score, n: int, max_nfe: int, cache: bool) -> None:
        self.flow = problem.sde.probability_flow(score)
        self.fd_rel_step = _fd_rel_step(score)
        self.std = problem.sde.std
        self.n, self.d = n, problem.dim
        self.max_nfe = max_nfe
        self.calls = 0  # every evaluation made here, including those for Jacobians
        self.last_t = problem.t_start  # where the latest evaluation was (where a failed integration stopped)
        self.jac_calls = 0  # calls of the block Jacobian
        self.jac_evals = 0  # evaluations made by the block Jacobian (d per call, plus cache misses)
        self.jac_base_evals = 0  # the cache misses among them
        # time → [first (y, f), last (y, f)], most recent time last; None when no Jacobian is built here.
        self._cache: OrderedDict[float, list[tuple[np.ndarray, np.ndarray]]] | None = OrderedDict() if cache else None
        self._pattern: tuple[np.ndarray, np.ndarray] | None = None

    def _view(self, y: np.ndarray) -> Tensor:
        # scipy's arrays are writable in practice; copy only if one is not (torch warns on non-writable arrays).
        if not y.flags.writeable:
            y = y.copy()
        return torch.from_numpy(y).view(self.n, self.d)

    def evaluate(self, t: float, x: Tensor) -> Tensor:
        """Drift at (x, t) for x of shape (n, d), counted and checked."""
        if self.calls >= self.max_nfe:
            raise _GiveUp(f"gave up after max_nfe = {self.max_nfe} score evaluations")
        self.calls += 1
        self.last_t = t
        out = self.flow.drift(x, t)
        if not bool(torch.isfinite(out).all()):
            raise _GiveUp(f"the drift is NaN or inf at t = {t:.6g} after {self.calls} NFE")
        return out

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        """scipy's right-hand side: flat y → flat drift."""
        t = float(t)
        out = self.evaluate(t, self._view(y)).reshape(-1).numpy()
        if self._cache is not None:
            self._remember(t, y, out)
        return out

    def _remember(self, t: float, y: np.ndarray, f: np.ndarray) -> None:
        # Copies: scipy updates some arrays in place (BDF's Newton iterate), so a reference could change under us.
        entry = (y.copy(), f.copy())
        if t in self._cache:
            self._cache[t][1] = entry
            self._cache.move_to_end(t)
        else:
            self._cache[t] = [entry, entry]
            if len(self._cache) > _CACHE_TIMES:
                self._cache.popitem(last=False)

    def _base(self, t: float, y: np.ndarray) -> Tensor:
        """f(t, y) from the cache, or one more (counted) evaluation."""
        for y_c, f_c in (self._cache or {}).get(t, ()):
            if np.array_equal(y_c, y):
                return torch.from_numpy(f_c).view(self.n, self.d)
        self.jac_base_evals += 1
        self.jac_evals += 1
        return self.evaluate(t, self._view(y))

    def blocks(self, t: float, y: np.ndarray) -> Tensor:
        """The (n, d, d) diagonal blocks ∂f_i/∂x_i by forward differences: d evaluations (+1 on a cache miss)."""
        t = float(t)
        self.jac_calls += 1
        x = self._view(y)
        base = self._base(t, y)
        # Step relative to |x|, but never below the kernel std s(t)σ(t), the scale of p_t's features (x may sit at 0).
        step = self.fd_rel_step * torch.clamp(x.abs(), min=float(self.std(t)))
        blocks = torch.empty(self.n, self.d, self.d, dtype=torch.float64)
        for j in range(self.d):
            shifted = x.clone()
            shifted[:, j] += step[:, j]
            actual = shifted[:, j] - x[:, j]  # the step that is exactly representable
            self.jac_evals += 1
            blocks[:, :, j] = (self.evaluate(t, shifted) - base) / actual[:, None]
        return blocks

    def sparse_jacobian(self, t: float, y: np.ndarray) -> scipy.sparse.csc_matrix:
        """The block-diagonal Jacobian as a CSC matrix (for Radau and BDF)."""
        blocks = self.blocks(t, y)
        if self._pattern is None:
            self._pattern = block_diagonal_pattern(self.n, self.d)
        indices, indptr = self._pattern
        # CSC column i·d + j holds rows i·d + a, a = 0..d−1, with values blocks[i, a, j].
        data = blocks.transpose(1, 2).reshape(-1).numpy()
        size = self.n * self.d
        return scipy.sparse.csc_matrix((data, indices, indptr), shape=(size, size))

    def banded_jacobian(self, t: float, y: np.ndarray) -> np.ndarray:
        """The block-diagonal Jacobian in LSODA's packed band format (lband = uband = d − 1)."""
        return pack_banded(self.blocks(t, y).numpy())


def block_diagonal_pattern(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """CSC ``indices`` and ``indptr`` of a block-diagonal (n·d)×(n·d) matrix with dense d×d blocks."""
    rows_of_block = np.arange(n, dtype=np.int64)[:, None, None] * d + np.arange(d, dtype=np.int64)[None, None, :]
    indices = np.broadcast_to(rows_of_block, (n, d, d)).reshape(-1)
    indptr = np.arange(0, n * d * d + 1, d, dtype=np.int64)
    return np.ascontiguousarray(indices), indptr


def pack_banded(blocks: np.ndarray) -> np.ndarray:
    """Blocks (n, d, d) of a block-diagonal matrix J → packed band ``P[u + r − c, c] = J[r, c]`` with u = l = d − 1."""
    n, d, _ = blocks.shape
    packed = np.zeros((2 * d - 1, n * d))
    columns = np.arange(n) * d
    for a in range(d):  # row within the block
        for j in range(d):  # column within the block
            packed[d - 1 + a - j, columns + j] = blocks[:, a, j]
    return packed


def block_sparsity(n: int, d: int) -> scipy.sparse.csc_matrix:
    """The 0/1 block-diagonal pattern handed to scipy as ``jac_sparsity``."""
    indices, indptr = block_diagonal_pattern(n, d)
    size = n * d
    return scipy.sparse.csc_matrix((np.ones(indices.size), indices, indptr), shape=(size, size))


class ScipyODE(Solver):
    """The probability-flow ODE from t = 1 to t_end by ``scipy.integrate.solve_ivp`` (one method per subclass).

    The batch is one flattened vector of n·d unknowns, so the whole batch shares one step size and scipy's error
    test bounds the batch RMS of the scaled local errors, not each sample's (see the module docstring).
    """

    kind = "ode"
    adaptive = True
    method: ClassVar[str]
    implicit: ClassVar[bool] = False
    params: ClassVar[tuple[Param, ...]] = (RTOL, ATOL, MAX_NFE)

    def _solver_options(self, drift: _Drift) -> dict[str, Any]:
        """Extra keyword arguments of solve_ivp for this method (Jacobians for the implicit ones)."""
        return {}

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        opts = self.options
        cache = self.implicit and opts.get("jacobian") == "block-fd"
        drift = _Drift(problem, score, n, opts["max_nfe"], cache)
        y0 = self.initial_state(problem, n, generator).reshape(-1).numpy()
        try:
            from scipy.integrate import solve_ivp  # 0.4 s of import, paid by the runs that integrate

            sol = solve_ivp(
                drift,
                (problem.t_start, problem.t_end),
                y0,
                method=self.method,
                t_eval=[problem.t_end],  # keep only the end point (storing every step would hold n·d per step)
                rtol=opts["rtol"],
                atol=opts["atol"],
                **self._solver_options(drift),
            )
        except _GiveUp as exc:
            raise DivergedError(f"solver {self.name!r} diverged: {exc}") from None
        if sol.status < 0:
            raise DivergedError(
                f"solver {self.name!r} diverged: scipy {self.method} stopped at t = {drift.last_t:.6g} after "
                f"{drift.calls} NFE: {sol.message}"
            )
        samples = torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).view(n, problem.dim)
        info = {
            "method": self.method,
            "rtol": opts["rtol"],
            "atol": opts["atol"],
            "scipy_nfev": int(sol.nfev),
            "scipy_njev": int(sol.njev),
            "scipy_nlu": int(sol.nlu),
            "jac_calls": drift.jac_calls,
            "jac_evals": drift.jac_evals,
            "jac_base_evals": drift.jac_base_evals,
            # Evaluations scipy's nfev leaves out: those for Jacobians, except LSODA's own (its nfev has them).
            "evals_not_in_nfev": drift.calls - int(sol.nfev),
        }
        if self.implicit:
            info["jacobian"] = opts["jacobian"]
        return samples, info


class ImplicitScipyODE(ScipyODE):
    """An implicit scipy method: needs the (block-diagonal) Jacobian of the flattened system."""

    implicit = True
    params: ClassVar[tuple[Param, ...]] = (*ScipyODE.params, JACOBIAN)

    def _solver_options(self, drift: _Drift) -> dict[str, Any]:
        if self.options["jacobian"] == "block-fd":
            return {"jac": drift.sparse_jacobian}
        return {"jac_sparsity": block_sparsity(drift.n, drift.d)}


@register
class ScipyRK45(ScipyODE):
    """Probability-flow ODE by scipy's RK45 (Dormand–Prince 5(4)), one step size for the whole batch.

    Order 5: scipy advances with the fifth-order solution (local extrapolation); deterministic, so strong = weak.
    """

    name = "scipy-rk45"
    method = "RK45"
    strong_order = 5.0
    weak_order = 5.0


@register
class ScipyRK23(ScipyODE):
    """Probability-flow ODE by scipy's RK23 (Bogacki–Shampine 3(2)), one step size for the whole batch.

    Order 3: scipy advances with the third-order solution; deterministic, so strong = weak.
    """

    name = "scipy-rk23"
    method = "RK23"
    strong_order = 3.0
    weak_order = 3.0


@register
class ScipyDOP853(ScipyODE):
    """Probability-flow ODE by scipy's DOP853 (Dormand–Prince 8(5,3)), one step size for the whole batch.

    Order 8; deterministic, so strong = weak.
    """

    name = "scipy-dop853"
    method = "DOP853"
    strong_order = 8.0
    weak_order = 8.0


@register
class ScipyRadau(ImplicitScipyODE):
    """Probability-flow ODE by scipy's Radau (implicit Radau IIA, 3 stages), one step size for the whole batch.

    Order 5; deterministic, so strong = weak. Each Newton iteration costs 3 NFE; each Jacobian d NFE (block-fd).
    """

    name = "scipy-radau"
    method = "Radau"
    strong_order = 5.0
    weak_order = 5.0


@register
class ScipyBDF(ImplicitScipyODE):
    """Probability-flow ODE by scipy's BDF (variable-order NDF/BDF), one step size for the whole batch.

    Variable order 1–5; declared 5: it starts at order 1 and climbs to 4–5 within ~20 steps on this smooth flow
    (ve-gmm2, rtol 1e-5: 63 of 80 steps at order 4 or 5).
    Deterministic, so strong = weak. Each Jacobian costs d NFE (block-fd).
    """

    name = "scipy-bdf"
    method = "BDF"
    strong_order = 5.0
    weak_order = 5.0


@register
class ScipyLSODA(ImplicitScipyODE):
    """Probability-flow ODE by scipy's LSODA (Adams ↔ BDF with stiffness detection), one step for the whole batch.

    No order declared: LSODA switches between Adams (orders 1–12) and BDF (orders 1–5) as it sees fit, so no
    single order describes it (on ve-gmm2 it stays in Adams mode, at orders 5–7 depending on the tolerance).
    Jacobians (stiff mode only) are packed banded: d NFE each (block-fd), or 2d − 1 by LSODA's own banded
    differences (jacobian="scipy").
    """

    name = "scipy-lsoda"
    method = "LSODA"
    strong_order = None
    weak_order = None

    def _solver_options(self, drift: _Drift) -> dict[str, Any]:
        band = {"lband": drift.d - 1, "uband": drift.d - 1}
        if self.options["jacobian"] == "block-fd":
            return {"jac": drift.banded_jacobian, **band}
        return band
