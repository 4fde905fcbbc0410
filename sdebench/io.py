"""Writing output files atomically: a failure (or a kill) never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sdebench.errors import UserError, check


def check_writable(path: str | Path, field: str) -> Path:
    """Validate an output path before any work: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    check(parent.is_dir(), field, f"folder {str(parent)!r} does not exist")
    check(os.access(parent, os.W_OK), field, f"folder {str(parent)!r} is not writable")
    check(not path.is_dir(), field, f"{str(path)!r} is a folder")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on failure removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move the result to ``path`` only if it succeeded."""
    with atomic_path(path) as tmp:
        write(tmp)


def read_toml(path: str | Path, field: str = "config") -> dict:
    """Parse a TOML file; an unreadable, non-UTF-8 or malformed file is a :class:`UserError` on ``field``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(field, f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(field, f"{str(path)!r} is not a UTF-8 text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(field, f"malformed TOML in {str(path)!r}: {exc}") from None
