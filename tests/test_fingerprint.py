"""Runs are keyed by the code that computes them: a changed solver is run again, a reworded docstring is not.

The end-to-end test works on a temporary copy of the package (run in subprocesses with the copy first on the path),
edits a solver's source there and sweeps again; the installed package is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import sdebench
from sdebench.fingerprint import changed_modules, closure, combine, module_hash
from sdebench.reports import build_report
from sdebench.sweeps import Store, expand_sweep
from sdebench.sweeps.runner import execute

PACKAGE = Path(sdebench.__file__).resolve().parent


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture()
def fake_package(tmp_path: Path) -> Path:
    """A tiny package laid out like sdebench: a hub __init__, modules importing each other in every style."""
    root = tmp_path / "sdebench"
    write(root, "__init__.py", '"""hub"""\n')
    write(root, "core.py", '"""core"""\nVALUE = 1\n')
    write(root, "typing_only.py", "X = 1\n")
    write(root, "lazy.py", "Y = 2\n")
    write(root, "pkg/__init__.py", "from sdebench.pkg.helper import H\n")
    write(root, "pkg/helper.py", "from .. import core\nH = core.VALUE\n")
    write(root, "pkg/other.py", "Z = 3\n")
    write(
        root,
        "solver.py",
        '''
        """A solver."""
        from typing import TYPE_CHECKING

        from sdebench.pkg.helper import H

        if TYPE_CHECKING:
            from sdebench import typing_only


        def run():
            """Docstring."""
            from sdebench import lazy

            return H + lazy.Y
        ''',
    )
    return root


def test_closure_follows_imports_by_name_only(fake_package: Path) -> None:
    """Direct, relative and lazy imports count; TYPE_CHECKING imports and unimported siblings do not; a package hub
    counts only where it is imported by name."""
    found = closure(["sdebench.solver"], root=fake_package)
    assert set(found) == {"sdebench.solver", "sdebench.pkg.helper", "sdebench.core", "sdebench.lazy"}
    assert set(closure(["sdebench.pkg"], root=fake_package)) == {"sdebench.pkg", "sdebench.pkg.helper", "sdebench.core"}


def test_hash_ignores_docstrings_comments_and_layout_but_not_code(fake_package: Path) -> None:
    """Rewording a docstring, adding a comment or reflowing a line keeps the hash; renaming a variable changes it."""
    before = module_hash("sdebench.solver", root=fake_package)
    path = fake_package / "solver.py"
    path.write_text(
        path.read_text().replace('"""Docstring."""', '"""Reworded, at length."""  # and a comment')
        + "\n\n# trailing comment\n"
    )
    assert module_hash("sdebench.solver", root=fake_package) == before
    path.write_text(path.read_text().replace("return H + lazy.Y", "total = H + lazy.Y\n    return total"))
    assert module_hash("sdebench.solver", root=fake_package) != before


def test_dependency_change_changes_the_fingerprint(fake_package: Path) -> None:
    """A change in an imported module changes the closure's fingerprint and is named by changed_modules."""
    recorded = closure(["sdebench.solver"], root=fake_package)
    (fake_package / "core.py").write_text("VALUE = 2\n")
    assert combine(closure(["sdebench.solver"], root=fake_package)) != combine(recorded)
    assert changed_modules(recorded, root=fake_package) == ["sdebench.core"]
    (fake_package / "lazy.py").unlink()
    assert changed_modules(recorded, root=fake_package) == ["sdebench.core", "sdebench.lazy"]


