"""Mode balance and per-mode moments, by posterior responsibility under the reference mixture."""

from __future__ import annotations

import torch

from sdebench.metrics.base import METRICS, Output, Reference, check_samples, outputs, require_mixture

Tensor = torch.Tensor


def assign_modes(x: Tensor, reference: Reference, metric: str) -> Tensor:
    """Index of the most responsible reference component for each sample."""
    mixture = require_mixture(reference, metric)
    return mixture.responsibilities(x).argmax(dim=1)


@METRICS.register("mode_balance")
@outputs(
    # the fractions themselves have no direction: mode_max_dev(_se) judges them against the weights
    Output("mode_frac_*", title="mode fraction", direction="info", main=False),
    Output("mode_max_dev", title="mode frac. dev", main=False),
    Output("mode_max_dev_se", title="mode frac. dev (SE)"),
)
def mode_balance(samples: Tensor, reference: Reference) -> dict:
    """Fraction of samples in each mode, the largest deviation from the weights, and it in binomial SEs.

    ``mode_max_dev_se`` = max_k |f_k − w_k| / sqrt(w_k (1 − w_k) / n): exact sampling keeps it below ~3 for a few
    modes.
    """
    x = check_samples(samples, reference)
    weights = reference.mixture.weights if reference.mixture is not None else None
    labels = assign_modes(x, reference, "mode_balance")
    n = x.shape[0]
    fractions = torch.bincount(labels, minlength=weights.shape[0]).double() / n
    dev = (fractions - weights).abs()
    se = torch.sqrt(weights * (1 - weights) / n).clamp_min(1e-300)
    out = {f"mode_frac_{k}": float(f) for k, f in enumerate(fractions)}
    out["mode_max_dev"] = float(dev.max())
    out["mode_max_dev_se"] = float((dev / se).max())
    return out


@METRICS.register("mode_moments")
@outputs(
    Output("mode_std_rel_err_max", title="mode std rel. err"),
    Output("mode_mean_err_max", title="mode mean err", main=False),
)
def mode_moments(samples: Tensor, reference: Reference) -> dict:
    """Per-mode mean and spread against each reference component's (samples assigned by responsibility).

    ``mode_std_rel_err_max``: the largest |std / std_exact − 1| over modes and dimensions;
    ``mode_mean_err_max``: the largest |mean − μ_k| (Euclidean) over modes. A mode with fewer than two samples
    counts as a relative spread error of 1.
    """
    x = check_samples(samples, reference)
    mixture = require_mixture(reference, "mode_moments")
    labels = assign_modes(x, reference, "mode_moments")
    std_err, mean_err = 0.0, 0.0
    for k in range(mixture.n_components):
        members = x[labels == k]
        if members.shape[0] < 2:
            std_err, mean_err = max(std_err, 1.0), max(mean_err, float("inf"))
            continue
        exact_std = mixture.covs[k].diagonal().sqrt()
        std_err = max(std_err, float((members.std(dim=0) / exact_std - 1).abs().max()))
        mean_err = max(mean_err, float((members.mean(dim=0) - mixture.means[k]).norm()))
    return {"mode_std_rel_err_max": std_err, "mode_mean_err_max": mean_err}
