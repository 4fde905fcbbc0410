"""Solver comparison sweeps: TOML grids expanded into keyed runs, executed anywhere, stored once in SQLite.

Names are imported on first use, so that reading a store (``sdebench.sweeps.store``) loads no solver: reports read
the store alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunResult": "sdebench.sweeps.store",
    "Store": "sdebench.sweeps.store",
    "RunSpec": "sdebench.sweeps.config",
    "expand_sweep": "sdebench.sweeps.config",
    "load_sweep": "sdebench.sweeps.config",
    "score_label": "sdebench.sweeps.config",
    "solver_label": "sdebench.sweeps.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
