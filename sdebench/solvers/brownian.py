"""Brownian increments for the reverse-time SDE solvers.

A Brownian source is a callable ``brownian(t_from, t_to) -> ΔW`` for a reverse-time step from t_from down to
t_to < t_from: an (n, d) tensor with variance t_from − t_to per entry. Two sources:

- :class:`GeneratorBrownian` (the default): fresh Gaussian draws from the run's generator; cheap, but each call
  must be a new, non-overlapping step.
- :class:`IntervalBrownian`: one fixed path, ``torchsde.BrownianInterval`` in s = −t with a seed, queried on any
  intervals. Solvers with different grids given the same seed run on the same path — which is how strong errors
  are measured and how the hand-written EM and torchsde's integrators are compared.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torchsde

from sdebench.solvers.noise import standard_normal_

Tensor = torch.Tensor


class Brownian(Protocol):
    """W̄(t_to) − W̄(t_from) of a reverse-time Brownian motion, for t_from > t_to."""

    def __call__(self, t_from: float, t_to: float) -> Tensor: ...


class GeneratorBrownian:
    """Independent increments sqrt(t_from − t_to)·z drawn from a generator.

    The returned tensor is a buffer that the next call overwrites: use it before asking for the next increment.
    """

    def __init__(self, n: int, dim: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> None:
        self.generator = generator
        self._buffer = torch.empty(n, dim, dtype=dtype)

    def __call__(self, t_from: float, t_to: float) -> Tensor:
        return standard_normal_(self._buffer, self.generator, math.sqrt(t_from - t_to))


class IntervalBrownian:
    """A fixed Brownian path on [t_end, 1] (torchsde.BrownianInterval over s = −t), seeded by ``entropy``."""

    def __init__(self, n: int, dim: int, t_end: float, entropy: int, dtype: torch.dtype = torch.float64) -> None:
        # halfway_tree: a dyadic tree refined to `tol`, so that the path is the same whatever intervals are
        # queried. Without it the path depends on the query pattern, and a coarse and a fine grid would see
        # different Brownian motions (measured: W(0.5) differed by O(1) between 4 and 4096 steps).
        self.interval = torchsde.BrownianInterval(
            t0=-1.0,
            t1=-t_end,
            size=(n, dim),
            dtype=dtype,
            entropy=entropy,
            halfway_tree=True,
            tol=1e-7,
            levy_area_approximation="space-time",
        )

    def __call__(self, t_from: float, t_to: float) -> Tensor:
        return self.interval(-t_from, -t_to)


class NestedBrownian:
    """A Brownian path built from increments on a fine uniform grid in t, drawn in order from a seeded generator.

    Any grid whose nodes lie on the fine grid (uniform-t with a step count dividing ``fine_steps``) sees the same
    path: a coarse increment is the sum of the fine ones it spans. Far cheaper than :class:`IntervalBrownian` for
    many paths (10⁵ paths × 1024 fine steps in seconds), which is what resolves weak errors. Queries must come in
    order, from t = 1 down, as a fixed-step solver makes them.
    """

    def __init__(self, n: int, dim: int, t_end: float, fine_steps: int, seed: int) -> None:
        self.h = (1.0 - t_end) / fine_steps
        self.generator = torch.Generator().manual_seed(seed)
        self._fine = torch.empty(n, dim, dtype=torch.float64)
        self._out = torch.empty(n, dim, dtype=torch.float64)

    def __call__(self, t_from: float, t_to: float) -> Tensor:
        count = (t_from - t_to) / self.h
        if abs(count - round(count)) > 1e-6 or round(count) < 1:
            raise ValueError(f"step {t_from} → {t_to} is not a whole number of fine steps ({count:.6g})")
        self._out.zero_()
        for _ in range(round(count)):
            self._out.add_(standard_normal_(self._fine, self.generator, math.sqrt(self.h)))
        return self._out
