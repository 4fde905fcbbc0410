"""The named problems shipped with sdebench."""

from __future__ import annotations

from typing import Any

from sdebench.problems.problem import DEFAULT_T_END, PROBLEMS


@PROBLEMS.register("ve-gmm2")
def ve_gmm2() -> dict[str, Any]:
    """The seed's problem: VE-SDE (σmin 0.01, σmax 10), two Gaussians at (−2,−2), (2,2), covariance 0.01 I.

    Normalised per dimension by the mixture's exact mean and standard deviation (the seed used sample statistics of
    10⁶ draws; the exact values are their deterministic limit), so each mode has spread 0.1/sqrt(4.01) ≈ 0.05.
    """
    return {
        "name": "ve-gmm2",
        "sde": {"type": "ve", "sigma_min": 0.01, "sigma_max": 10.0},
        "data": {
            "type": "gmm",
            "weights": [0.5, 0.5],
            "means": [[-2.0, -2.0], [2.0, 2.0]],
            "covs": [0.01, 0.01],
            "normalize": True,
        },
        "t_end": DEFAULT_T_END,
    }


@PROBLEMS.register("ve-gauss1")
def ve_gauss1() -> dict[str, Any]:
    """One anisotropic Gaussian under the seed's VE-SDE: the unimodal problem where convergence orders mean something.

    On a multimodal problem the strong error is dominated by the few paths that end in another mode than the
    reference path; with one mode every path converges at the solver's own order.
    """
    return {
        "name": "ve-gauss1",
        "sde": {"type": "ve", "sigma_min": 0.01, "sigma_max": 10.0},
        "data": {"type": "gmm", "weights": [1.0], "means": [[0.5, -0.5]], "covs": [[1.0, 0.25]], "normalize": False},
        "t_end": DEFAULT_T_END,
    }
