"""The SQLite run store: one row per key, ok runs never overwritten, foreign files refused untouched."""

from __future__ import annotations

import hashlib
import math
import sqlite3

import numpy as np
import pytest

from sdebench.errors import UserError
from sdebench.sweeps import RunResult, Store, expand_sweep

SWEEP = {"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "budgets": [8, 16], "n": [100]}]}


@pytest.fixture()
def spec():
    return expand_sweep(SWEEP)[0]


def result(spec, status="ok", **kw) -> RunResult:
    return spec.result(status, **{"metrics": {"sw1": 0.1}, "floors": {"sw1": [0.1, 0, 5]}, **kw})


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_record_once_and_ok_never_overwritten(tmp_path, spec):
    with Store(tmp_path / "runs.db") as store:
        assert store.record(result(spec, metrics={"sw1": 0.1}))
        assert not store.record(result(spec, metrics={"sw1": 0.9}))  # a second ok result is refused
        (row,) = store.runs()
        assert row["metrics"] == {"sw1": 0.1} and row["attempts"] == 1
        assert store.is_done(spec.key) and store.is_done(spec.key, retry_failed=True)
        assert store.integrity() == "ok"


def test_failed_is_replaced_by_retry(tmp_path, spec):
    with Store(tmp_path / "runs.db") as store:
        store.record(result(spec, "failed", metrics={}, error="RuntimeError: boom"))
        assert store.is_done(spec.key) and not store.is_done(spec.key, retry_failed=True)
        assert store.record(result(spec, "ok"))
        (row,) = store.runs()
        assert row["status"] == "ok" and row["attempts"] == 2 and row["error"] is None


def test_non_finite_metrics_stored_as_null_and_preview_roundtrip(tmp_path, spec):
    preview = np.arange(20, dtype=np.float32).reshape(10, 2)
    with Store(tmp_path / "runs.db") as store:
        store.record(result(spec, metrics={"sw1": math.nan, "energy": math.inf, "mmd2": 0.5}, preview=preview))
        assert store.runs()[0]["metrics"] == {"sw1": None, "energy": None, "mmd2": 0.5}
        np.testing.assert_array_equal(store.preview(spec.key), preview)
    # reopened read-only, the same data is there
    with Store(tmp_path / "runs.db", readonly=True) as store:
        assert store.statuses() == {spec.key: "ok"}


def test_row_is_written_in_one_transaction(tmp_path, spec):
    """A failure between the run row and its preview leaves neither (nothing half-written)."""
    with Store(tmp_path / "runs.db") as store:

        class Bad:  # np.ascontiguousarray fails on it after the run row was inserted
            def __array__(self, *a, **k):
                raise RuntimeError("disk full")

        with pytest.raises(RuntimeError):
            store.record(result(spec, preview=Bad()))
        assert store.runs() == [] and store.integrity() == "ok"


@pytest.mark.parametrize(
    "make, mention",
    [
        (lambda p: p.write_text("key,status\n1,ok\n"), "not a SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200), "not a SQLite database"),
        (lambda p: sqlite3.connect(p).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);"), "other tables"),
    ],
    ids=["text", "corrupt-sqlite", "foreign-sqlite"],
)
def test_foreign_files_refused_untouched(tmp_path, make, mention):
    path = tmp_path / "runs.db"
    make(path)
    before, names = digest(path), sorted(p.name for p in tmp_path.iterdir())
    for readonly in (False, True):
        with pytest.raises(UserError) as info:
            Store(path, readonly=readonly)
        assert info.value.field == "store" and mention in info.value.message
    assert digest(path) == before and sorted(p.name for p in tmp_path.iterdir()) == names


def test_other_format_version_refused(tmp_path):
    path = tmp_path / "runs.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'format'")
    with pytest.raises(UserError, match="format 99"):
        Store(path)


def test_readonly_missing_store_creates_nothing(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        Store(tmp_path / "missing.db", readonly=True)
    assert list(tmp_path.iterdir()) == []


def test_store_in_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store(tmp_path / "nope" / "runs.db")
    assert list(tmp_path.iterdir()) == []


def test_store_another_sweep_is_creating_reads_as_no_runs(tmp_path):
    """The moment between a sweep creating the file (WAL header written) and its schema transaction: another
    sweep's pre-check must read it as no runs yet (CI once failed on this race), a report must refuse it."""
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    assert path.stat().st_size > 0
    assert Store.peek(path) == ({}, set())
    assert Store.peek(tmp_path / "missing.db") == ({}, set())
    with pytest.raises(UserError, match="empty database"):
        Store(path, readonly=True)
    with Store(path) as store:  # the writer then makes the store in that same file
        assert store.runs() == []
    assert Store.peek(path) == ({}, set())
