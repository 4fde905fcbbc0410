"""Fingerprints of the code that computes a result, so that no stored result outlives the code that made it.

A module's fingerprint hashes its syntax tree with docstrings removed (comments and formatting never reach the tree),
so rewording a docstring or reformatting changes nothing, while any change a computation could see does. The
fingerprint of a set of modules covers their *closure*: each module and every sdebench module it imports by name,
transitively. Imports are read from the source without importing anything (so the report can compare a store with
the installed code without loading solvers):

- ``import sdebench.a.b``, ``from sdebench.a import b`` (b a module or a name in ``sdebench/a/__init__.py``) and
  relative imports count, also inside functions (a lazy import is code that runs);
- imports under ``if TYPE_CHECKING:`` do not (annotations compute nothing);
- a package's ``__init__`` counts only where it is imported by name: ``from sdebench.solvers.base import X`` depends
  on ``solvers/base.py``, not on the package hub that re-exports it, and the registration hook
  :func:`sdebench.registry.import_modules` is not followed (one solver's file does not depend on another's).

Modules outside the sdebench package (a user's plugin) are fingerprinted the same way, from the file Python would
import them from; their own imports of sdebench modules are followed too.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import sdebench

PACKAGE = "sdebench"
_ROOT = Path(sdebench.__file__).resolve().parent
#: Hex digits kept of a module's hash (64 bits: collisions between two versions of one module are not a concern).
DIGITS = 16


def module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of module ``name`` (None when there is none): inside the package, looked up on disk under
    ``root`` without importing anything; outside it, where Python would import it from."""
    parts = name.split(".")
    if parts[0] == PACKAGE:
        base = (root or _ROOT).joinpath(*parts[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module, name: str, is_package: bool, root: Path | None) -> set[str]:
    """Names of the sdebench modules that module ``name`` imports (see the module docstring)."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                source = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == PACKAGE:
                # `from sdebench.a import b`: on module b itself when b is a module, else on sdebench/a's code
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    found.add(submodule if module_file(submodule, root) else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    # `import sdebench` alone names the version module; keep only modules that have a file.
    return {m for m in found if m != name and module_file(m, root) is not None}


@cache
def _parsed(path: Path, mtime_ns: int) -> tuple[str, ast.Module]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    digest = hashlib.sha256(ast.dump(_strip_docstrings(ast.parse(source)), annotate_fields=False).encode())
    return digest.hexdigest()[:DIGITS], tree


def module_hash(name: str, root: Path | None = None) -> str | None:
    """The hash of one module's code (docstrings, comments and layout left out); None when it has no source."""
    path = module_file(name, root)
    if path is None:
        return None
    return _parsed(path, path.stat().st_mtime_ns)[0]


def closure(names: Iterable[str], root: Path | None = None) -> dict[str, str | None]:
    """Every module the given modules depend on (themselves included), each with its :func:`module_hash`."""
    pending = list(dict.fromkeys(names))
    out: dict[str, str | None] = {}
    while pending:
        name = pending.pop()
        if name in out:
            continue
        path = module_file(name, root)
        if path is None:
            out[name] = None
            continue
        digest, tree = _parsed(path, path.stat().st_mtime_ns)
        out[name] = digest
        pending.extend(_imported(tree, name, path.name == "__init__.py", root) - out.keys())
    return dict(sorted(out.items()))


def combine(hashes: dict[str, str | None]) -> str:
    """One fingerprint for a set of module hashes (order-independent)."""
    text = "\n".join(f"{name}={digest}" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGITS]


def changed_modules(recorded: dict[str, str | None], root: Path | None = None) -> list[str]:
    """The recorded modules whose installed code differs (or that no longer exist), sorted."""
    return sorted(name for name, digest in recorded.items() if module_hash(name, root) != digest)
