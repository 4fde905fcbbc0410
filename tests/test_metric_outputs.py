"""Metrics declare their outputs (title, direction, main column, floor); reports read those declarations from the
store, so a plugin metric reaches the report without the plugin, and each output is judged the way it declares."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sdebench.cli import main
from sdebench.errors import UserError
from sdebench.metrics import METRICS, Output, declared_outputs, find_output, metric_outputs, outputs
from sdebench.metrics.uncertainty import Estimate, within_floor
from sdebench.reports.tables import declarations, group_runs, main_metrics, run_outputs
from sdebench.sweeps import Store, expand_sweep


def test_bare_keys_get_defaults_and_output_objects_say_more():
    """``@outputs("a")`` still works (lower is better, titled by its key, a main column judged against its floor);
    ``Output(...)`` declares the rest; a family matches its keys; a bad declaration is a one-line UserError."""

    @outputs("a", Output("b_*", title="B", direction="info", main=False))
    def metric(samples, reference):
        return {}

    a, b = declared_outputs(metric)
    assert metric.outputs == ("a", "b_*")  # the keys, as --metrics resolves them
    assert (a.title, a.direction, a.main, a.floor, a.judged) == ("a", "lower", True, True, True)
    assert (b.title, b.floor, b.judged) == ("B", False, False)  # informational: no floor to judge by
    assert find_output((a, b), "b_3") is b and find_output((a, b), "a") is a
    stray = find_output((a, b), "c")  # undeclared: shown, never judged
    assert (stray.direction, stray.main, stray.judged) == ("info", False, False)
    assert Output.from_dict({**a.to_dict(), "added_by_newer_code": 1}) == a
    with pytest.raises(UserError, match="unknown direction 'down'"):
        Output("x", direction="down")
    with pytest.raises(UserError, match="declared twice"):
        outputs("x", Output("x", title="X"))
    with pytest.raises(UserError, match="comes last"):
        Output("mode_*_frac")


def test_within_floor_reads_the_direction():
    """Lower-is-better is one-sided (far below the floor is fine), higher-is-better its mirror, signed two-sided
    (far below the floor is as wrong as far above); an informational output never decides."""
    floor = Estimate(0.0, 0.01, 5)
    below, above = Estimate(-0.5, 0.01, 3), Estimate(0.5, 0.01, 3)
    near = Estimate(0.005, 0.01, 3)  # within sqrt(0.01² + 0.01²) = 0.014 of the floor
    lower, higher = Output("x"), Output("x", direction="higher")
    signed, info = Output("x", direction="signed"), Output("x", direction="info")
    assert within_floor(lower, below, floor) and not within_floor(lower, above, floor)
    assert within_floor(higher, above, floor) and not within_floor(higher, below, floor)
    assert not within_floor(signed, below, floor) and not within_floor(signed, above, floor)
    assert all(within_floor(o, near, floor) for o in (lower, higher, signed, info))
    assert within_floor(info, above, floor) and within_floor(Output("x", floor=False), above, floor)


def _store_rows(path: Path, metrics: dict[str, float], floors: dict[str, list[float]], outputs_=None) -> list:
    """Three seeds of one em run with the given metric values (seed wiggle ±1e-3), stored and read back."""
    (spec0, *_) = specs = expand_sweep(
        {"sweep": [{"problems": ["ve-gmm2"], "solvers": [{"name": "em"}], "budgets": [16], "seeds": [0, 1, 2]}]}
    )
    assert spec0.metrics  # the default metrics: their registered declarations are the fallback
    with Store(path) as store:
        for spec in specs:
            result = spec.result(
                metrics={k: v * (1 + 1e-3 * (spec.seed - 1)) for k, v in metrics.items()},
                floors=floors,
                nfe=16,
                nfe_per_sample=16,
                wall_s=0.1,
            )
            if outputs_ is not None:
                result.info = {**result.info, "outputs": [o.to_dict() for o in outputs_]}
            store.record(result)
        return store.runs()


def test_signed_outputs_are_judged_two_sided(tmp_path: Path):
    """A log p_ε gap of −0.5 against a floor of 0 ± 0.01 is not "≈ exact" although it is far *below* its floor:
    the gap is signed. The same values declared lower-is-better (stored with the runs) pass: the verdict follows
    the stored declaration, not a list in the report."""
    floors = {"log_density_gap": [0.0, 0.01, 5], "sw1": [0.01, 0.001, 5]}
    metrics = {"log_density_gap": -0.5, "sw1": 0.0101}
    runs = _store_rows(tmp_path / "old.db", metrics, floors)  # no stored declarations: the registry's
    assert all("outputs" not in r["info"] for r in runs)
    (group,) = group_runs(runs)
    assert group.exact_like is False
    relabelled = [Output("sw1", title="SW1"), Output("log_density_gap", title="gap", direction="lower")]
    (group,) = group_runs(_store_rows(tmp_path / "new.db", metrics, floors, relabelled))
    assert group.exact_like is True
    assert declarations([group])["log_density_gap"].title == "gap"


def test_runs_without_stored_declarations_use_the_registry():
    """Runs stored by older code (no ``outputs`` in their info) get the registered declarations of their metrics;
    a metric no longer registered declares nothing (its keys are then informational)."""
    run = {"info": {}, "config": {"metrics": ["sliced_wasserstein", "log_density", "gone_plugin"]}}
    declared = run_outputs(run)
    assert declared == tuple(metric_outputs(["sliced_wasserstein", "log_density"]))
    assert find_output(declared, "log_density_gap").direction == "signed"
    stored = {"info": {"outputs": [Output("sw1", title="mine").to_dict()]}, "config": {"metrics": []}}
    assert run_outputs(stored) == (Output("sw1", title="mine"),)


def test_list_shows_each_output_with_its_direction(capsys):
    """``list --json`` gives every output's title, direction, main column and floor; plain ``list`` says them."""
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)["metrics"]
    gap = next(o for o in listing["log_density"]["outputs"] if o["key"] == "log_density_gap")
    assert gap == {
        "key": "log_density_gap",
        "title": "log p_ε gap",
        "direction": "signed",
        "main": True,
        "floor": True,
        "judged": True,
    }
    for name, fn in METRICS.items():
        assert [o["key"] for o in listing[name]["outputs"]] == [o.key for o in declared_outputs(fn)]
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "sw1 (SW1; lower is better; main column, judged)" in text
    assert "mode_coverage (mode coverage; higher is better)" in text


