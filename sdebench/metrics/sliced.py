"""Sliced Wasserstein distances SW1 and SW2, against exact projected quantiles when the reference is a mixture."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from sdebench.metrics.base import METRICS, Output, Reference, check_samples, outputs

Tensor = torch.Tensor


def projections(dim: int, count: int, seed: int) -> np.ndarray:
    """``count`` unit directions in R^dim, uniform on the sphere, fixed by ``seed`` (shared across runs)."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(count, dim, generator=gen, dtype=torch.float64)
    return (theta / theta.norm(dim=1, keepdim=True)).numpy()


def mixture_quantiles(means: np.ndarray, stds: np.ndarray, weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Quantiles F⁻¹(u) of 1-D Gaussian mixtures (one per row of means/stds, (L, K)) at levels u (m,): (L, m).

    The CDF on a grid dense inside every component brackets each root and gives a first guess by interpolation;
    Newton steps then polish it, falling back to bisection whenever a step leaves the bracket. Converges to
    |F(y) − u| < 1e-12 (or the bracket's round-off) in a handful of iterations.
    """
    q = ndtri(np.linspace(1e-12, 1 - 1e-12, 257))
    grid = np.sort((means[:, :, None] + stds[:, :, None] * q).reshape(means.shape[0], -1), axis=1)
    span = grid[:, -1:] - grid[:, :1]
    grid = np.concatenate([grid[:, :1] - span, grid, grid[:, -1:] + span], axis=1)  # bracket the extreme levels
    cdf = (weights * ndtr((grid[:, :, None] - means[:, None, :]) / stds[:, None, :])).sum(-1)
    rows = np.arange(grid.shape[0])[:, None]
    upper = np.stack([np.searchsorted(c, u) for c in cdf]).clip(1, grid.shape[1] - 1)
    lo, hi = grid[rows, upper - 1], grid[rows, upper]
    y = np.stack([np.interp(u, c, g) for c, g in zip(cdf, grid, strict=True)])
    # Iterate on the still-unconverged entries only (flattened): most converge in 3–4 Newton steps; the few
    # levels that fall in the flat gap between modes finish by bisection.
    shape = y.shape
    y, lo, hi = y.ravel(), lo.ravel(), hi.ravel()
    row = np.repeat(np.arange(shape[0]), shape[1])
    level = np.tile(u, shape[0])
    active = np.arange(y.size)
    inv_sqrt_2pi = 1.0 / np.sqrt(2 * np.pi)
    for _ in range(100):
        m, s, ya = means[row[active]], stds[row[active]], y[active]
        z = (ya[:, None] - m) / s
        f = (weights * ndtr(z)).sum(-1) - level[active]
        lo[active] = np.where(f < 0, ya, lo[active])
        hi[active] = np.where(f > 0, ya, hi[active])
        density = (weights / s * inv_sqrt_2pi * np.exp(-0.5 * z * z)).sum(-1)
        newton = ya - f / np.maximum(density, 1e-300)
        inside = (newton >= lo[active]) & (newton <= hi[active])
        converged = np.abs(f) < 1e-13
        y[active] = np.where(converged, ya, np.where(inside, newton, 0.5 * (lo[active] + hi[active])))
        done = converged | (hi[active] - lo[active] < 1e-10) | (np.abs(y[active] - ya) < 1e-12)
        active = active[~done]
        if active.size == 0:
            break
    y = y.reshape(shape)
    return y


def _reference_quantiles(reference: Reference, n: int, theta: np.ndarray, key: tuple) -> np.ndarray:
    """Reference quantiles at the midpoint levels (i − ½)/n along each direction, cached on the reference."""
    if key not in reference.cache:
        u = (np.arange(n) + 0.5) / n
        if reference.mixture is not None:
            means, variances = reference.mixture.projected(torch.from_numpy(theta))
            weights = reference.mixture.weights.numpy()
            reference.cache[key] = mixture_quantiles(means.numpy(), np.sqrt(variances.numpy()), weights, u)
        else:
            ref = np.sort(reference.samples.numpy() @ theta.T, axis=0).T  # (L, m)
            levels = (np.arange(ref.shape[1]) + 0.5) / ref.shape[1]
            reference.cache[key] = np.stack([np.interp(u, levels, row) for row in ref])
    return reference.cache[key]


@METRICS.register("sliced_wasserstein")
@outputs(Output("sw1", title="SW1"), Output("sw2", title="SW2", main=False))
def sliced_wasserstein(samples: Tensor, reference: Reference, n_projections: int = 64, seed: int = 0) -> dict:
    """SW1 and SW2 over ``n_projections`` seeded directions (the same directions for every run).

    Along each direction the sorted projected samples x_(i) are compared with the reference quantiles at the
    levels (i − ½)/n: exact mixture quantiles when the reference is a mixture, interpolated quantiles of the
    held-out samples otherwise. SW_p = (mean over directions of (1/n) Σ |x_(i) − q_i|^p)^(1/p).
    """
    x = check_samples(samples, reference)
    theta = projections(x.shape[1], n_projections, seed)
    proj = np.sort(x.numpy() @ theta.T, axis=0).T  # (L, n)
    quant = _reference_quantiles(reference, x.shape[0], theta, ("sw", x.shape[0], n_projections, seed))
    gap = np.abs(proj - quant)
    return {"sw1": float(gap.mean()), "sw2": float(np.sqrt((gap * gap).mean()))}
