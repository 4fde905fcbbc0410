"""The error of a score against the exact score, as a function of t (for judging trained scores).

Not a sample metric: it takes a score and a problem, not samples. It answers "where in t is the network wrong?",
which a sample metric cannot: a sampler's final error mixes the errors of every noise level it passed through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.scores.base import Score

Tensor = torch.Tensor


def score_error_profile(
    score: Score,
    problem: Problem,
    times: Iterable[float],
    n: int = 4096,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    """Kernel-variance-weighted mean squared error of ``score`` against the exact score of p_t, at each t in ``times``.

    With std = s(t)σ(t), the kernel's std (σ(t) for VE), for each t, n fresh exact draws x ~ p_t give (rows of the
    returned list, in the order of ``times``):
    ``error`` = E std² ‖s(x, t) − ∇log p_t(x)‖² (the weighting of the default DSM loss, λ = std², which keeps every
    noise level of order one) with ``error_se`` its Monte-Carlo standard error;
    ``exact_norm`` = E std² ‖∇log p_t(x)‖² on the same draws (d at large σ, smaller near the data);
    ``relative_error`` = error / exact_norm, the share of the score's own size that is wrong;
    and ``t``, ``sigma`` (σ(t)), ``std``. Evaluated in float64 (a network casts to its own precision inside). The
    draw for each t uses ``generator`` in sequence, so the whole profile is fixed by its seed.
    """
    t_list = [float(t) for t in times]
    check(len(t_list) > 0, "times", "must not be empty")
    t_max = problem.t_start
    inside = all(math.isfinite(t) and 0.0 <= t <= t_max for t in t_list)
    check(inside, "times", f"must lie in [0, {t_max:g}], got {t_list}")
    check(isinstance(n, int) and n >= 2, "n", f"must be an integer ≥ 2, got {n!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    rows = []
    for t in t_list:
        sigma, scale = float(problem.sde.sigma(t)), float(problem.sde.s(t))
        std = scale * sigma
        x = problem.marginal_at(t).sample(n, generator=gen)[0]
        exact = problem.data.score(x, sigma, scale)
        estimate = torch.as_tensor(score(x, t)).to(torch.float64)
        check(estimate.shape == x.shape, "score", f"returned shape {tuple(estimate.shape)}, expected {tuple(x.shape)}")
        err = std**2 * (estimate - exact).pow(2).sum(1)
        norm = float(std**2 * exact.pow(2).sum(1).mean())
        mean = float(err.mean())
        rows.append(
            {
                "t": t,
                "sigma": sigma,
                "std": std,
                "error": mean,
                "error_se": float(err.std() / math.sqrt(n)),
                "exact_norm": norm,
                "relative_error": mean / norm if norm > 0 else math.inf,
            }
        )
    return rows
