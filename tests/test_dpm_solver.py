"""DPM-Solver++ (2M) SDE, (3M), (3M) SDE: the exact cases the generic tests do not cover."""

from __future__ import annotations

import pytest
import torch

from sdebench.errors import UserError
from sdebench.problems import SDES, get_problem, problem_from_spec
from sdebench.scores import make_score
from sdebench.solvers import make_solver


def asym3(sde_type: str):
    return problem_from_spec({**get_problem("ve-asym3").spec, "sde": SDES.get(sde_type)().spec()})


@pytest.mark.parametrize("sde_type", ["ve", "vp", "subvp", "edm"])
def test_2m_sde_without_noise_is_dpmpp_2m(sde_type):
    """With η = 0 the (2M) SDE step is DPM-Solver++(2M)'s, step for step: equal to 1e-12 of the samples' scale
    (measured 4e-15 to 3e-14), on a 3-D problem, every SDE."""
    problem, score = asym3(sde_type), make_score("exact", asym3(sde_type))
    runs = [
        make_solver(name, steps=20, **extra).solve(problem, score, 500, torch.Generator().manual_seed(1)).samples
        for name, extra in (("dpmpp-2m-sde", {"eta": 0.0}), ("dpmpp-2m", {}))
    ]
    assert float((runs[0] - runs[1]).abs().max()) <= 1e-12 * float(runs[1].abs().max())


def test_declared_kind_and_orders_follow_eta():
    """Noise (η > 0) makes a sampler an SDE sampler with no declared order; η = 0 gives the ODE method's order."""
    assert (make_solver("dpmpp-3m").kind, make_solver("dpmpp-3m").strong_order) == ("ode", 3.0)
    assert (make_solver("dpmpp-3m-sde").kind, make_solver("dpmpp-3m-sde").weak_order) == ("sde", None)
    quiet = make_solver("dpmpp-2m-sde", eta=0.0)
    assert (quiet.kind, quiet.strong_order) == ("ode", 2.0)
    with pytest.raises(UserError, match="eta"):
        make_solver("dpmpp-3m-sde", eta=-0.5)


@pytest.mark.parametrize("name", ["dpmpp-2m-sde", "dpmpp-3m-sde"])
def test_noise_comes_from_the_run_generator(name):
    """Same seed, same samples; another seed, other samples (the noise is the generator's)."""
    problem = get_problem("ve-gmm2")
    score = make_score("exact", problem)

    def sample(seed):
        return make_solver(name, nfe=12).solve(problem, score, 200, torch.Generator().manual_seed(seed)).samples

    assert torch.equal(sample(3), sample(3)) and not torch.equal(sample(3), sample(4))
