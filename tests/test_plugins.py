"""Plugins: a user's solver and metric from a file or a module, in `sample`, `list` and sweeps on every executor;
bad plugin paths, failing imports and names that clash with a built-in get the one-line error, exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sdebench.cli import main
from sdebench.sweeps import Store

SOLVER = '''"""A user's solver: Euler steps of the probability-flow ODE, one NFE a step."""

import itertools

from sdebench.solvers import FixedStepSolver, register


@register
class PluginEuler(FixedStepSolver):
    """Euler on the probability-flow ODE, from a plugin."""

    name = "{name}"
    kind = "ode"
    strong_order = 1.0
    weak_order = 1.0

    def _solve(self, problem, score, n, generator, brownian):
        flow = problem.sde.probability_flow(score)
        x = self.initial_state(problem, n, generator)
        for t_cur, t_next in itertools.pairwise(self.times(problem)):
            x = x - flow.drift(x, t_cur) * (t_cur - t_next)
        return x, {{"steps": self.options["steps"]}}
'''

METRIC = '''"""A user's metric: the largest |coordinate| among the samples."""

from sdebench.metrics import METRICS


@METRICS.register("{name}")
def spread(samples, reference):
    """max |x| over samples and coordinates."""
    return {{"max_abs": float(samples.abs().max())}}
'''


def write_plugin(folder: Path, filename: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text)
    return path


def test_plugin_solver_is_listed_and_samples_like_a_builtin(tmp_path, capsys):
    """A plugin file's solver shows in ``list`` and samples with its NFE counted like a built-in's; the NFE budget
    option it inherits buys its steps; on a 3-D problem its samples are judged by every default metric."""
    plugin = write_plugin(tmp_path, "my_solver.py", SOLVER.format(name="plugin-euler-a"))
    assert main(["list", "--json", "--plugin", str(plugin)]) == 0
    assert "plugin-euler-a" in json.loads(capsys.readouterr().out)["solvers"]
    common = ["sample", "--problem", "ve-asym3", "--n", "300", "--seed", "4", "--json", "--param", "grid=log-sigma"]
    assert main([*common, "--solver", "plugin-euler-a", "--nfe", "20", "--plugin", str(plugin)]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert mine["nfe"] == 20 and mine["params"]["steps"] == 20
    assert {"sw1", "mode_max_dev_se", "log_density_gap"} <= set(mine["metrics"])


@pytest.mark.parametrize("executor", ["serial", "pool", "dask"])
def test_plugin_solver_and_metric_in_a_sweep_on_every_executor(tmp_path, executor):
    """``plugins = [...]`` in the sweep file (relative to it) reaches the workers: the plugin solver's runs are ok,
    its metric is stored, and serial, pool and Dask store the same numbers."""
    folder = tmp_path / "plugins"
    # one name per test: in one process a second file registering the same name is refused (another plugin's)
    write_plugin(folder, "solver.py", SOLVER.format(name=f"plugin-euler-{executor}"))
    write_plugin(folder, "metric.py", METRIC.format(name=f"plugin_spread_{executor}"))
    config = tmp_path / "sweep.toml"
    config.write_text(
        'plugins = ["plugins/solver.py", "plugins/metric.py"]\n\n[[sweep]]\nproblems = ["ve-gmm2"]\n'
        'solvers = [{ name = "plugin-euler-EXECUTOR" }, { name = "em" }]\nbudgets = [16]\nseeds = [0, 1]\nn = [500]\n'
        'metrics = ["mode_balance", "plugin_spread_EXECUTOR"]\n'.replace("EXECUTOR", executor)
    )
    store = tmp_path / f"{executor}.db"
    workers = ["--workers", "2"] if executor != "serial" else []
    assert main(["sweep", str(config), "--store", str(store), "--executor", executor, *workers, "--quiet"]) == 0
    with Store(store, readonly=True) as s:
        runs = s.runs()
    assert {r["status"] for r in runs} == {"ok"} and len(runs) == 4
    assert all("max_abs" in r["metrics"] for r in runs)
    assert any(name.startswith("sdebench_plugin_solver_") for r in runs for name in r["code"])
    numbers = {r["key"]: r["metrics"] for r in runs}
    reference = tmp_path / "serial-reference.db"
    if executor != "serial":
        assert main(["sweep", str(config), "--store", str(reference), "--quiet"]) == 0
        with Store(reference, readonly=True) as s:
            assert {r["key"]: r["metrics"] for r in s.runs()} == numbers


def test_module_plugin_by_name(tmp_path, monkeypatch, capsys):
    """A plugin given as an importable module name (on sys.path) loads like a file."""
    write_plugin(tmp_path / "mypkg", "__init__.py", "")
    write_plugin(tmp_path / "mypkg", "solvers.py", SOLVER.format(name="plugin-euler-c"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--json", "--plugin", "mypkg.solvers"]) == 0
    assert "plugin-euler-c" in json.loads(capsys.readouterr().out)["solvers"]


@pytest.mark.parametrize(
    ("make", "mention"),
    [
        (lambda d: str(d / "missing.py"), "no such plugin file"),
        (lambda d: str(write_plugin(d, "broken.py", "import numpy\nraise RuntimeError('boom')\n")), "line 2"),
        (lambda d: str(write_plugin(d, "syntax.py", "def f(:\n")), "SyntaxError"),
        (lambda d: str(write_plugin(d, "clash.py", SOLVER.format(name="em"))), "registered twice"),
        (lambda d: "no_such_module_xyz", "ModuleNotFoundError"),
        (lambda d: "not a module", "not a module name"),
    ],
    ids=["missing", "raises", "syntax", "clash", "no-module", "bad-name"],
)
def test_bad_plugin_is_one_line_exit_2(tmp_path, capsys, make, mention):
    spec = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sample", "--problem", "ve-gmm2", "--n", "10", "--plugin", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: plugin: ") and mention in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_plugin_in_a_sweep_names_its_place_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('plugins = ["nope.py"]\n\n[[sweep]]\nproblems = ["ve-gmm2"]\nsolvers = [{ name = "em" }]\n')
    assert main(["sweep", str(config), "--store", str(tmp_path / "runs.db"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: plugins[0]: no such plugin file 'nope.py'") and not (tmp_path / "runs.db").exists()


def test_entry_point_plugins_load_on_every_command(tmp_path, monkeypatch, capsys):
    """An installed package's ``sdebench.plugins`` entry point is loaded without any flag."""
    from importlib import metadata

    write_plugin(tmp_path, "ep_solvers.py", SOLVER.format(name="plugin-euler-d"))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = metadata.EntryPoint(name="demo", value="ep_solvers", group="sdebench.plugins")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [entry] if group == "sdebench.plugins" else [])
    assert main(["list", "--json"]) == 0
    assert "plugin-euler-d" in json.loads(capsys.readouterr().out)["solvers"]
    assert "ep_solvers" in sys.modules


SCORE = '''"""A user's score: the exact score scaled by 0.9 (a controlled score error), registered as '{name}'."""

