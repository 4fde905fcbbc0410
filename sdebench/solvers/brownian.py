"""Brownian increments for the reverse-time SDE solvers.

A Brownian source is a callable ``brownian(t_from, t_to) -> ΔW`` for a reverse-time step from t_from down to
t_to < t_from: an (n, d) tensor with variance t_from − t_to per entry. A source may also answer
``space_time(t_from, t_to) -> (ΔW, U/h)`` with U = ∫ (W(s) − W(s_from)) ds over the step in s = −t (the space-time
Lévy area that torchsde's SRK needs); sources marked ``sequential`` must be asked for consecutive steps in order.

- :class:`GeneratorBrownian` (the default): fresh Gaussian draws from the run's generator; cheap, sequential.
- :class:`IntervalBrownian`: one fixed path, ``torchsde.BrownianInterval`` in s = −t with a seed, queried on any
  intervals (also overlapping ones, as an adaptive solver asks). Solvers with different grids given the same seed run
  on the same path. A query costs about a millisecond.
- :class:`PartitionBrownian`: one fixed path on every node of grids given in advance (any grids: their union is the
  partition), with the Lévy areas; a query is a difference of prefix sums. What convergence studies use when they
  know their grids: on 200 paths × 2048 steps it runs Euler–Maruyama in 0.4 s where IntervalBrownian takes 3.5 s.
- :class:`NestedBrownian`: increments summed in order from a fine uniform grid; memory O(n·d), for 10⁵ paths.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
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

    sequential = True

    def __init__(self, n: int, dim: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> None:
        self.generator = generator
        self._buffer = torch.empty(n, dim, dtype=dtype)

    def __call__(self, t_from: float, t_to: float) -> Tensor:
        return standard_normal_(self._buffer, self.generator, math.sqrt(t_from - t_to))


class IntervalBrownian:
    """A fixed Brownian path on [t_end, t_start] (torchsde.BrownianInterval over s = −t), seeded by ``entropy``.

    ``t_start`` is the SDE's final time T (1, or σmax for EDM), where samplers start.
    """

    def __init__(
        self,
        n: int,
        dim: int,
        t_end: float,
        entropy: int,
        dtype: torch.dtype = torch.float64,
        t_start: float = 1.0,
    ) -> None:
        # halfway_tree: a dyadic tree refined to `tol`, so that the path is the same whatever intervals are
        # queried. Without it the path depends on the query pattern, and a coarse and a fine grid would see
        # different Brownian motions (measured: W(0.5) differed by O(1) between 4 and 4096 steps).
        self.interval = torchsde.BrownianInterval(
            t0=-t_start,
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

    def space_time(self, t_from: float, t_to: float) -> tuple[Tensor, Tensor]:
        """The increment and U/h (U the space-time Lévy area integral over the step in s = −t)."""
        w, u = self.interval(-t_from, -t_to, return_U=True)
        return w, u / (t_from - t_to)


class PartitionBrownian:
    """One Brownian path on the union of grids known in advance, with the space-time Lévy area of every step.

    The nodes of all ``grids`` (times from 1 down to t_end; nodes closer than 1e-12 are one node) partition
    [t_end, 1] into elementary steps; each gets an increment ΔW_k ~ N(0, h_k) and an independent Lévy part
    H_k ~ N(0, h_k/12), drawn once from a generator seeded with ``seed``. Any step between two nodes is the sum of the
    elementary steps it spans, and U = ∫ (W(s) − W(s_a)) ds over it (s = −t) is Σ_k [h_k(ΔW_k/2 + H_k) +
    h_k(W(s_k) − W(s_a))] by Chen's relation: so a coarse grid and a fine grid whose nodes are all in the partition see
    the very same path, Lévy areas included. Queries are differences of prefix sums, in any order. Memory: three
    (nodes, n, d) float64 arrays (200 paths × 2049 nodes × d = 2: 20 MB).
    """

    #: Nodes closer than this (in t) are taken to be the same node (grids computed in different ways round apart).
    TOLERANCE = 1e-12

    def __init__(self, n: int, dim: int, grids: Iterable[Sequence[float]], seed: int) -> None:
        nodes: list[float] = []
        for t in sorted({float(t) for grid in grids for t in grid}):
            if not nodes or t - nodes[-1] > self.TOLERANCE:
                nodes.append(t)
        self.nodes = nodes  # increasing in t: index k ↔ node t_k; the path runs from the last node down
        generator = torch.Generator().manual_seed(seed)
        h = torch.tensor(nodes, dtype=torch.float64).diff()  # h_k of the step between nodes k and k + 1
        z = torch.randn(2, len(h), n, dim, generator=generator, dtype=torch.float64)
        # Reverse time: step k runs from t_{k+1} down to t_k; W is accumulated from t = 1 (the last node) down.
        dw = z[0] * h.sqrt()[:, None, None]
        area = h[:, None, None] * (0.5 * dw + z[1] * (h / 12).sqrt()[:, None, None])
        zero = torch.zeros(1, n, dim, dtype=torch.float64)
        # W at each node, relative to W(t = 1): the sum of the increments of the steps above it.
        self._w = torch.cat([dw.flip(0).cumsum(0).flip(0), zero])
        # Prefix sums from the top for U: Σ area_k and Σ h_k·W(top of step k).
        self._area = torch.cat([area.flip(0).cumsum(0).flip(0), zero])
        self._hw = torch.cat([(h[:, None, None] * self._w[1:]).flip(0).cumsum(0).flip(0), zero])
        self._time = torch.cat([h.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=torch.float64)])

    def _index(self, t: float) -> int:
        k = bisect.bisect_left(self.nodes, t - self.TOLERANCE)
        if k == len(self.nodes) or abs(self.nodes[k] - t) > self.TOLERANCE:
            raise ValueError(f"t = {t!r} is not a node of the grids this path was built for")
        return k

    def __call__(self, t_from: float, t_to: float) -> Tensor:
        return self._w[self._index(t_to)] - self._w[self._index(t_from)]

    def space_time(self, t_from: float, t_to: float) -> tuple[Tensor, Tensor]:
        """The increment and U/h over the step (see the class docstring)."""
        a, b = self._index(t_from), self._index(t_to)
        w_a = self._w[a]
        span = float(self._time[b] - self._time[a])
        u = (self._area[b] - self._area[a]) + (self._hw[b] - self._hw[a]) - w_a * span
        return self._w[b] - w_a, u / span


class NestedBrownian:
    """A Brownian path built from increments on a fine uniform grid in t, drawn in order from a seeded generator.

    Any grid whose nodes lie on the fine grid (uniform-t with a step count dividing ``fine_steps``) sees the same
    path: a coarse increment is the sum of the fine ones it spans. Far cheaper than :class:`IntervalBrownian` for
    many paths (10⁵ paths × 1024 fine steps in seconds), which is what resolves weak errors. Queries must come in
    order, from t = t_start (T) down, as a fixed-step solver makes them.
    """

    sequential = True

    def __init__(self, n: int, dim: int, t_end: float, fine_steps: int, seed: int, t_start: float = 1.0) -> None:
        self.h = (t_start - t_end) / fine_steps
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
