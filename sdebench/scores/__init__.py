"""Scores: the exact mixture oracle and networks trained by denoising score matching (cached)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from sdebench.errors import check
from sdebench.problems import Problem
from sdebench.registry import Registry
from sdebench.scores.base import CountingScore, Score
from sdebench.scores.exact import ExactScore
from sdebench.scores.networks import ARCHS
from sdebench.scores.training import TrainConfig, TrainedScore, load_or_train

Tensor = torch.Tensor

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


class PerturbedScore:
    """The exact score with a controlled error, for robustness studies: s̃ = scale·s + shift·u / std(t).

    ``scale`` multiplies the score (1: none), the error of a network that is right in direction but not in size.
    ``shift`` adds a fixed error to the predicted noise ε̂ = −std(t)·s, in units of the noise's own std, along
    u = (1, …, 1)/sqrt(d): the same error at every noise level, as a biased network makes it.
    """

    name = "perturbed"

    def __init__(self, problem: Problem, scale: float = 1.0, shift: float = 0.0) -> None:
        self.exact = ExactScore(problem)
        self.sde = problem.sde
        self.scale = float(scale)
        self.shift = float(shift)

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        out = self.exact(x, t) * self.scale
        if self.shift:
            std = torch.as_tensor(self.sde.std(t), dtype=x.dtype).reshape(-1, 1)
            out = out - self.shift / math.sqrt(x.shape[1]) / std  # ε̂ = −std·s̃ grows by shift·u
        return out


@SCORES.register("perturbed")
def perturbed_score(problem: Problem, scale: float = 1.0, shift: float = 0.0, **_: Any) -> Score:
    """The exact score with a controlled error: scale·s + a shift of the predicted noise (robustness studies)."""
    check(math.isfinite(scale), "scale", f"must be a finite number, got {scale!r}")
    check(math.isfinite(shift), "shift", f"must be a finite number, got {shift!r}")
    return PerturbedScore(problem, scale, shift)


#: The numeric parameters a score takes in a sweep's score table or ``--score-param``, with their defaults
#: (``trained`` takes the training fields instead). A plugin score declares its own by setting
#: ``factory.params = {...}``.
perturbed_score.params = {"scale": 1.0, "shift": 0.0}  # type: ignore[attr-defined]


def score_params(name: str) -> dict[str, float]:
    """The declared numeric parameters of the score ``name`` with their defaults (none for exact)."""
    return dict(getattr(SCORES.get(name, "score"), "params", {}))


def make_score(name: str, problem: Problem, **options: Any) -> Score:
    """Build the score called ``name`` for ``problem``."""
    return SCORES.get(name, "score")(problem, **options)


__all__ = [
    "ARCHS",
    "SCORES",
    "CountingScore",
    "ExactScore",
    "PerturbedScore",
    "Score",
    "TrainConfig",
    "TrainedScore",
    "make_score",
    "score_params",
]