from sdebench.scores import SCORES, make_score


@SCORES.register("{name}")
def scaled_exact(problem, **_):
    """0.9 × the exact score."""
    exact = make_score("exact", problem)

    def score(x, t):
        return 0.9 * exact(x, t)

    score.name = "{name}"
    return score
'''


def test_plugin_score_in_a_sweep_runs_through_its_factory(tmp_path):
    """A registered plugin score is built by its own factory in the workers (not taken for a trained network):
    its runs are ok and differ from the exact score's (a 10% smaller score leaves the samples too wide)."""
    write_plugin(tmp_path, "score.py", SCORE.format(name="scaled-exact"))
    config = tmp_path / "sweep.toml"
    config.write_text(
        'plugins = ["score.py"]\n\n[[sweep]]\nproblems = ["ve-gmm2"]\nscores = ["exact", "scaled-exact"]\n'
        'solvers = [{ name = "em" }]\nbudgets = [64]\nseeds = [0]\nn = [2000]\nmetrics = ["mode_moments"]\n'
    )
    store = tmp_path / "runs.db"
    assert main(["sweep", str(config), "--store", str(store), "--workers", "2", "--quiet"]) == 0
    with Store(store, readonly=True) as s:
        by_score = {r["score"]: r for r in s.runs()}
    assert {r["status"] for r in by_score.values()} == {"ok"}
    exact, scaled = by_score["exact"], by_score["scaled-exact"]
    assert scaled["metrics"]["mode_std_rel_err_max"] > exact["metrics"]["mode_std_rel_err_max"] + 0.05