def test_run_code_covers_the_solver_the_score_and_the_metrics_but_not_other_solvers() -> None:
    """A run's code is its solver's module, the harness with the problems and scores, and its metrics' modules."""
    (spec,) = expand_sweep(
        {"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "metrics": ["sliced_wasserstein"]}]}
    )
    assert "sdebench.solvers.euler_maruyama" in spec.code and "sdebench.metrics.sliced" in spec.code
    assert {"sdebench.sweeps.runner", "sdebench.scores.exact", "sdebench.problems.sde"} <= set(spec.code)
    assert "sdebench.solvers.fast" not in spec.code and "sdebench.metrics.kernel" not in spec.code
    assert "sdebench.reports.report" not in spec.code and "sdebench.cli" not in spec.code
    assert all(spec.code.values())


def test_no_solver_depends_on_another_solvers_module() -> None:
    """A fix to one solver's file redoes only that solver's runs: shared helpers live in solvers/base.py, so no
    solver module imports another (found on an asymmetric 3-D sweep: an edit of em's file made dpmpp-2m, srk and
    rk45 stale, through em's initial_state)."""
    from sdebench.solvers import SOLVERS

    modules = {cls.__module__ for _, cls in SOLVERS.items()}
    for module in sorted(modules):
        assert set(closure([module])) & modules == {module}, module


def test_a_worker_with_other_code_refuses_the_run() -> None:
    """A worker whose code differs from the code a run is keyed by stores it as failed, naming the module: its
    numbers would otherwise be filed under code that did not make them."""
    (spec,) = expand_sweep({"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "n": [10]}]})
    tampered = dict(spec.code, **{"sdebench.solvers.euler_maruyama": "0" * 16})
    other = type(spec)(**{**spec.__dict__, "code": tampered})
    result = execute(other)
    assert result.status == "failed"
    assert "sdebench.solvers.euler_maruyama" in result.error and "same sdebench on every worker" in result.error


SWEEP_TOML = """
[[sweep]]
problems = ["ve-gmm2"]
solvers = [{ name = "em" }]
budgets = [8]
n = [200]
metrics = ["sliced_wasserstein"]
"""


def _sweep(copy_root: Path, work: Path) -> str:
    """Run 'sdebench sweep' with the package copy first on the path; return its summary line."""
    env = {**os.environ, "PYTHONPATH": str(copy_root), "SDEBENCH_CACHE": str(work / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "sdebench.cli", "sweep", "sweep.toml", "--store", "runs.db", "--quiet"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[0]


def test_a_changed_solver_is_run_again_and_the_report_flags_the_old_code(tmp_path: Path) -> None:
    """On a copy of the package: a docstring edit reuses the stored run; a code edit (a renamed variable, which
    changes no arithmetic) makes the sweep run it again, with the same numbers, since randomness comes from the config;
    the report shows only the newest run, and a report by other code (this checkout) flags it."""
    copy_root = tmp_path / "copy"
    shutil.copytree(PACKAGE, copy_root / "sdebench", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.toml").write_text(SWEEP_TOML)
    em = copy_root / "sdebench" / "solvers" / "euler_maruyama.py"

    assert re.search(r"1 runs: 1 ok; 0 skipped", _sweep(copy_root, work))
    em.write_text(em.read_text().replace("Hand-written Euler–Maruyama", "Euler–Maruyama, written by hand"))
    assert re.search(r"1 runs: nothing new; 1 skipped", _sweep(copy_root, work))
    source = em.read_text()
    assert source.count("drift = reverse.drift(x, t_cur)") == 1
    em.write_text(
        source.replace("drift = reverse.drift", "step_drift = reverse.drift").replace("(drift,", "(step_drift,")
    )
    assert re.search(r"1 runs: 1 ok; 0 skipped", _sweep(copy_root, work))

    with Store(work / "runs.db", readonly=True) as store:
        runs = store.runs()
    assert len(runs) == 2 and runs[0]["config_key"] == runs[1]["config_key"] and runs[0]["key"] != runs[1]["key"]
    old, new = sorted(runs, key=lambda r: r["created"])
    assert old["metrics"] == new["metrics"]  # same config, same randomness, same arithmetic
    assert old["code"]["sdebench.solvers.euler_maruyama"] != new["code"]["sdebench.solvers.euler_maruyama"]
    assert changed_modules(new["code"], root=copy_root / "sdebench") == []

    # This checkout's report: the shown run was made by other code (the edited copy), the older one is superseded.
    build_report(work / "runs.db", work / "report")
    page = (work / "report" / "index.html").read_text()
    assert "1 of 1 runs were made by other code" in page and "sdebench.solvers.euler_maruyama (1 runs)" in page
    assert "1 earlier runs of the same configs by older code" in page
    table = (work / "report" / "ve-gmm2" / "table.md").read_text()
    assert "| code |" in table and "other (1/1)" in table
    assert pd.read_csv(work / "report" / "ve-gmm2" / "table.csv")["stale_runs"].tolist() == [1]


def test_dry_run_calls_a_config_stored_by_other_code_stale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A stored run of the same config made by other code does not count as done: --dry-run says 'stale'."""
    from sdebench.cli import main

    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP_TOML)
    (spec,) = expand_sweep(tomllib.loads(SWEEP_TOML))
    older = dict(spec.code, **{"sdebench.solvers.euler_maruyama": "0" * 16})
    old_spec = type(spec)(**{**spec.__dict__, "code": older, "key": "0" * 64})
    with Store(tmp_path / "runs.db") as store:
        store.record(old_spec.result(metrics={"sw1": 0.1}, floors={"sw1": [0.1, 0.0, 5]}))
    assert main(["sweep", str(config), "--store", str(tmp_path / "runs.db"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " stale " in out and "1 pending (1 of them stale: stored, but made by other code)" in out