PLUGIN_METRIC = '''"""A user's metric with one lower-is-better output, declared in full."""

from sdebench.metrics import METRICS, Output, outputs


@METRICS.register("plugin_max_abs")
@outputs(Output("max_abs", title="max |x| (plugin)"))
def max_abs(samples, reference):
    """max |x| over samples and coordinates."""
    return {"max_abs": float(samples.abs().max())}
'''


def test_plugin_metric_reaches_a_report_built_without_the_plugin(tmp_path: Path):
    """A sweep with a plugin metric stores its declaration with each run; a report built in a fresh interpreter
    that never loads the plugin (the file is gone) shows it as a main column with its title and floor, gives it a
    best mark in the CSV, and judges "≈ exact" by it (the only metric swept, so the verdict is yes or no, not
    "—" as for an undeclared key)."""
    plugin = tmp_path / "plugin_metric.py"
    plugin.write_text(PLUGIN_METRIC)
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'plugins = ["{plugin.name}"]\n\n[[sweep]]\nproblems = ["ve-gmm2"]\nsolvers = [{{ name = "em" }}]\n'
        'budgets = [16]\nseeds = [0, 1, 2]\nn = [300]\nmetrics = ["max_abs"]\n'
    )
    store = tmp_path / "runs.db"
    assert main(["sweep", str(config), "--store", str(store), "--quiet"]) == 0
    plugin.unlink()
    out = tmp_path / "out"
    code = (
        "import sys; from sdebench.reports import build_report; build_report(sys.argv[1], sys.argv[2]); "
        "print(sorted(m for m in sys.modules if m.startswith('sdebench_plugin')))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(store), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # the plugin was never imported
    table = (out / "ve-gmm2" / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| score"))
    assert "max \\|x\\| (plugin) (floor " in header  # Markdown escapes the title's bars
    row = next(line for line in table.splitlines() if line.startswith("| exact | em"))
    assert row.rstrip(" |").split(" | ")[-1] in ("yes", "no")
    frame = pd.read_csv(out / "ve-gmm2" / "table.csv")
    assert bool(frame["max_abs_best"].iloc[0]) and math.isfinite(frame["max_abs_floor"].iloc[0])
    page = (out / "index.html").read_text()
    assert "max |x| (plugin)" in page
    # The plugin's code cannot be compared without it: said so, and its runs are not called "other code".
    assert "could not be compared" in page and "other code than the installed one" not in page


def test_default_main_columns_are_the_declared_ones(tmp_path: Path):
    """The default metrics' main columns, as declared: the six the "≈ exact" verdict has always judged."""
    floors = {k: [0.1, 0.01, 5] for k in ("sw1", "sw2", "energy", "mmd2", "mode_max_dev_se", "mode_std_rel_err_max")}
    floors |= {"log_density_gap": [0.0, 0.01, 5], "mode_coverage": [1.0, 0.0, 5], "w2": [0.4, 0.1, 5]}
    runs = _store_rows(tmp_path / "runs.db", {k: v[0] for k, v in floors.items()}, floors)
    groups = group_runs(runs)
    assert set(main_metrics(groups)) == {
        "sw1",
        "energy",
        "mmd2",
        "mode_max_dev_se",
        "mode_std_rel_err_max",
        "log_density_gap",
    }
