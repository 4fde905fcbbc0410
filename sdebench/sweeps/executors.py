"""Executors behind one interface: ``submit`` a call, ``wait_first`` for any to finish, ``close``.

Workers only compute; the client (the sweep process) writes the store, so there is one writer per sweep.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from sdebench.errors import UserError, check

EXECUTORS = ("serial", "pool", "dask")


class SerialExecutor:
    """Runs each call at once in this process (the reference every other executor must match)."""

    name = "serial"
    workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Call ``fn(*args)`` now; return a finished future."""
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def wait_first(self, futures: set) -> tuple[set, set]:
        """Every future here is already finished."""
        return set(futures), set()

    def close(self) -> None:
        """Nothing to release."""


#: Thread pools of the numeric libraries, limited to one thread in every worker: N workers on N cores, none
#: oversubscribed. They are read when a library loads, so they must be in the environment a worker starts with.
SINGLE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class PoolExecutor:
    """A local pool of ``workers`` processes (spawned: a forked torch can deadlock on its thread pool)."""

    name = "pool"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        os.environ.update(SINGLE_THREAD_ENV)  # inherited by the spawned workers (this process only waits)
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)`` on the pool."""
        return self.pool.submit(fn, *args)

    def wait_first(self, futures: set) -> tuple[set, set]:
        """Block until at least one future is done."""
        done, pending = wait(futures, return_when=FIRST_COMPLETED)
        return set(done), set(pending)

    def close(self) -> None:
        """Stop the workers (queued calls are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Dask distributed: an existing scheduler at ``address``, or a local cluster of ``workers`` processes on
    loopback (one thread each). The package must be importable on the workers; checkpoints travel by path."""

    name = "dask"

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - dask is a dependency
            raise UserError("executor", "needs the 'distributed' package: pip install 'dask[distributed]'") from None
        self.cluster = None
        if address is None:
            import dask

            # Dask's own pre-spawn environment is these three plus MALLOC_TRIM_THRESHOLD_=65536, which hands freed
            # memory back to the system at once: every n × 64 activation of the score network then page-faulted
            # afresh, half the task thread's time went to the kernel, and the default sweep took 2.05× the pool's.
            with dask.config.set({"distributed.nanny.pre-spawn-environ": SINGLE_THREAD_ENV}):
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=40,  # logging.ERROR
                )
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(address, timeout=10)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError("scheduler", f"cannot reach {address!r}: {exc}") from None
        self.workers = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Send ``fn(*args)`` to the cluster (pure=False: every submission runs)."""
        return self.client.submit(fn, *args, pure=False)

    def wait_first(self, futures: set) -> tuple[set, set]:
        """Block until at least one future is done."""
        from distributed import wait as dask_wait

        done, pending = dask_wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this executor started it."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def check_executor(name: str, workers: int, scheduler: str | None = None) -> None:
    """Raise :class:`UserError` for executor options that do not fit together (before any work is done)."""
    check(name in EXECUTORS, "executor", f"unknown {name!r} (valid: {', '.join(EXECUTORS)})")
    check(isinstance(workers, int) and workers >= 1, "workers", f"must be an integer ≥ 1, got {workers!r}")
    check(scheduler is None or name == "dask", "scheduler", "applies only with --executor dask")
    check(name != "serial" or workers == 1, "workers", "the serial executor runs one at a time; use --executor pool")


def make_executor(name: str, workers: int, scheduler: str | None = None) -> Any:
    """The executor ``name`` with ``workers`` processes (``scheduler``: an existing Dask cluster's address)."""
    check_executor(name, workers, scheduler)
    if name == "serial":
        return SerialExecutor()
    if name == "pool":
        return PoolExecutor(workers)
    return DaskExecutor(workers, scheduler)
