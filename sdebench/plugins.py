"""Plugins: a user's solver, metric, score or problem, from a Python file or an importable module.

A plugin is ordinary Python that registers with the registries (``@register("my-solver")`` for a solver,
``@METRICS.register("my_metric")``, ``PROBLEMS.register``, ``SCORES.register``); loading it is importing it.
Three ways in, all the same underneath:

- ``--plugin my_solver.py`` or ``--plugin mypkg.solvers`` on any command;
- ``plugins = ["my_solver.py", "mypkg.solvers"]`` at the top of a sweep TOML (files relative to the sweep file);
- an installed package's entry point in the group ``sdebench.plugins`` (loaded by every command).

A sweep's runs carry the plugins they were expanded with, and every worker loads them before running (serial,
process pool and Dask alike). A plugin file is imported under a name made from its stem and the hash of its
absolute path, so its code is fingerprinted like sdebench's own (an edited plugin makes new run keys).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from sdebench.errors import UserError, check

#: The entry-point group an installed package names its plugin modules in.
ENTRY_POINT_GROUP = "sdebench.plugins"
_loaded: dict[str, str] = {}  # resolved spec -> module name, in this process


def is_file_spec(spec: str) -> bool:
    """Whether a plugin spec names a file (``x.py`` or a path) rather than a module (``pkg.mod``)."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def resolve(spec: str, base: Path | None = None, field: str = "plugin") -> str:
    """The spec as it is loaded everywhere: a file as its absolute path (relative ones from ``base``), a module
    name as given; a :class:`UserError` for a file that does not exist or a malformed name."""
    check(isinstance(spec, str) and spec.strip() != "", field, f"must be a file or module name, got {spec!r}")
    spec = spec.strip()
    if is_file_spec(spec):
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else (base or Path.cwd()) / path
        check(path.suffix == ".py", field, f"{spec!r}: a plugin file must end in .py")
        check(path.is_file(), field, f"no such plugin file {spec!r} (looked for {str(path)!r})")
        return str(path.resolve())
    check(all(part.isidentifier() for part in spec.split(".")), field, f"{spec!r} is not a module name or .py file")
    return spec


def _builtins() -> None:
    # Everything built in registers first, so that a plugin reusing a built-in name is refused, not the built-in.
    import sdebench.metrics
    import sdebench.problems
    import sdebench.scores
    import sdebench.solvers  # noqa: F401


def load(spec: str, field: str = "plugin") -> str:
    """Import one resolved plugin spec (once per process); returns its module name. Import errors, and a name
    already registered by a built-in or another plugin, become a one-line :class:`UserError` on ``field``."""
    if spec in _loaded:
        return _loaded[spec]
    _builtins()
    try:
        if is_file_spec(spec):
            path = Path(spec)
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
            name = f"sdebench_plugin_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            check(module_spec is not None and module_spec.loader is not None, field, f"cannot load {spec!r}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            name = importlib.import_module(spec).__name__
    except UserError as exc:
        raise UserError(field, f"{spec!r}: {exc.field}: {exc.message}") from None
    except ValueError as exc:
        if "registered twice" in str(exc):
            raise UserError(field, f"{spec!r}: {exc} (a built-in or another plugin has that name)") from None
        raise UserError(field, f"{spec!r} failed to import: ValueError: {exc}") from None
    except Exception as exc:  # the user's code: any failure is theirs to fix, reported in one line
        where = ""
        tb = exc.__traceback__
        while tb is not None:  # the innermost line of the plugin itself, if the failure is there
            if tb.tb_frame.f_code.co_filename == spec:
                where = f" (line {tb.tb_lineno})"
            tb = tb.tb_next
        raise UserError(field, f"{spec!r} failed to import{where}: {type(exc).__name__}: {exc}") from None
    _loaded[spec] = name
    return name


def load_plugins(specs: Iterable[str], base: Path | None = None, field: str = "plugin") -> tuple[str, ...]:
    """Resolve and import each plugin spec (files relative to ``base``); returns the resolved specs, in order and
    without repeats, which is what a run carries to its workers."""
    resolved: list[str] = []
    for i, spec in enumerate(specs):
        where = f"{field}[{i}]" if field != "plugin" else field
        item = resolve(spec, base, where)
        load(item, where)
        if item not in resolved:
            resolved.append(item)
    return tuple(resolved)


def load_entry_points() -> list[str]:
    """Import every module named in the ``sdebench.plugins`` entry-point group of the installed packages."""
    names = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        field = f"entry point {entry.name!r} ({entry.value})"
        names.append(load(entry.module, field))
    return names
