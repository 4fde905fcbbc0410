"""The exact score of a Gaussian-mixture problem: the mixture oracle at noise scale σ(t)."""

from __future__ import annotations

import torch

from sdebench.problems import Problem

Tensor = torch.Tensor


class ExactScore:
    """∇ log p_t for p_t = law of s(t)(x_0 + σ(t) z), evaluated in closed form (see :class:`GaussianMixture`)."""

    name = "exact"

    def __init__(self, problem: Problem) -> None:
        self.problem = problem

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        sde = self.problem.sde
        return self.problem.data.score(x, sde.sigma(t), sde.s(t))
