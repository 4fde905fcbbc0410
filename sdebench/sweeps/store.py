"""The run store: one SQLite file (WAL mode), one row per run keyed by its config and the code that computed it.

Each row keeps the run's ``config_key`` (its resolved config's hash), ``code`` (the hash of every module that computed
it, see :mod:`sdebench.fingerprint`) and ``info`` (the configured solver's kind, adaptivity, declared orders and
labels, and the declarations of its metrics' outputs: titles, directions), so that reports need nothing but the
store. A run of the same config by other code has another key: it is
stored beside the old one, never over it.

A ``meta`` table marks the file as an sdebench store (``app = sdebench``, ``format = 3``); any other file is refused
without being touched. Each result is written in one ``BEGIN IMMEDIATE`` transaction, so a killed process leaves
either the whole row or nothing, and two sweeps writing at once wait for each other (``busy_timeout``) instead of
failing. A finished ``ok`` run is never overwritten; a ``failed`` or ``diverged`` one may be replaced by a retry.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdebench.errors import UserError, check

APP = "sdebench"
FORMAT = "3"
#: What older formats lacked, for the message that refuses them.
_FORMAT_CHANGES = {
    "1": "its runs are not keyed by the code that made them",
    "2": "its runs lack the ε-truncation term of the error budget",
}
STATUSES = ("ok", "diverged", "failed")
_BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    config_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    problem TEXT NOT NULL,
    score TEXT NOT NULL,
    solver TEXT NOT NULL,
    budget REAL,
    seed INTEGER NOT NULL,
    n INTEGER NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    floors TEXT NOT NULL,
    truncation TEXT NOT NULL,
    nfe REAL,
    nfe_per_sample REAL,
    wall_s REAL,
    metrics_s REAL,
    error TEXT,
    env TEXT NOT NULL,
    code TEXT NOT NULL,
    info TEXT NOT NULL,
    samples_path TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_config ON runs (config_key);
CREATE TABLE IF NOT EXISTS previews (key TEXT PRIMARY KEY, rows INTEGER NOT NULL, cols INTEGER NOT NULL,
                                     data BLOB NOT NULL);
"""


@dataclass
class RunResult:
    """What one run produced; the store keeps all of it (the preview in its own table)."""

    key: str
    status: str
    config: dict[str, Any]
    config_key: str = ""
    code: dict[str, str | None] = field(default_factory=dict)  # module -> hash of its code
    #: The configured solver's kind, orders and labels; ``outputs``: the metrics' output declarations.
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    floors: dict[str, list[float]] = field(default_factory=dict)  # name -> [mean, CI half-width, draws]
    #: ε-truncation: each metric for exact draws of p_data (not p_ε) against p_ε, as [mean, CI half-width, draws].
    truncation: dict[str, list[float]] = field(default_factory=dict)
    nfe: float | None = None
    nfe_per_sample: float | None = None
    wall_s: float | None = None
    metrics_s: float | None = None
    error: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    preview: np.ndarray | None = None  # float32 (rows, ≤ 2): what the report's density pictures show
    samples: np.ndarray | None = None  # all samples, only when the sweep keeps them
    samples_path: str | None = None


class EmptyStoreError(UserError):
    """A SQLite file with no tables yet: refused by reports, but to a sweep it is a store another sweep is making."""


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _json(value: Any) -> str:
    # NaN and inf are not JSON; a diverged metric is stored as null.
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), sort_keys=True)


