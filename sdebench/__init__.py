"""sdebench: a test bench for the SDE and ODE solvers that sample score-based diffusion models."""

__version__ = "0.1.0"

#: The notebook API (:mod:`sdebench.api`), imported on first use so that ``import sdebench`` stays light.
_API = ("sample", "sweep", "report", "results")


def __getattr__(name: str):
    if name in _API:
        import importlib

        # by name, not an import statement: the code fingerprint of every run follows this package's imports,
        # and the notebook API computes nothing a run depends on
        return getattr(importlib.import_module("sdebench.api"), name)
    raise AttributeError(f"module 'sdebench' has no attribute {name!r}")


__all__ = ["__version__", *_API]
