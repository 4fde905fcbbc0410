"""Running sweeps: resumable after SIGKILL, safe with two sweeps on one store, identical on every executor.

The sweeps here are small (n = 2000, a handful of solvers) so that the whole file runs in well under a minute;
each property is checked against an uninterrupted serial run of the same config, number for number.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sdebench.cli import main
from sdebench.sweeps import Store, load_sweep

# ~40 runs of 0.02–0.3 s each: long enough to be killed mid-way several times.
KILL_SWEEP = """
[[sweep]]
problems = ["ve-gmm2"]
solvers = [{ name = "em" }, { name = "edm-heun" }, { name = "pc", snr = [0.08, 0.16] }]
budgets = [32, 64, 128, 256]
seeds = [0, 1]
n = [2000]
metrics = ["sliced_wasserstein", "mode_balance", "energy"]
"""

SMALL_SWEEP = """
[[sweep]]
problems = ["ve-gmm2"]
solvers = [{ name = "em" }, { name = "dpmpp-2m", grid = "log-sigma" }, { name = "torchsde-srk" }]
budgets = [16, 32]
seeds = [0, 1]
n = [2000]

[[sweep]]
problems = ["ve-gmm2"]
solvers = [{ name = "scipy-rk45" }, { name = "ggf" }]
tolerances = [0.1]
seeds = [0]
n = [2000]
"""

# The Langevin corrector's step is 2·(snr·‖z‖/‖s‖)²: with snr = 1e100 the samples overflow to inf within a few steps
# (with 1e30 they merely reach 1e57, finite, and are stored as a bad but ok result).
DIVERGING_SWEEP = """
[[sweep]]
problems = ["ve-gmm2"]
solvers = [{ name = "pc", snr = 1e100 }, { name = "em" }]
budgets = [40]
seeds = [0, 1]
n = [1000]
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def sweep_cli(*args) -> list[str]:
    return [sys.executable, "-m", "sdebench.cli", "sweep", *map(str, args), "--quiet"]


def stored(path: Path) -> dict[str, tuple]:
    """Every run's status, metrics and NFE by key (what must not depend on how the sweep was executed)."""
    with Store(path, readonly=True) as store:
        assert store.integrity() == "ok"
        return {r["key"]: (r["status"], r["metrics"], r["nfe"]) for r in store.runs()}


def row_count(path: Path) -> tuple[int, int]:
    """(rows, distinct keys) in the store; (0, 0) while a starting sweep has not yet created its tables."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone()
    except sqlite3.OperationalError:
        return (0, 0)


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[Path, dict]:
    """Uninterrupted serial runs of each config, computed in-process once."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for name, text in (("kill", KILL_SWEEP), ("small", SMALL_SWEEP)):
        config = write(root, text, f"{name}.toml")
        assert main(["sweep", str(config), "--store", str(root / f"{name}.db"), "--quiet"]) == 0
        out[name] = stored(root / f"{name}.db")
    return out


