"""sdebench: a test bench for the SDE and ODE solvers that sample score-based diffusion models."""

__version__ = "0.1.0"
