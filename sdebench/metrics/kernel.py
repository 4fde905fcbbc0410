"""Kernel two-sample distances: the energy distance and the Gaussian-kernel MMD².

Both compare whole distributions, so they see mode imbalance and shifts with one number. What they can resolve
differs: the energy distance works at the scale of the data's overall spread, so on well-separated modes it sees
mode balance but not a few per cent of per-mode spread; the MMD's bandwidth is set to the scale of one mode so that
it sees both. The helper functions give Gaussian-mixture closed forms (used by ``mmd`` and by the tests).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sdebench.errors import check
from sdebench.metrics.base import METRICS, Output, Reference, check_samples, outputs
from sdebench.metrics.sliced import projections
from sdebench.metrics.transport import subsample
from sdebench.problems import GaussianMixture

Tensor = torch.Tensor


# -- energy distance -----------------------------------------------------------------------------------------------
def energy_directions(dim: int, count: int, seed: int) -> Tensor:
    """Unit directions (rows) over which the energy distance is averaged.

    d = 1: the axis itself (exact). d = 2: ``count`` equispaced angles (l + ½)π/count on the half circle, a
    midpoint rule for the average over directions (the kernel's relative error is within 8e-4 at 32 angles,
    2e-4 at 64). d ≥ 3: ``count`` seeded uniform random directions, as for the sliced Wasserstein distance.
    """
    if dim == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    if dim == 2:
        angle = (torch.arange(count, dtype=torch.float64) + 0.5) * math.pi / count
        return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return torch.from_numpy(projections(dim, count, seed))


def _slice_constant(dim: int) -> float:
    """c_d = E|θ₁| for θ uniform on the unit sphere of R^d, so that ‖z‖ = E_θ|θᵀz| / c_d (c_1 = 1, c_2 = 2/π)."""
    return math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)


def _mean_abs_gaussian(mean: Tensor, std: Tensor) -> Tensor:
    """E|Z| for Z ~ N(mean, std²), elementwise: mean (2Φ(u) − 1) + 2 std φ(u), u = mean / std."""
    u = mean / std
    # 2Φ(u) − 1 = erf(u/√2), and numpy's exp: each several times faster than torch's float64 ndtr and exp here.
    gauss = torch.from_numpy(np.exp(-0.5 * (u * u).numpy()))
    return mean * torch.special.erf(u / math.sqrt(2)) + std * gauss * math.sqrt(2 / math.pi)


def _within_sorted(sorted_rows: Tensor) -> Tensor:
    """Mean of |z_i − z_j| over all ordered pairs (i = j included) of each row of an ascending (L, n) array."""
    n = sorted_rows.shape[1]
    rank = 2 * torch.arange(1, n + 1, dtype=torch.float64) - n - 1
    return 2 * (sorted_rows * rank).sum(1) / (n * n)


def _energy_reference(reference: Reference, theta: Tensor, key: tuple) -> dict[str, Tensor]:
    """What the energy distance needs of the reference along each direction (cached)."""
    if key not in reference.cache:
        if reference.mixture is not None:
            means, variances = reference.mixture.projected(theta)  # (L, K) each
            w = reference.mixture.weights
            gap = means[:, :, None] - means[:, None, :]
            spread = (variances[:, :, None] + variances[:, None, :]).sqrt()
            within = torch.einsum("j,ljk,k->l", w, _mean_abs_gaussian(gap, spread), w)
            reference.cache[key] = {"means": means, "stds": variances.sqrt(), "within": within}
        else:
            y = torch.sort(theta @ reference.samples.to(torch.float64).T, dim=1).values  # (L, N)
            prefix = torch.nn.functional.pad(torch.cumsum(y, dim=1), (1, 0))
            reference.cache[key] = {"sorted": y, "prefix": prefix, "within": _within_sorted(y)}
    return reference.cache[key]


@METRICS.register("energy")
@outputs(Output("energy", title="energy"))
def energy(samples: Tensor, reference: Reference, directions: int = 32, seed: int = 0) -> dict[str, float]:
    """Energy distance 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ between the samples' empirical measure and the reference.

    V-statistic: every pair, the i = i' terms included. It is then itself the energy distance between two
    probability measures (the samples' empirical one and the exact mixture, or the held-out points' empirical
    one), so it is ≥ 0, symmetric (to round-off) when two sample sets swap roles, and its noise floor is a positive
    number like SW's: exactly E‖X − X'‖/n on average for exact samples against a mixture (the diagonal's share; the
    rest is a U-statistic of mean 0) — an unbiased U-statistic alone would hover around 0 with either sign.

    All n samples are used, no subsample: through ‖z‖ = E_θ|θᵀz| / c_d every term is an average over directions θ
    of 1-D terms, which cost O(n log n) by sorting; against a mixture the terms with the reference are closed forms
    (E|z − Y| for a 1-D Gaussian mixture), with no reference sample at all. ``directions`` (default 32) are chosen
    by :func:`energy_directions`: equispaced in 2-D, so there the value is the energy distance of a kernel within a
    relative 8e-4 of ‖x − y‖. Why not pairwise distances on a subsample: with 2 000 points a side, the subsamples'
    own mode fractions put a 55/45 imbalance of ve-gmm2 only ~1.6 standard deviations from exact sampling; with all
    20 000 samples and the exact reference it is ~6. It sees mode balance and shifts at the scale of the data's overall
    spread, not a few per cent of per-mode spread (``mmd`` does). Key: ``energy``.
    """
    x = check_samples(samples, reference)
    theta = energy_directions(x.shape[1], directions, seed)
    ref = _energy_reference(reference, theta, ("energy", x.shape[1], directions, seed))
    z = theta @ x.T  # (L, n)
    within_x = _within_sorted(torch.from_numpy(np.sort(z.numpy(), axis=1)))  # numpy's sort: 2× torch's here
    if reference.mixture is not None:
        # E|z − Y| = Σ_k w_k s_k √2 (a erf(a) + exp(−a²)/√π) with a = (z − m_k)/(s_k √2): few passes over (L, n, K).
        scale = ref["stds"] * math.sqrt(2)
        a = (z[:, :, None] - ref["means"][:, None]) / scale[:, None]
        g = a * torch.special.erf(a) + torch.from_numpy(np.exp(-(a * a).numpy())) / math.sqrt(math.pi)
        cross = torch.einsum("lnk,lk->l", g, reference.mixture.weights * scale) / x.shape[0]
    else:
        # Σ_j |z − y_j| = z (2k − N) − 2 S_k + S_N with k = #{y_j ≤ z} and S the prefix sums of the sorted y.
        y, prefix = ref["sorted"], ref["prefix"]
        big_n = y.shape[1]
        k = torch.searchsorted(y, z)
        total = z * (2 * k - big_n) - 2 * torch.gather(prefix, 1, k) + prefix[:, -1:]
        cross = total.mean(1) / big_n
    value = (2 * cross - within_x - ref["within"]).mean() / _slice_constant(x.shape[1])
    return {"energy": float(value)}


# -- Gaussian-kernel MMD -------------------------------------------------------------------------------------------
def mixture_bandwidth(mixture: GaussianMixture) -> float:
    """The RMS per-dimension spread of one component, sqrt(Σ_k w_k tr Σ_k / d): the scale of a single mode."""
    return math.sqrt(float(torch.einsum("k,kii->", mixture.weights, mixture.covs)) / mixture.dim)


def median_bandwidth(points: Tensor) -> float:
    """Median pairwise Euclidean distance between distinct rows of ``points`` (the median heuristic)."""
    dist = torch.cdist(points, points)
    i, j = torch.triu_indices(points.shape[0], points.shape[0], offset=1)
    return float(dist[i, j].median())


def characteristic_function(mixture: GaussianMixture, omega: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of E exp(i ωᵀY) for Y from the mixture, at each row of omega (D, d).

    Σ_k w_k exp(i ωᵀμ_k − ½ ωᵀΣ_k ω): exact.
    """
    phase = omega @ mixture.means.T  # (D, K)
    damp = torch.exp(-0.5 * torch.einsum("jd,kde,je->jk", omega, mixture.covs, omega))
    weighted = mixture.weights * damp
    return (weighted * torch.cos(phase)).sum(1), (weighted * torch.sin(phase)).sum(1)