def test_rerun_skips_finished_runs(tmp_path, reference_runs, capsys):
    config = write(tmp_path, SMALL_SWEEP)
    store = tmp_path / "runs.db"
    assert main(["sweep", str(config), "--store", str(store), "--quiet"]) == 0
    assert stored(store) == reference_runs["small"]
    capsys.readouterr()
    assert main(["sweep", str(config), "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    total = len(load_sweep(config))
    assert f"{total} runs: nothing new; {total} skipped" in out
    assert main(["sweep", str(config), "--store", str(store), "--dry-run"]) == 0
    assert f"{total} runs: {total} done, 0 diverged, 0 failed, 0 pending" in capsys.readouterr().out


def test_sigkill_then_rerun_gives_every_run_once_with_identical_numbers(tmp_path, reference_runs):
    config = write(tmp_path, KILL_SWEEP)
    store = tmp_path / "runs.db"
    rng = random.Random(2026)
    kills = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(8):
        process = subprocess.Popen(sweep_cli(config, "--store", store), env=env, stderr=subprocess.DEVNULL)
        # wait until the store exists and holds a run, then kill at a random moment a little later
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if store.exists() and row_count(store)[0] > 0:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is not None:
            break  # finished before the kill
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        if kills >= 3:
            break
    assert kills >= 3, "the sweep finished before it could be killed three times"
    count, distinct = row_count(store)
    assert 0 < count < len(reference_runs["kill"]), "the kills should have left the sweep part-done"
    final = subprocess.run(sweep_cli(config, "--store", store), env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    count, distinct = row_count(store)
    assert count == distinct == len(reference_runs["kill"])
    assert stored(store) == reference_runs["kill"]


def test_two_sweeps_at_once_on_one_store(tmp_path, reference_runs):
    config = write(tmp_path, KILL_SWEEP)
    store = tmp_path / "runs.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(sweep_cli(config, "--store", store), env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    count, distinct = row_count(store)
    assert count == distinct == len(reference_runs["kill"])
    assert stored(store) == reference_runs["kill"]
    # each run was stored by exactly one of the two sweeps (the other skipped it or found it stored)
    with Store(store, readonly=True) as s:
        assert {r["attempts"] for r in s.runs()} == {1}


@pytest.mark.parametrize("executor", ["pool", "dask"])
def test_executors_give_identical_numbers(tmp_path, reference_runs, executor):
    config = write(tmp_path, SMALL_SWEEP)
    store = tmp_path / "runs.db"
    args = ["sweep", str(config), "--store", str(store), "--workers", "2", "--executor", executor, "--quiet"]
    assert main(args) == 0
    assert stored(store) == reference_runs["small"]
    with Store(store, readonly=True) as s:
        pids = {r["env"]["pid"] for r in s.runs()}
    assert os.getpid() not in pids, "runs should have been computed by worker processes"


def test_seed_depends_on_run_not_on_order(tmp_path, reference_runs):
    """The same run inside a differently ordered, smaller sweep gives the same numbers."""
    reordered = SMALL_SWEEP.replace('{ name = "em" }, { name = "dpmpp-2m", grid = "log-sigma" }', '{ name = "em" }')
    reordered = reordered.replace("seeds = [0, 1]", "seeds = [1, 0]")
    config = write(tmp_path, reordered)
    assert main(["sweep", str(config), "--store", str(tmp_path / "r.db"), "--quiet"]) == 0
    mine = stored(tmp_path / "r.db")
    assert mine and all(reference_runs["small"][k] == v for k, v in mine.items())


def test_diverged_run_is_stored_and_sweep_completes(tmp_path, capsys):
    config = write(tmp_path, DIVERGING_SWEEP)
    store = tmp_path / "runs.db"
    assert main(["sweep", str(config), "--store", str(store), "--quiet"]) == 0
    with Store(store, readonly=True) as s:
        runs = {(r["solver"], r["seed"]): r for r in s.runs()}
    assert len(runs) == 4
    assert {runs["pc", seed]["status"] for seed in (0, 1)} == {"diverged"}
    assert "NaN" in runs["pc", 0]["error"] or "inf" in runs["pc", 0]["error"]
    assert {runs["em", seed]["status"] for seed in (0, 1)} == {"ok"}
    assert "2 ok, 2 diverged" in capsys.readouterr().out
    # diverged runs are skipped on a rerun, and rerun (diverging again) with --retry-failed
    assert main(["sweep", str(config), "--store", str(store), "--quiet"]) == 0
    assert "4 skipped" in capsys.readouterr().out
    assert main(["sweep", str(config), "--store", str(store), "--quiet", "--retry-failed"]) == 0
    assert "2 diverged; 2 skipped" in capsys.readouterr().out
    with Store(store, readonly=True) as s:
        assert {r["attempts"] for r in s.runs() if r["solver"] == "pc"} == {2}
    # and the report shows them as diverged
    out = tmp_path / "report"
    assert main(["report", "--store", str(store), "--out", str(out)]) == 0
    table = (out / "ve-gmm2" / "table.md").read_text()
    assert "diverged (2/2)" in table
    assert "diverged" in (out / "index.html").read_text()
    # default metrics include a mode's spread, so the second work-precision plot is there too
    assert (out / "ve-gmm2" / "work_precision_mode_std.png").read_bytes().startswith(b"\x89PNG")


def test_keep_samples_saves_npy_beside_store(tmp_path):
    config = write(tmp_path, DIVERGING_SWEEP.replace('{ name = "pc", snr = 1e100 }, ', ""))
    store = tmp_path / "runs.db"
    assert main(["sweep", str(config), "--store", str(store), "--quiet", "--keep-samples"]) == 0
    with Store(store, readonly=True) as s:
        for run in s.runs():
            samples = np.load(run["samples_path"])
            assert samples.shape == (1000, 2) and samples.dtype == np.float64
            assert Path(run["samples_path"]).parent == tmp_path / "runs.db.samples"
            np.testing.assert_array_equal(samples.astype(np.float32), s.preview(run["key"]))


# -- bad input: exit 2, one line naming the field, nothing written ---------------------------------------------------
ARCH_FIELD = "sweep[0].scores[0].arch_options.width"
GOOD_BLOCK = '[[sweep]]\nproblems = ["ve-gmm2"]\nsolvers = [{ name = "em" }]\nbudgets = [8]\nn = [100]\n'


@pytest.mark.parametrize(
    "text, field, mention",
    [
        (GOOD_BLOCK.replace('"em"', '"emm"'), "sweep[0].solvers[0].name", "unknown solver"),
        (GOOD_BLOCK.replace('"ve-gmm2"', '"ve-gmm3"'), "sweep[0].problems[0]", "ve-gmm3"),
        (GOOD_BLOCK.replace("n = [100]", 'n = ["many"]'), "sweep[0].n[0]", "must be an integer"),
        (GOOD_BLOCK.replace("budgets = [8]", "budgets = [-8]"), "sweep[0].budgets[0]", "must be > 0"),
        (GOOD_BLOCK.replace('{ name = "em" }', '{ name = "pc", snr = [0.1, -1.0] }'), "sweep[0].solvers[0].snr[1]", ""),
        (GOOD_BLOCK.replace("budgets = [8]", "budgets = []"), "sweep[0].budgets", "empty grid"),
        (GOOD_BLOCK + "colour = 1\n", "sweep[0].colour", "unknown key"),
        (GOOD_BLOCK + 'scores = [{ name = "trained", stepz = 3 }]\n', "sweep[0].scores[0].stepz", "unknown key"),
        (GOOD_BLOCK + 'scores = [{ name = "trained", lr = -1.0 }]\n', "sweep[0].scores[0].lr", "must be > 0"),
        (GOOD_BLOCK + 'scores = [{ name = "trained", arch = "cnn" }]\n', "sweep[0].scores[0].arch", "cnn"),
        (GOOD_BLOCK.replace("[[sweep]]", "[[sweep]"), "", "malformed TOML"),
        (GOOD_BLOCK + 'scores = [{ name = "trained", arch_options = { width = "x" } }]\n', ARCH_FIELD, "integer"),
        (GOOD_BLOCK.replace("n = [100]", "n = [1]"), "sweep[0].n[0]", "must be >= 2"),
        (GOOD_BLOCK.replace("[[sweep]]", "[sweep]"), "sweep", "write [[sweep]]"),
    ],
    ids=[
        "solver",
        "problem",
        "type",
        "range",
        "param-range",
        "empty",
        "key",
        "score-key",
        "lr",
        "arch",
        "toml",
        "arch-option",
        "n",
        "table",
    ],
)
def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys, text, field, mention):
    from tests.test_cli_errors import assert_fails

    config = write(tmp_path, text)
    store = tmp_path / "runs.db"
    args = ["sweep", config, "--store", store]
    assert_fails(args, capsys, tmp_path, field or str(config), mention, prefix=bool(field))
    assert not store.exists()


def test_unreadable_config_and_foreign_store(tmp_path, capsys):
    from tests.test_cli_errors import assert_fails

    assert_fails(["sweep", tmp_path / "missing.toml", "--store", tmp_path / "r.db"], capsys, tmp_path, "config")
    config = write(tmp_path, GOOD_BLOCK)
    foreign = tmp_path / "notes.db"
    foreign.write_text("these are my notes\n")
    assert_fails(["sweep", config, "--store", foreign], capsys, tmp_path, "store", "not an sdebench store")
    assert foreign.read_text() == "these are my notes\n"
    assert_fails(["report", "--store", foreign, "--out", tmp_path / "rep"], capsys, tmp_path, "store")
    assert_fails(["report", "--store", tmp_path / "none.db", "--out", tmp_path / "rep"], capsys, tmp_path, "store")


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--workers", "0"], "workers"),
        (["--executor", "cluster"], "executor"),
        (["--scheduler", "tcp://127.0.0.1:1"], "scheduler"),
        (["--executor", "serial", "--workers", "2"], "workers"),
    ],
)
def test_bad_executor_options(tmp_path, capsys, extra, field):
    from tests.test_cli_errors import assert_fails

    config = write(tmp_path, GOOD_BLOCK)
    assert_fails(["sweep", config, "--store", tmp_path / "runs.db", *extra], capsys, tmp_path, field)


