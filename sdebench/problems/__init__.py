"""Problems: SDEs, Gaussian-mixture data, named problems and TOML problem definitions."""

from sdebench.problems import named  # noqa: F401  (registers the named problems)
from sdebench.problems.mixture import GaussianMixture
from sdebench.problems.problem import PROBLEMS, Problem, get_problem, load_problem, problem_from_spec
from sdebench.problems.sde import VESDE, ProbabilityFlowODE, ReverseSDE

__all__ = [
    "PROBLEMS",
    "VESDE",
    "GaussianMixture",
    "ProbabilityFlowODE",
    "Problem",
    "ReverseSDE",
    "get_problem",
    "load_problem",
    "problem_from_spec",
]
