"""Problems: SDEs, Gaussian-mixture data, named problems and TOML problem definitions."""

from sdebench.problems import named  # noqa: F401  (registers the named problems)
from sdebench.problems.mixture import GaussianMixture
from sdebench.problems.problem import PROBLEMS, Problem, get_problem, load_problem, problem_from_spec
from sdebench.problems.sde import (
    EDMSDE,
    SDES,
    VESDE,
    VPSDE,
    LinearSDE,
    ProbabilityFlowODE,
    ReverseSDE,
    SubVPSDE,
    sde_from_spec,
)

__all__ = [
    "EDMSDE",
    "PROBLEMS",
    "SDES",
    "VESDE",
    "VPSDE",
    "GaussianMixture",
    "LinearSDE",
    "ProbabilityFlowODE",
    "Problem",
    "ReverseSDE",
    "SubVPSDE",
    "get_problem",
    "load_problem",
    "problem_from_spec",
    "sde_from_spec",
]