def gaussian_kernel_mean(p: GaussianMixture, q: GaussianMixture, bandwidth: float) -> float:
    """E k(X, Y) for X ~ p, Y ~ q independent and k(x, y) = exp(−‖x − y‖² / (2h²)), in closed form.

    Per pair of components: det(I + (Σ_i + Σ_j)/h²)^(−1/2) exp(−½ Δᵀ(Σ_i + Σ_j + h² I)⁻¹ Δ), Δ = μ_i − μ_j.
    """
    h2 = bandwidth**2
    eye = torch.eye(p.dim, dtype=torch.float64)
    cov = p.covs[:, None] + q.covs[None, :] + h2 * eye  # (Kp, Kq, d, d)
    delta = p.means[:, None] - q.means[None, :]
    quad = (delta * torch.linalg.solve(cov, delta.unsqueeze(-1)).squeeze(-1)).sum(-1)
    log_det = torch.linalg.slogdet(cov / h2)[1]
    terms = torch.exp(-0.5 * (quad + log_det))
    return float(p.weights @ terms @ q.weights)


def mixture_mmd2(p: GaussianMixture, q: GaussianMixture, bandwidth: float) -> float:
    """The exact (population) Gaussian-kernel MMD² between two mixtures, bandwidth h."""
    return (
        gaussian_kernel_mean(p, p, bandwidth)
        + gaussian_kernel_mean(q, q, bandwidth)
        - 2 * gaussian_kernel_mean(p, q, bandwidth)
    )


