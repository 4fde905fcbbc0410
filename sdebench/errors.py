"""The one exception type for user mistakes, and the one for solvers that blow up."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; the CLI prints ``error: <field>: <message>`` and exits 2."""

    def __init__(self, field: str, message: str, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        #: Further (field, message) errors found in the same validation pass (the CLI prints one line each).
        self.more = list(more or [])

    def lines(self) -> list[str]:
        """``field: message`` for this error and every further one."""
        return [f"{self.field}: {self.message}"] + [f"{f}: {m}" for f, m in self.more]


class DivergedError(RuntimeError):
    """A solver produced NaN or inf. A result to record (status "diverged"), not a crash."""


def check(condition: bool, field: str, message: str) -> None:
    """Raise :class:`UserError` for ``field`` unless ``condition`` holds."""
    if not condition:
        raise UserError(field, message)
