"""iPNDM (Zhang & Chen 2023, improved pseudo-numerical methods): Adams–Bashforth in σ on the noise direction.

Written, like the other σ-samplers (:mod:`sdebench.solvers.sigma`), on the scaled variable x̂ = x/s(t), for every
SDE of the family, where the probability-flow ODE is dx̂/dσ = ε(x̂, σ) with ε = (x̂ − D(x̂, σ))/σ (the model's noise
prediction). PNDM (Liu et al. 2022) started its multistep formula with Runge–Kutta steps (4 NFE each); iPNDM starts
with the lower-order Adams–Bashforth steps instead (orders 1, 2, …, k over the first k steps), so every step costs
one NFE. It uses the published constant-step weights Δσ·(55, −59, 37, −9)/24 (order 4; (23, −16, 5)/12 and
(3, −1)/2 for orders 3 and 2) on every grid.

Those weights are exact only for equal steps in σ. On a smooth non-uniform grid (Karras, log-σ, uniform t)
successive steps differ by O(h²), so they integrate even a linear ε with an O(h³) local error, and the method is of
order 2 whatever k is: declared strong (= weak) order 2 for orders ≥ 2 (fitted 1.97–2.07 on ve, vp, subvp and edm,
32–256 steps, karras), 1 for order 1 (Euler in σ). The same formula with weights recomputed for the actual steps
is ``lms`` (variable-step Adams–Bashforth, k-diffusion's linear multistep sampler); on equal steps the two agree
to round-off. One NFE a step (plus one with ``denoise``).
"""

from __future__ import annotations

from typing import Any

from sdebench.solvers.base import register
from sdebench.solvers.sigma import AdamsBashforthSampler

#: The constant-step Adams–Bashforth weights (in units of the step), newest slope first, by order.
FIXED_WEIGHTS: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


@register
class IPNDM(AdamsBashforthSampler):
    """iPNDM: Adams–Bashforth of order ``order`` in σ on ε = (x̂ − D)/σ with the published constant-step weights.

    One NFE a step. Declared strong (= weak) order: 1 for order 1, else 2 (see the module docstring).
    """

    name = "ipndm"
    strong_order = None
    weak_order = None

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.strong_order = self.weak_order = float(min(self.options["order"], 2))

    def step_weights(self, sigmas: list[float], i: int, k: int) -> list[float]:
        """The constant weights of order k times the step Δσ = σ_{i+1} − σ_i (newest slope first)."""
        return [(sigmas[i + 1] - sigmas[i]) * w for w in FIXED_WEIGHTS[k]]
