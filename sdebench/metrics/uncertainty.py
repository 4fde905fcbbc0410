"""Uncertainty: results over seeds as mean ± 95% CI, and whether a result can be told apart from exact sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.special import stdtrit  # the t quantile; scipy.stats would cost 0.6 s of import

from sdebench.errors import check
from sdebench.metrics.base import Output, Reference, compute_metrics


@dataclass(frozen=True)
class Estimate:
    """Mean over repeats with the half-width of its 95% confidence interval (Student t, k − 1 degrees of freedom)."""

    mean: float
    half_width: float
    count: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.half_width:.2g}"


def summarize(runs: list[dict[str, float]], confidence: float = 0.95) -> dict[str, Estimate]:
    """Every key of the per-seed metric dicts as mean ± CI half-width (half-width inf for a single run)."""
    check(len(runs) >= 1, "runs", "need at least one run")
    out: dict[str, Estimate] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if key in run and math.isfinite(run[key])]
        k = len(values)
        if k == 0:
            continue
        mean = sum(values) / k
        if k < 2:
            out[key] = Estimate(mean, math.inf, k)
            continue
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
        out[key] = Estimate(mean, float(stdtrit(k - 1, 0.5 + confidence / 2)) * sd / math.sqrt(k), k)
    return out


def floor_estimates(names: list[str], reference: Reference, n: int, draws: int = 5, seed: int = 12345) -> dict:
    """The noise floor of each metric as an :class:`Estimate` over ``draws`` exact n-samples."""
    gen = torch.Generator().manual_seed(seed)
    return summarize([compute_metrics(names, reference.draw(n, gen), reference) for _ in range(draws)])


def truncation_estimates(
    names: list[str], source: Reference, reference: Reference, n: int, draws: int = 5, seed: int = 12345
) -> dict:
    """Each metric for ``draws`` exact n-samples of ``source`` judged against ``reference``, as an :class:`Estimate`.

    With ``source`` = p_data and ``reference`` = p_ε this is the ε-truncation term of the error budget: what
    stopping at ε (not 0) costs, on the same scale as a run's metrics (it includes the same sampling noise as the
    floor, drawn with the floor's seed).
    """
    gen = torch.Generator().manual_seed(seed)
    return summarize([compute_metrics(names, source.draw(n, gen), reference) for _ in range(draws)])


def indistinguishable_from_exact(result: Estimate, floor: Estimate) -> bool:
    """True when a lower-is-better metric's mean over seeds is not significantly above its noise floor.

    Both are means with 95% CI half-widths; the result is indistinguishable when the difference of the means is
    within the half-width of the difference, sqrt(h_result² + h_floor²).
    """
    return result.mean - floor.mean <= math.hypot(result.half_width, floor.half_width)


def within_floor(output: Output, result: Estimate, floor: Estimate) -> bool:
    """Whether ``result`` cannot be told apart from exact sampling's ``floor``, read as ``output`` declares.

    Lower-is-better: one-sided, :func:`indistinguishable_from_exact`; higher-is-better: its mirror (not
    significantly below the floor); signed: two-sided (a value far below the exact one is as wrong as one far
    above), |mean − floor mean| within the half-width of the difference. An output that is not judged (no
    direction, or no meaningful floor) never makes a result distinguishable: True.
    """
    if not output.floor or output.direction == "info":
        return True
    width = math.hypot(result.half_width, floor.half_width)
    if output.direction == "signed":
        return abs(result.mean - floor.mean) <= width
    if output.direction == "higher":
        return floor.mean - result.mean <= width
    return indistinguishable_from_exact(result, floor)
