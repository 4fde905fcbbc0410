"""Name → object registries, filled by a decorator (one per kind: problems, scores, solvers, ...)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from sdebench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection; registering a name twice is an error, and a lookup miss lists the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name``."""

        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorate

    def get(self, name: str, field: str | None = None) -> T:
        """The item called ``name``; a :class:`UserError` naming the valid ones if there is none."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UserError(field or self.kind, f"unknown {self.kind} {name!r} (valid: {valid})") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, item) pairs, sorted by name."""
        for name in self.names():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every module of a package, so that each file registers what it defines (one file adds a solver)."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
