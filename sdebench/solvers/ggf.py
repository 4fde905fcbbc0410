"""Adaptive SDE solver with per-sample step sizes ("Gotta Go Fast", Jolicoeur-Martineau et al. 2021)."""

from __future__ import annotations

import math

import torch

from sdebench.errors import DivergedError
from sdebench.problems import Problem
from sdebench.scores.base import Score
from sdebench.solvers.base import DENOISE, Param, Solver, register, tweedie_denoise
from sdebench.solvers.brownian import Brownian
from sdebench.solvers.noise import standard_normal_

Tensor = torch.Tensor

#: A running sample whose step falls below this (in t, on [t_end, 1]) has stalled: reported as diverged.
H_FLOOR = 1e-12


def _positive(v: float) -> bool:
    return v > 0


@register
class GottaGoFast(Solver):
    """Adaptive reverse-SDE solver with one step size per sample (Jolicoeur-Martineau et al. 2021, Algorithm 1).

    Each iteration, for every sample still running at its own time t with its own step h, and one increment ΔW:

    - Euler–Maruyama:           x' = x + k₁,  k₁ = −h·F(x, t) + g(t)·ΔW  (F = f − g²s, the reverse drift);
    - stochastic improved Euler: x'' = x + ½(k₁ + k₂),  k₂ = −h·F(x', t − h) + g(t − h)·ΔW (the same ΔW);
    - error E = ‖(x' − x'')/δ‖ / sqrt(d) (the scaled L2 norm), δ = max(atol, rtol·max(|x'|, |x'_prev|)) per
      entry, x'_prev the Euler proposal of the sample's last accepted step (the prior draw at first);
    - accept when E ≤ 1: x ← x'' (extrapolation: keep the higher-order solution), t ← t − h;
    - accepted or not, h ← min(t − t_end, safety·h·E^(−exponent)) (safety 0.9 and exponent 0.9, the paper's).

    The score is evaluated only on the running samples, with their times as an (m,) tensor; each sample stops when
    it reaches t_end. Defaults are the paper's (rtol = atol = 0.01, h_init = 0.01), except ``retry``:

    - ``retry="bridge"`` (default): a rejected step is retried on the same Brownian path — the shorter increment
      is drawn from the Brownian bridge given the rejected one, and the path's values drawn ahead are kept
      (:class:`LazyBrownianPaths`, the idea of Rackauckas & Nie 2017). The path does not depend on the decisions.
    - ``retry="fresh"``: fresh noise at every attempt, as in the paper's code. The accept test then selects noise
      draws by their size; in high dimension (images) the scaled norm averages d ≫ 1 entries and hardly depends on
      the draw, but in d = 2 it does: measured on ve-gauss1 at rtol = atol = 0.01, the variances come out 2–3×
      too large, and the bias grows as the tolerance falls. With the bridge they are within sampling error.

    Noise comes from the run's ``generator``, not from the ``brownian`` argument: a Brownian source answers one
    interval for the whole (n, d) batch, while here every sample steps over its own interval, so sharing one
    ``BrownianInterval`` would take one query per sample and step. Runs at different tolerances therefore do not
    share a path: the tolerance test measures the error of the sampled law against the exact p_ε, not a strong
    error.

    NFE: the result's ``nfe`` counts batched score calls (2 per iteration of the loop, + 1 for ``denoise``); the
    slowest sample takes part in every call, so ``nfe`` is also the largest number of evaluations any one sample
    needed (``info["nfe_per_sample_max"]``) and the sequential depth of the run (its latency with a batched
    network). ``nfe_per_sample`` (= evaluated rows / n, equal to ``info["nfe_per_sample_mean"]``) is the mean
    number of evaluations a sample needed: the compute spent, the figure to compare with a fixed-step solver's NFE.

    Declared orders: strong 1.0 and weak 1.0, those of the lower member of the pair (Euler–Maruyama, strong order
    1.0 rather than 0.5 because the VE noise is additive); the accepted improved-Euler solution has strong order 1.0
    as well for additive noise (a scheme without iterated integrals of W cannot do better). Adaptive: checked by
    error against tolerance, not by a slope.
    """

    name = "ggf"
    kind = "sde"
    adaptive = True
    # Its error is of the law (no shared path between tolerances), and below ~0.05 the runs grow long.
    tolerance_scan = (0.3, 0.15, 0.075)
    shares_path = False  # each sample has its own times: one batched Brownian path cannot serve them
    strong_order = 1.0
    weak_order = 1.0
    params = (
        Param("rtol", float, 1e-2, "relative tolerance (ε_rel)", _positive, "must be > 0"),
        Param("atol", float, 1e-2, "absolute tolerance (ε_abs)", _positive, "must be > 0"),
        Param("h_init", float, 1e-2, "first step in t", _positive, "must be > 0"),
        Param("safety", float, 0.9, "safety factor θ of the step update", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        Param("exponent", float, 0.9, "exponent r of the step update h·E^(−r)", _positive, "must be > 0"),
        DENOISE,
        Param(
            "retry",
            str,
            "bridge",
            "noise of a retried step: the same path (Brownian bridge), or fresh noise as in the paper's code",
            choices=("bridge", "fresh"),
        ),
    )

    def supports(self, problem: Problem) -> str | None:
        """Any SDE with additive noise (g depends on t only): the error estimate assumes it."""
        if problem.sde.noise_type != "additive":
            return "the EM / improved-Euler pair shares one noise draw, which assumes additive noise"
        return None

    def _solve(
        self, problem: Problem, score: Score, n: int, generator: torch.Generator, brownian: Brownian | None
    ) -> tuple[Tensor, dict]:
        opts = self.options
        sde, t_end = problem.sde, problem.t_end
        reverse = sde.reverse(score)
        x = self.initial_state(problem, n, generator)
        out = torch.empty_like(x)
        index = torch.arange(n)  # original rows of the running samples
        t = torch.full((n,), problem.t_start, dtype=torch.float64)
        h = torch.full((n,), min(opts["h_init"], problem.t_start - t_end), dtype=torch.float64)
        x_prev = x.clone()
        paths = LazyBrownianPaths(n, problem.dim, generator, keep=opts["retry"] == "bridge")
        evals = torch.zeros(n, dtype=torch.int64)
        accepted = torch.zeros(n, dtype=torch.int64)
        iterations = 0
        while index.numel() > 0:
            iterations += 1
            # Land on t_end when a step would leave less than H_FLOOR to go (no stall on a round-off remainder).
            last = h >= (t - t_end) - H_FLOOR
            h = torch.where(last, t - t_end, h)
            t_next = torch.where(last, torch.full_like(t, t_end), t - h)
            dw = paths.increment(h)
            k1 = (reverse.drift(x, t) * -h[:, None]).add_(dw * sde.diffusion(t)[:, None])
            x_em = x + k1
            k2 = (reverse.drift(x_em, t_next) * -h[:, None]).add_(dw * sde.diffusion(t_next)[:, None])
            x_heun = x + 0.5 * (k1 + k2)
            evals[index] += 2
            # Scaled L2 norm of the EM − improved-Euler difference, per sample.
            scale = torch.maximum(x_em.abs(), x_prev.abs()).mul_(opts["rtol"]).clamp_(min=opts["atol"])
            err = ((x_em - x_heun) / scale).square_().mean(1).sqrt_()
            if not bool(torch.isfinite(err).all()):  # a NaN error would reject forever: stop here
                raise DivergedError(
                    f"solver {self.name!r} diverged: NaN or inf in a step after {iterations} iterations"
                )
            ok = err <= 1.0
            accepted[index] += ok
            paths.advance(ok, h, dw)
            x = torch.where(ok[:, None], x_heun, x)
            x_prev = torch.where(ok[:, None], x_em, x_prev)
            t = torch.where(ok, t_next, t)
            factor = opts["safety"] * err.clamp(min=1e-10).pow(-opts["exponent"])
            h = torch.minimum(t - t_end, h * factor)
            done = ok & last
            if bool(done.any()):
                out[index[done]] = x[done]
                keep = ~done
                index, x, x_prev, t, h = index[keep], x[keep], x_prev[keep], t[keep], h[keep]
                paths.select(keep)
            if index.numel() > 0 and bool((h < H_FLOOR).any()):
                raise DivergedError(f"solver {self.name!r} diverged: step size fell below {H_FLOOR:g} before t_end")
        if opts["denoise"]:
            out = tweedie_denoise(problem, score, out)
            evals += 1
        per_sample = evals.to(torch.float64)
        attempts = (int(evals.sum()) - int(opts["denoise"]) * n) / 2  # two evaluations per attempted step
        info = {
            "rtol": opts["rtol"],
            "atol": opts["atol"],
            "iterations": iterations,
            "nfe_per_sample_mean": float(per_sample.mean()),
            "nfe_per_sample_max": int(evals.max()),
            "nfe_per_sample_min": int(evals.min()),
            "accepted_steps_mean": float(accepted.to(torch.float64).mean()),
            "rejected_fraction": 1.0 - int(accepted.sum()) / attempts,
            "denoise": opts["denoise"],
        }
        return out, info


class LazyBrownianPaths:
    """One Brownian path per sample, drawn from a generator only where it is queried (for adaptive steps).

    Each row holds the knots already drawn ahead of its current time: offsets τ (sorted, +inf padding) and the
    path's values there, relative to the current point. A query for the increment over [0, h] draws W(h) given its
    neighbouring knots — a Brownian bridge between two knots, or a free increment past the last one — and keeps it
    as a knot, so a rejected step's retry over a shorter h sees the same path (the idea of Rackauckas & Nie 2017's
    rejection sampling with memory). ``advance`` moves accepted rows to h. With ``keep=False`` no knot is kept:
    every query is a fresh N(0, h) draw (the paper's code).

    Invariant: the last slot of every row is padding, so a query always finds a right neighbour slot.
    """

    def __init__(self, n: int, dim: int, generator: torch.Generator, keep: bool = True) -> None:
        self.generator = generator
        self.keep = keep
        self.dim = dim
        self.tau = torch.full((n, 2), math.inf, dtype=torch.float64)
        self.w = torch.zeros(n, 2, dim, dtype=torch.float64)

    def increment(self, h: Tensor) -> Tensor:
        """W(h) − W(0) for each row, h of shape (m,); the draw is kept as a knot."""
        z = standard_normal_(torch.empty(h.shape[0], self.dim, dtype=torch.float64), self.generator)
        if not self.keep:
            return z.mul_(h.sqrt()[:, None])
        pos = (self.tau < h[:, None]).sum(1)  # knots strictly before h
        rows = torch.arange(h.shape[0])
        has_left = pos > 0
        left = (pos - 1).clamp(min=0)
        left_t = torch.where(has_left, self.tau[rows, left], 0.0)
        left_w = self.w[rows, left] * has_left[:, None]
        right_t, right_w = self.tau[rows, pos], self.w[rows, pos]
        bounded = torch.isfinite(right_t)
        # Between two knots: the bridge's mean and variance; past the last one: a free increment.
        span = torch.where(bounded, right_t - left_t, 1.0)
        frac = torch.where(bounded, (h - left_t) / span, 0.0)
        var = torch.where(bounded, (h - left_t) * (right_t - h) / span, h - left_t).clamp_(min=0.0)
        mean = torch.where(bounded[:, None], left_w + frac[:, None] * (right_w - left_w), left_w)
        dw = mean.add_(z.mul_(var.sqrt()[:, None]))
        self._insert(rows, pos, h, dw)
        return dw

    def _insert(self, rows: Tensor, pos: Tensor, h: Tensor, dw: Tensor) -> None:
        cap = self.tau.shape[1]
        if int(torch.isfinite(self.tau[:, -2]).sum()) > 0:  # a row would fill its last slot: grow
            self.tau = torch.cat([self.tau, torch.full((self.tau.shape[0], 2), math.inf, dtype=torch.float64)], 1)
            self.w = torch.cat([self.w, torch.zeros(self.w.shape[0], 2, self.dim, dtype=torch.float64)], 1)
            cap += 2
        # Old slot j moves to j + 1 from pos on; the last (padding) slot falls off; h goes into slot pos.
        slots = torch.arange(cap - 1)[None, :]
        target = slots + (slots >= pos[:, None])
        tau = torch.empty_like(self.tau).scatter_(1, target, self.tau[:, :-1])
        w = torch.empty_like(self.w).scatter_(1, target[..., None].expand(-1, -1, self.dim), self.w[:, :-1])
        tau[rows, pos] = h
        w[rows, pos] = dw
        self.tau, self.w = tau, w

    def advance(self, ok: Tensor, h: Tensor, dw: Tensor) -> None:
        """Rows where ``ok``: move the origin to h (drop the knots at or before it, re-base the rest)."""
        if not self.keep:
            return
        cap = self.tau.shape[1]
        drop = (self.tau <= h[:, None]).sum(1) * ok
        # Slot j takes old slot j + drop; past the end it takes the last slot, which is padding.
        slots = (torch.arange(cap)[None, :] + drop[:, None]).clamp_(max=cap - 1)
        tau = self.tau.gather(1, slots)
        w = self.w.gather(1, slots[..., None].expand(-1, -1, self.dim))
        self.tau = tau.sub_(h[:, None] * ok[:, None])
        self.w = w.sub_(dw[:, None, :] * ok[:, None, None])
        # Shrink to the rows' largest need (knots + 1 padding slot; at least 2).
        need = max(2, int(torch.isfinite(self.tau).sum(1).max()) + 1) if self.tau.shape[0] else 2
        if need < cap:
            self.tau, self.w = self.tau[:, :need].contiguous(), self.w[:, :need].contiguous()

    def select(self, rows: Tensor) -> None:
        """Keep only the given rows (a boolean mask), for samples that are still running."""
        self.tau, self.w = self.tau[rows], self.w[rows]
