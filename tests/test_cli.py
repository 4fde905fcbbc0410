"""The command line on good input: list, train, sample (JSON output, .npy contents, plot)."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from sdebench.cli import main
from sdebench.metrics import METRICS
from sdebench.problems import PROBLEMS
from sdebench.solvers import SOLVERS


def test_list_json_names_every_registered_thing(capsys) -> None:
    """``list --json`` holds every problem, score, solver (with params and orders), metric, grid and arch."""
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing["problems"]) == set(PROBLEMS.names())
    assert set(listing["solvers"]) == set(SOLVERS.names())
    assert set(listing["metrics"]) == set(METRICS.names())
    assert {"exact", "trained"} <= set(listing["scores"])
    assert {"mlp", "seed-mlp"} <= set(listing["archs"])
    em = listing["solvers"]["em"]
    assert em["strong_order"] == 1.0 and em["params"]["steps"]["default"] == 1000
    assert "karras" in em["params"]["grid"]["choices"]


def test_list_text(capsys) -> None:
    """Plain ``list`` prints a section per kind."""
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for section in ("problems:", "scores:", "solvers:", "metrics:", "grids:", "archs:"):
        assert section in out


def test_sample_json_and_outputs(tmp_path, capsys) -> None:
    """``sample --json`` prints nfe, wall_s and metrics; the .npy is float64 (n, d); the plot is a PNG."""
    out, plot = tmp_path / "s.npy", tmp_path / "d.png"
    argv = ["sample", "--problem", "ve-gmm2", "--score", "exact", "--solver", "em", "--steps", "50"]
    argv += ["--n", "500", "--seed", "3", "--out", str(out), "--plot", str(plot), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["nfe"] == 50 and summary["wall_s"] > 0
    assert {"sw1", "sw2", "mode_max_dev_se", "mode_std_rel_err_max"} <= set(summary["metrics"])
    assert set(summary["floors"]) == set(summary["metrics"])
    samples = np.load(out)
    assert samples.shape == (500, 2) and samples.dtype == np.float64
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "s.npy"]


def test_sample_without_out_prints_metrics_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    """Only the metrics wanted: ``sample`` without ``--out`` prints them and writes no file."""
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "--problem", "ve-gmm2", "--steps", "20", "--n", "200", "--json", "--metrics", "mode_balance"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] is None and "mode_max_dev_se" in summary["metrics"]
    assert list(tmp_path.iterdir()) == []


def test_help_shows_defaults_and_one_training_seed_flag(capsys) -> None:
    """``--help`` of each command shows the defaults, gives every option a help text, and ``train`` has one
    training-seed flag (``--train-seed``, as on every command that trains)."""
    from sdebench.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings}: no help text"
    train_flags = {flag for action in commands["train"]._actions for flag in action.option_strings}
    assert "--train-seed" in train_flags and "--seed" not in train_flags
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # help wraps lines
    assert "(default: em)" in text and "(default: 0)" in text and "(default: None)" not in text


def test_sample_is_reproducible_and_takes_params(tmp_path, capsys) -> None:
    """Same seed → same .npy; ``--param`` reaches the solver (denoise adds one NFE)."""
    base = ["sample", "--problem", "ve-gmm2", "--steps", "20", "--n", "100", "--seed", "5", "--json"]
    assert main([*base, "--out", str(tmp_path / "a.npy")]) == 0
    assert main([*base, "--out", str(tmp_path / "b.npy"), "--param", "denoise=true"]) == 0
    outputs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["nfe"] for o in outputs] == [20, 21]
    assert main([*base, "--out", str(tmp_path / "c.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "c.npy"))


def test_train_prints_checkpoint_and_reuses_it(tmp_path, capsys) -> None:
    """``train`` prints the checkpoint path; a second call returns the same cached file."""
    argv = ["train", "--problem", "ve-gmm2", "--steps", "10", "--cache-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out.strip()
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == first
    assert first.endswith(".pt") and (tmp_path / first.split("/")[-1]).exists()


def test_nll_command_matches_exact_density(capsys) -> None:
    """``nll --json`` on ve-gauss1: the ODE's mean NLL is within 0.02 nats of the exact −log p_ε (paired)."""
    assert main(["nll", "--problem", "ve-gauss1", "--n", "200", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert abs(summary["diff_mean"]) < 0.02 and summary["nfe"] > 0


@pytest.mark.parametrize(
    ("solver", "param", "field"),
    [
        ("pc", "snr=0", "snr"),
        ("pc", "predictor=nope", "predictor"),
        ("pc", "corrector=nope", "corrector"),
        ("scipy-rk45", "rtol=0", "rtol"),
        ("scipy-rk45", "atol=-1", "atol"),
        ("edm-stochastic", "S_churn=-1", "S_churn"),
        ("edm-heun", "nfe=1", "nfe"),
        ("em", "bogus=1", "bogus"),
        ("em", "grid=nope", "grid"),
    ],
)
def test_bad_solver_parameters_on_the_command_line(solver: str, param: str, field: str, tmp_path, capsys) -> None:
    """Out-of-range or unknown solver parameters: one line naming the field, exit 2, nothing written."""
    out = tmp_path / "s.npy"
    argv = ["sample", "--problem", "ve-gmm2", "--solver", solver, "--param", param, "--n", "10", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    assert list(tmp_path.iterdir()) == []


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as an interactive shell's is."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["sample", "--problem", "ve-gmm2", "--steps", "40", "--n", "100", "--metrics", "mode_balance"], "/40 "),
        (["nll", "--problem", "ve-gmm2", "--n", "20", "--rtol", "1e-3", "--atol", "1e-3"], "/100 "),
        (["converge", "--problem", "ve-gauss1", "--steps", "4,8", "--n", "20", "--fine-steps", "16"], "NFE"),
    ],
    ids=["sample", "nll", "converge"],
)
def test_progress_bar_on_a_terminal_only(argv, shown, monkeypatch, capsys) -> None:
    """On a terminal, sample / nll / converge show a progress bar on stderr (sample's total is the planned NFE,
    nll's the share of [ε, T] covered); --quiet, or a stderr that is not a terminal, shows none."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    assert shown in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main([*argv, "--quiet"]) == 0
    assert quiet.getvalue() == ""
    monkeypatch.undo()
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a terminal


@pytest.mark.parametrize(("argv", "allowed"), [(["--help"], set()), (["list"], {"torch"})])
def test_help_and_list_import_only_what_they_need(argv, allowed) -> None:
    """Start-up cost is imports: ``--help`` loads neither torch nor scipy, ``list`` (which must import every
    registered module) torch but not scipy.stats, scipy.integrate or POT (those load when a run needs them)."""
    import subprocess

    heavy = ("torch", "scipy.stats", "scipy.integrate", "ot")
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['sdebench', *{argv!r}]\n"
        "try:\n    runpy.run_module('sdebench.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED', *[m for m in {heavy!r} if m in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    imported = set(done.stderr.strip().splitlines()[-1].split()[1:])
    assert imported == allowed


def test_sweep_progress_bar_on_a_terminal_only(tmp_path, monkeypatch, capsys) -> None:
    """The sweep's bar follows the same rule as the other commands' (a log file gets no carriage-return noise)."""
    config = tmp_path / "tiny.toml"
    config.write_text(
        '[[sweep]]\nproblems = ["ve-gmm2"]\nscores = ["exact"]\nsolvers = [{ name = "ddim" }]\nbudgets = [4]\n'
        "seeds = [0]\nn = [200]\n"
    )
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["sweep", str(config), "--store", str(tmp_path / "a.db")]) == 0
    assert "run/s" in terminal.getvalue() or "1/1" in terminal.getvalue()
    monkeypatch.undo()
    assert main(["sweep", str(config), "--store", str(tmp_path / "b.db")]) == 0
    assert "run/s" not in capsys.readouterr().err
