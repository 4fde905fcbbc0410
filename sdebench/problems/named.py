"""The named problems shipped with sdebench: the seed's data under each SDE of the family, and two more."""

from __future__ import annotations

from typing import Any

from sdebench.problems.problem import PROBLEMS
from sdebench.problems.sde import SDES


def seed_data() -> dict[str, Any]:
    """The seed's data: two Gaussians at (−2,−2), (2,2) with covariance 0.01 I, equal weights, normalised.

    Normalised per dimension by the mixture's exact mean and standard deviation (the seed used sample statistics of
    10⁶ draws; the exact values are their deterministic limit), so each mode has spread 0.1/sqrt(4.01) ≈ 0.05.
    """
    return {
        "type": "gmm",
        "weights": [0.5, 0.5],
        "means": [[-2.0, -2.0], [2.0, 2.0]],
        "covs": [0.01, 0.01],
        "normalize": True,
    }


def _seed_problem(sde_type: str) -> dict[str, Any]:
    """The seed's data under the SDE ``sde_type`` with that SDE's default parameters and t_end."""
    sde = SDES.get(sde_type)()
    return {"name": f"{sde_type}-gmm2", "sde": sde.spec(), "data": seed_data(), "t_end": sde.default_t_end}


@PROBLEMS.register("ve-gmm2")
def ve_gmm2() -> dict[str, Any]:
    """The seed's problem: VE-SDE (σmin 0.01, σmax 10, ε = 1e-5) on the seed's two-Gaussian data."""
    return _seed_problem("ve")


@PROBLEMS.register("vp-gmm2")
def vp_gmm2() -> dict[str, Any]:
    """The seed's data under the VP-SDE (β_min 0.1, β_max 20, ε = 1e-3, as score_sde samples VP models)."""
    return _seed_problem("vp")


@PROBLEMS.register("subvp-gmm2")
def subvp_gmm2() -> dict[str, Any]:
    """The seed's data under the sub-VP SDE (β_min 0.1, β_max 20, ε = 1e-3)."""
    return _seed_problem("subvp")


@PROBLEMS.register("edm-gmm2")
def edm_gmm2() -> dict[str, Any]:
    """The seed's data under EDM's SDE (σ(t) = t from σmax 80 down to ε = σmin 0.002)."""
    return _seed_problem("edm")


@PROBLEMS.register("ve-asym3")
def ve_asym3() -> dict[str, Any]:
    """An asymmetric 3-D problem under the seed's VE-SDE: what the seed's problem cannot show.

    Three modes with unequal weights (0.55, 0.3, 0.15), anisotropic and correlated covariances, a mean of
    (0.175, 0.425, 0.1) and no normalisation. Not symmetric about the origin, so the prior N(0, σmax² I), which
    is not p_1, shifts the mode weights (a prior-mismatch error no NFE removes); in d = 3, so nothing may
    assume a plane.
    """
    return {
        "name": "ve-asym3",
        "sde": SDES.get("ve")().spec(),
        "data": {
            "type": "gmm",
            "weights": [0.55, 0.3, 0.15],
            "means": [[1.0, 0.5, -0.5], [-1.5, 1.0, 0.5], [0.5, -1.0, 1.5]],
            "covs": [[0.04, 0.01, 0.02], 0.02, [[0.03, 0.01, 0.0], [0.01, 0.02, 0.0], [0.0, 0.0, 0.05]]],
            "normalize": False,
        },
        "t_end": SDES.get("ve").default_t_end,
    }


@PROBLEMS.register("ve-gauss1")
def ve_gauss1() -> dict[str, Any]:
    """One anisotropic Gaussian under the seed's VE-SDE: the unimodal problem where convergence orders mean something.

    On a multimodal problem the strong error is dominated by the few paths that end in another mode than the
    reference path; with one mode every path converges at the solver's own order.
    """
    return gauss1("ve")


def gauss1(sde_type: str) -> dict[str, Any]:
    """One anisotropic Gaussian N((0.5, −0.5), diag(1, 0.25)) under the SDE ``sde_type`` (its defaults)."""
    sde = SDES.get(sde_type)()
    return {
        "name": f"{sde_type}-gauss1",
        "sde": sde.spec(),
        "data": {"type": "gmm", "weights": [1.0], "means": [[0.5, -0.5]], "covs": [[1.0, 0.25]], "normalize": False},
        "t_end": sde.default_t_end,
    }
