"""The error budget of one solver configuration: the runs that isolate each source of error, and their terms.

See :mod:`sdebench.metrics.budget` for the terms. This driver runs the solver three times per seed: with the
exact score from exact draws of p_T, with the exact score from the prior, and with the given score from the prior
(skipped when that score is the exact one), and estimates the floor and the ε-truncation from exact draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sdebench.errors import check
from sdebench.metrics import compute_metrics, data_reference, exact_reference
from sdebench.metrics.budget import budget_terms, dominant
from sdebench.metrics.uncertainty import Estimate, floor_estimates, summarize, truncation_estimates
from sdebench.problems import Problem
from sdebench.scores import ExactScore
from sdebench.scores.base import Score
from sdebench.solvers import make_solver


@dataclass
class MetricBudget:
    """One metric's budget: its floor, each rung's estimate over seeds, and the four terms."""

    metric: str
    floor: Estimate | None
    rungs: dict[str, Estimate | None]
    terms: dict[str, Estimate | None]

    @property
    def dominant(self) -> str:
        """The source that dominates the sampler's own error."""
        return dominant(self.terms)


def error_budget(
    problem: Problem,
    solver: str,
    options: dict[str, Any],
    score: Score,
    n: int,
    seeds: list[int],
    metrics: list[str],
) -> dict[str, MetricBudget]:
    """The budget of every metric in ``metrics`` (their output keys), over ``seeds`` (at least 2 for a CI).

    Each seed's generator drives all three runs of that seed alike, so the rungs differ only in what they isolate.
    """
    check(len(seeds) >= 2, "seeds", "an error budget needs at least 2 seeds (3 or more for a useful CI)")
    options = {k: v for k, v in options.items() if k != "start"}
    exact = ExactScore(problem)
    rungs = {"exact score, exact start": (exact, "exact"), "exact score, prior": (exact, "prior")}
    if getattr(score, "name", "") != "exact":
        rungs["score, prior"] = (score, "prior")
    values: dict[str, list[dict[str, float]]] = {name: [] for name in rungs}
    reference = exact_reference(problem)
    for name, (rung_score, start) in rungs.items():
        built = make_solver(solver, **options, start=start)
        for seed in seeds:
            samples = built.solve(problem, rung_score, n, torch.Generator().manual_seed(seed)).samples
            values[name].append(compute_metrics(metrics, samples, reference))
    estimates = {name: summarize(v) for name, v in values.items()}
    floors = floor_estimates(metrics, reference, n, draws=max(5, len(seeds)))
    truncation = truncation_estimates(metrics, data_reference(problem), reference, n, draws=max(5, len(seeds)))
    out = {}
    for key in estimates["exact score, exact start"]:
        rung = {name: est.get(key) for name, est in estimates.items()}
        terms = budget_terms(
            floors.get(key),
            rung["exact score, exact start"],
            rung["exact score, prior"],
            rung.get("score, prior"),
            truncation.get(key),
        )
        out[key] = MetricBudget(key, floors.get(key), rung, terms)
    return out
