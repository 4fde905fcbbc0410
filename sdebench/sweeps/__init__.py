"""Solver comparison sweeps: TOML grids expanded into resolved, keyed runs."""

from sdebench.sweeps.config import RunSpec, expand_sweep, load_sweep

__all__ = ["RunSpec", "expand_sweep", "load_sweep"]
