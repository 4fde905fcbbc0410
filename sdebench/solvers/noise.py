"""Gaussian noise for the solvers' inner loops."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def standard_normal_(out: Tensor, generator: torch.Generator) -> Tensor:
    """Fill ``out`` with N(0, 1) draws from ``generator``.

    The draws are made in float32 and widened: torch's CPU sampler has a vectorised float32 path that is about five
    times faster than its float64 path (0.7 ms against 3.7 ms for 2·10⁵ draws here), and the noise is the largest
    cost of an Euler–Maruyama step after the score. A float32 normal is exact to 24 bits and its tails stop near
    5.8σ, a difference that shows at probability ~1e-8, far below any sampling error the bench can see.
    """
    return out.copy_(torch.randn(out.shape, generator=generator, dtype=torch.float32))
