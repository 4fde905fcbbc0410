"""Scores: the exact mixture oracle and networks trained by denoising score matching (cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdebench.problems import Problem
from sdebench.registry import Registry
from sdebench.scores.base import CountingScore, Score
from sdebench.scores.exact import ExactScore
from sdebench.scores.networks import ARCHS
from sdebench.scores.training import TrainConfig, TrainedScore, load_or_train

#: Score factories by name: ``factory(problem, **options) -> Score``.
SCORES: Registry = Registry("score")


@SCORES.register("exact")
def exact_score(problem: Problem, **_: Any) -> Score:
    """The exact score of the problem's mixture at σ(t)."""
    return ExactScore(problem)


@SCORES.register("trained")
def trained_score(
    problem: Problem,
    train_config: TrainConfig | None = None,
    cache_dir: Path | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
    **_: Any,
) -> Score:
    """A network trained by DSM on the problem (reused from the cache when already trained)."""
    return load_or_train(problem, train_config or TrainConfig(), cache_dir, checkpoint, progress)


def make_score(name: str, problem: Problem, **options: Any) -> Score:
    """Build the score called ``name`` for ``problem``."""
    return SCORES.get(name, "score")(problem, **options)


__all__ = ["ARCHS", "SCORES", "CountingScore", "ExactScore", "Score", "TrainConfig", "TrainedScore", "make_score"]