def test_networks_train_side_by_side_to_the_serial_weights(tmp_path, monkeypatch):
    """With a pool of 2, the two networks a sweep needs train one per worker (single-threaded there): the
    checkpoints are the ones serial training writes, at the same cache paths, weight for weight."""
    from sdebench.sweeps import sweep as sweep_module
    from sdebench.sweeps.executors import make_executor
    from sdebench.sweeps.sweep import prepare_scores

    text = """
[[sweep]]
problems = ["ve-gmm2", "vp-gmm2"]
scores = [{ name = "trained", steps = 30, batch_size = 64 }]
solvers = [{ name = "em" }]
budgets = [8]
seeds = [0]
n = [500]
"""
    runs = load_sweep(write(tmp_path, text))
    serial = prepare_scores(runs, tmp_path / "serial", progress=False)
    executor = make_executor("pool", 2)

    def not_here(*args, **kwargs):
        raise AssertionError("with a pool the networks must train in its workers, not in the sweep's process")

    monkeypatch.setattr(sweep_module, "load_or_train", not_here)  # the spawned workers import it afresh
    try:
        pooled = prepare_scores(runs, tmp_path / "pool", progress=False, executor=executor)
    finally:
        executor.close()
    assert len(serial) == 2 and serial.keys() == pooled.keys()
    for key in serial:
        assert Path(serial[key]).name == Path(pooled[key]).name and serial[key] != pooled[key]
        digests = [torch.load(p, weights_only=True)["weights_sha256"] for p in (serial[key], pooled[key])]
        assert digests[0] == digests[1]


def test_a_run_computes_on_one_thread_in_any_process(monkeypatch):
    """A run sees one BLAS and one torch thread wherever it executes (here: the serial executor, in this process,
    whose BLAS would otherwise use every core): with numpy's BLAS on 2 threads scipy-rk45 took other steps
    (7e-15 apart) than in a pool worker. The process's own counts come back afterwards."""
    from threadpoolctl import threadpool_info

    from sdebench.sweeps import expand_sweep, runner

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen = []
    original = runner.compute_metrics

    def probe(*args, **kwargs):
        seen.append((blas_threads(), torch.get_num_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "compute_metrics", probe)
    before = (blas_threads(), torch.get_num_threads())
    (spec,) = expand_sweep(
        {"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "budgets": [8], "n": [50]}]}
    )
    assert runner.execute(spec).status == "ok"
    assert seen and set(map(str, seen)) == {str(({1}, 1))}
    assert (blas_threads(), torch.get_num_threads()) == before