def fourier_frequencies(dim: int, features: int, bandwidth: float, seed: int) -> Tensor:
    """``features`` frequencies ω ~ N(0, I/h²), fixed by ``seed``: (1/D) Σ_j cos(ω_jᵀ(x − y)) → the Gaussian kernel."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(features, dim, generator=gen, dtype=torch.float64) / bandwidth


def fourier_sums(x: Tensor, omega: Tensor, centre: Tensor) -> tuple[Tensor, Tensor]:
    """Σ_i cos(ω_jᵀ(x_i − c)) and Σ_i sin(ω_jᵀ(x_i − c)) for each frequency ω_j: two (D,) float64 tensors.

    Centring on a fixed c (the reference's mean) multiplies every characteristic function by the same phase
    exp(−iωᵀc), which leaves the MMD unchanged; it keeps the phases small, so the phases and the trigonometry
    can run in float32 (numpy's vectorised cos/sin, about 4× faster than float64). Rounding a centred point to
    float32 moves it by ~1e-7 of its distance to c, far below any bandwidth; the sums accumulate in float64.
    """
    omega32 = omega.to(torch.float32)
    cos = np.zeros(omega.shape[0])
    sin = np.zeros(omega.shape[0])
    # Chunks of rows bound the (D, chunk) phase array (≈ 50 MB at D = 256) however large n is.
    for part in torch.split(x, 50_000):
        phase = (omega32 @ (part - centre).to(torch.float32).T).numpy()  # (D, rows): contiguous per frequency
        cos += np.cos(phase).sum(1, dtype=np.float64)
        sin += np.sin(phase).sum(1, dtype=np.float64)
    return torch.from_numpy(cos), torch.from_numpy(sin)


def _reference_fourier(reference: Reference, omega: Tensor, key: tuple) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre c, the reference's mean (cos, sin) features about c and an unbiased |φ_Y(ω)|² per frequency (cached)."""
    if key not in reference.cache:
        if reference.mixture is not None:
            mixture = reference.mixture
            centre = mixture.mean()
            shifted = GaussianMixture(mixture.weights, mixture.means - centre, mixture.covs)
            re, im = characteristic_function(shifted, omega)
            power = re * re + im * im  # exact: no reference sampling error at all
        else:
            y = reference.samples.to(torch.float64)
            m = y.shape[0]
            check(m >= 2, "reference", f"needs at least 2 held-out samples for an unbiased MMD², got {m}")
            centre = y.mean(0)
            c, s = fourier_sums(y, omega, centre)
            re, im = c / m, s / m
            power = (c * c + s * s - m) / (m * (m - 1))  # drop the i = j terms: unbiased
        reference.cache[key] = (centre, re, im, power)
    return reference.cache[key]


def reference_bandwidth(reference: Reference, seed: int = 0) -> float:
    """The MMD's bandwidth rule, fixed by the reference alone (cached).

    Mixture: :func:`mixture_bandwidth`, the RMS spread of one component. Held-out samples (no components known):
    the median heuristic on a seeded subsample of 1 000 reference points.
    """
    key = ("mmd_bandwidth", seed)
    if key not in reference.cache:
        if reference.mixture is not None:
            reference.cache[key] = mixture_bandwidth(reference.mixture)
        else:
            reference.cache[key] = median_bandwidth(subsample(reference.samples.to(torch.float64), 1000, seed))
    return reference.cache[key]


@METRICS.register("mmd")
@outputs(Output("mmd2", title="MMD²"))
def mmd(
    samples: Tensor, reference: Reference, bandwidth: float | None = None, features: int = 256, seed: int = 0
) -> dict[str, float]:
    """Unbiased MMD² with the Gaussian kernel exp(−‖x − y‖²/(2h²)), on all the samples, via random features.

    Bandwidth rule: h is fixed by the reference, never by the samples, so every sampler is judged with the same
    kernel. Against a mixture, h = sqrt(Σ_k w_k tr Σ_k / d), the spread of one mode (≈ 0.05 on ve-gmm2), so that
    the kernel resolves each mode's shape as well as the balance between modes. The median heuristic is not used
    there: on well-separated modes the median pairwise distance falls in the gap between within-mode and
    between-mode distances, so it is ill-determined, and at that scale the kernel is blind to per-mode spread.
    Against held-out samples (no components known) the rule is the median heuristic on 1 000 seeded reference
    points. ``bandwidth`` overrides the rule.

    Estimator: D = ``features`` frequencies ω_j ~ N(0, I/h²) fixed by ``seed``, whose kernel
    (1/D) Σ_j cos(ω_jᵀ(x − y)) averages to the Gaussian kernel over the draw of ω. With S_j = Σ_i exp(i ω_jᵀx_i),
    MMD² = mean_j [ (|S_j|² − n)/(n(n−1)) − 2 Re(conj(S_j/n) φ_Y(ω_j)) + |φ_Y(ω_j)|² ], unbiased in the samples.
    φ_Y is the mixture's exact characteristic function (so no reference sample enters), or the held-out points'
    empirical one with its own unbiased |φ_Y|² (then the formula is symmetric in the two sets). Cost O(n·D) instead
    of O(n²), which is what lets it use all n samples: on ve-gmm2 at n = 20 000 its spread over exact samples is
    1.6e-5, against 1.2e-4 for the exact-kernel U-statistic on a 2 000-subsample (a 5% spread inflation gives
    3.5e-4). Being unbiased, an exact sample scores 0 on average, with either sign: read it against the spread of
    its floor draws, not their mean. Key: ``mmd2``.
    """
    x = check_samples(samples, reference)
    n = x.shape[0]
    h = float(bandwidth) if bandwidth is not None else reference_bandwidth(reference, seed)
    omega = fourier_frequencies(x.shape[1], features, h, seed)
    centre, re_y, im_y, power_y = _reference_fourier(reference, omega, ("mmd_fourier", h, features, seed))
    c, s = fourier_sums(x, omega, centre)
    power_x = (c * c + s * s - n) / (n * (n - 1))
    cross = 2 * (c * re_y + s * im_y) / n
    return {"mmd2": float((power_x + power_y - cross).mean())}
