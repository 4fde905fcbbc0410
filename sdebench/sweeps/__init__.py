"""Solver comparison sweeps: TOML grids expanded into keyed runs, executed anywhere, stored once in SQLite."""

from sdebench.sweeps.config import RunSpec, expand_sweep, load_sweep, score_label, solver_label
from sdebench.sweeps.store import RunResult, Store

__all__ = ["RunResult", "RunSpec", "Store", "expand_sweep", "load_sweep", "score_label", "solver_label"]
