"""The score interface: a callable ``score(x, t)`` returning a tensor of x's shape, plus NFE counting."""

from __future__ import annotations

from typing import Any, Protocol

import torch

Tensor = torch.Tensor


class Score(Protocol):
    """∇_x log p_t(x) for x of shape (n, d); t is a float or one time per row (shape (n,))."""

    name: str
    #: Optional: the precision its values are computed in (float64 when absent). A float32 network's outputs carry
    #: round-off of ~1e-7 relative, which finite differences must step over (see the scipy solvers' Jacobians).
    # precision: torch.dtype

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor: ...


class CountingScore:
    """Wraps a score and counts its evaluations: NFE is counted, never computed by formula.

    ``calls`` counts batched evaluations (the NFE of a fixed-step solver); ``rows`` counts evaluated rows, so a
    solver that evaluates only part of its batch can report NFE per sample as rows / n.
    """

    def __init__(self, score: Score) -> None:
        self.inner = score
        self.name = getattr(score, "name", "score")
        self.calls = 0
        self.rows = 0

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.inner(x, t)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


class ProgressScore(CountingScore):
    """A :class:`CountingScore` that also advances a progress bar (a ``tqdm``) by one per evaluation.

    Progress without touching a solver: every solver calls its score, so score evaluations (NFE) measure how far a
    run has got; a fixed-step solver's planned NFE is the bar's total.
    """

    def __init__(self, score: Score, bar: Any) -> None:
        super().__init__(score)
        self.bar = bar

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        out = super().__call__(x, t)
        self.bar.update()
        return out