class Store:
    """An sdebench run store at ``path``; ``readonly`` opens an existing store without ever writing to it."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._check_file()
        uri = f"file:{self.path.resolve()}?mode={'ro' if readonly else 'rwc'}"
        self.conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        try:
            tables = {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            self.conn.close()
            raise UserError("store", f"{str(self.path)!r} is not an sdebench store (not a SQLite database)") from None
        if tables:
            self._check_meta(tables)
        elif readonly:
            self.conn.close()
            raise EmptyStoreError("store", f"{str(self.path)!r} is an empty database, not an sdebench store")
        if not readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a kill loses no committed row
            # One transaction: a second sweep creating the same store at the same moment waits, then finds it made.
            self.conn.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} "
                f"INSERT OR IGNORE INTO meta VALUES ('app', '{APP}'), ('format', '{FORMAT}'); COMMIT;"
            )

    def _check_file(self) -> None:
        if self.path.exists():
            check(self.path.is_file(), "store", f"{str(self.path)!r} is not a file")
            if self.path.stat().st_size and not _is_sqlite(self.path):
                raise UserError("store", f"{str(self.path)!r} is not an sdebench store (not a SQLite database)")
        else:
            check(not self.readonly, "store", f"no such file {str(self.path)!r}")
            parent = self.path.parent if str(self.path.parent) else Path(".")
            check(parent.is_dir(), "store", f"folder {str(parent)!r} does not exist")

    def _check_meta(self, tables: set[str]) -> None:
        meta = dict(self.conn.execute("SELECT name, value FROM meta")) if "meta" in tables else {}
        if meta.get("app") != APP or "runs" not in tables:
            self.conn.close()
            raise UserError("store", f"{str(self.path)!r} is not an sdebench store (it holds other tables)")
        if meta.get("format") != FORMAT:
            self.conn.close()
            why = _FORMAT_CHANGES.get(str(meta.get("format")))
            raise UserError(
                "store",
                f"{str(self.path)!r} has store format {meta.get('format')}, this is {FORMAT}"
                + (f" ({why}): sweep into a new store" if why else ""),
            )

    def close(self) -> None:
        """Close the connection (WAL contents stay safe in the -wal file until the next checkpoint)."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        """Status of every stored run, by key."""
        return dict(self.conn.execute("SELECT key, status FROM runs"))

    def config_keys(self) -> set[str]:
        """The config keys of every stored run, whatever code made it (a run of a config made by other code is
        stale: the sweep redoes it under its new key)."""
        return {row[0] for row in self.conn.execute("SELECT DISTINCT config_key FROM runs")}

    def is_done(self, key: str, retry_failed: bool = False) -> bool:
        """Whether the run needs no (re)computation: stored ok, or stored at all unless failures are retried."""
        row = self.conn.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        if row is None:
            return False
        return row[0] == "ok" or not retry_failed

    def runs(self) -> list[dict[str, Any]]:
        """Every stored run as a dict with its JSON columns decoded (in the order they were first stored)."""
        cursor = self.conn.execute("SELECT * FROM runs ORDER BY created, key")
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            for column in ("config", "metrics", "floors", "truncation", "env", "code", "info"):
                record[column] = json.loads(record[column])
            out.append(record)
        return out

    def preview(self, key: str) -> np.ndarray | None:
        """The stored preview samples of a run (float32, shape (rows, ≤ 2)), if any."""
        row = self.conn.execute("SELECT rows, cols, data FROM previews WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return np.frombuffer(row[2], dtype=np.float32).reshape(row[0], row[1]).copy()

    def integrity(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a sound database."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    @staticmethod
    def peek(path: str | Path) -> tuple[dict[str, str], set[str]]:
        """Statuses by key and config keys of the runs stored at ``path``, read without writing; both empty where no
        store exists yet or another sweep has just created the file and not yet its tables (a race, not an error)."""
        path = Path(path)
        if not path.exists() or path.stat().st_size == 0:
            return {}, set()
        try:
            with Store(path, readonly=True) as store:
                return store.statuses(), store.config_keys()
        except EmptyStoreError:
            return {}, set()

    # -- writing ----------------------------------------------------------------------------------------------------
    def record(self, result: RunResult) -> bool:
        """Store one result atomically; False (nothing written) if the run is already stored as ok."""
        check(not self.readonly, "store", "opened read-only")
        check(result.status in STATUSES, "status", f"unknown {result.status!r}")
        config = result.config
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute("SELECT status, attempts FROM runs WHERE key = ?", (result.key,)).fetchone()
            if row is not None and row[0] == "ok":
                self.conn.execute("ROLLBACK")
                return False
            attempts = 1 if row is None else row[1] + 1
            self.conn.execute(
                "INSERT OR REPLACE INTO runs VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.key,
                    result.config_key,
                    result.status,
                    config["problem"].get("name", "custom"),
                    config["score"]["name"],
                    config["solver"],
                    config["budget"],
                    config["seed"],
                    config["n"],
                    _json(config),
                    _json(result.metrics),
                    _json(result.floors),
                    _json(result.truncation),
                    result.nfe,
                    result.nfe_per_sample,
                    result.wall_s,
                    result.metrics_s,
                    result.error,
                    _json(result.env),
                    _json(result.code),
                    _json(result.info),
                    result.samples_path,
                    attempts,
                    time.time(),
                ),
            )
            self.conn.execute("DELETE FROM previews WHERE key = ?", (result.key,))
            if result.preview is not None:
                preview = np.ascontiguousarray(result.preview, dtype=np.float32)
                self.conn.execute(
                    "INSERT INTO previews VALUES (?, ?, ?, ?)",
                    (result.key, preview.shape[0], preview.shape[1], preview.tobytes()),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return True
