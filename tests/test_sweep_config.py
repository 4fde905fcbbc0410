"""Sweep config: expansion, dedupe, keys, defaults and every error class with its field path."""

import tomllib

import pytest

from sdebench.errors import UserError
from sdebench.metrics import DEFAULT_METRICS
from sdebench.sweeps import expand_sweep, load_sweep


def block(**kw):
    base = {"problems": ["ve-gmm2"], "solvers": [{"name": "pc", "snr": [0.08, 0.16]}], "budgets": [20, 40]}
    base.update(kw)
    return base


def test_product_and_union_counts():
    assert len(expand_sweep({"sweep": [block(seeds=[0, 1], n=[100, 200])]})) == 2 * 2 * 2 * 2
    runs = expand_sweep({"sweep": [block(), block(seeds=[5])]})
    assert len(runs) == 8


def test_dedupe_across_blocks():
    assert len(expand_sweep({"sweep": [block(), block()]})) == 4


def test_defaults_filled():
    run = expand_sweep({"sweep": [block(budgets=[20])]})[0]
    assert run.seed == 0 and run.n == 10000 and list(run.metrics) == DEFAULT_METRICS
    assert run.options["grid"] is None and run.options["start"] == "prior"  # unset grid: the SDE's own
    assert run.options["nfe"] == 20 and "steps" in run.options
    assert run.score == {"name": "exact"}


def test_key_stability(tmp_path):
    a = expand_sweep({"sweep": [block()]})
    assert [r.key for r in a] == [r.key for r in expand_sweep({"sweep": [block()]})]
    assert len({r.key for r in a}) == len(a)
    p1, p2 = tmp_path / "a.toml", tmp_path / "b.toml"
    p1.write_text('[[sweep]]\nproblems = ["ve-gmm2"]\nsolvers = [{name = "pc", snr = 0.1}]\nseeds = [3]\n')
    p2.write_text('[[sweep]]\nseeds = [3]\nsolvers = [{snr = 0.1, name = "pc"}]\nproblems = ["ve-gmm2"]\n')
    assert [r.key for r in load_sweep(p1)] == [r.key for r in load_sweep(p2)]
    # explicitly giving a default changes nothing; a changed option changes the key
    same = expand_sweep({"sweep": [block(solvers=[{"name": "pc", "snr": 0.1, "corrector": "langevin"}])]})
    base = expand_sweep({"sweep": [block(solvers=[{"name": "pc", "snr": 0.1}])]})
    other = expand_sweep({"sweep": [block(solvers=[{"name": "pc", "snr": 0.11}])]})
    assert [r.key for r in same] == [r.key for r in base]
    assert not {r.key for r in other} & {r.key for r in base}


def test_adaptive_takes_tolerances():
    runs = expand_sweep({"sweep": [block(solvers=[{"name": "scipy-rk45"}], tolerances=[1e-3, 1e-5])]})
    assert [(r.options["rtol"], r.options["atol"]) for r in runs] == [(1e-3, 1e-3), (1e-5, 1e-5)]


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({"sweep": [block(problems=["nope"])]}, "sweep[0].problems[0]"),
        ({"sweep": [block(scores=["nope"])]}, "sweep[0].scores[0].name"),
        ({"sweep": [block(solvers=[{"name": "nope"}])]}, "sweep[0].solvers[0].name"),
        ({"sweep": [block(metrics=["nope"])]}, "sweep[0].metrics[0]"),
        ({"sweep": [block(seeds="0")]}, "sweep[0].seeds"),
        ({"sweep": [block(n=[1.5])]}, "sweep[0].n[0]"),
        ({"sweep": [block(solvers=[{"name": "pc", "snr": "x"}])]}, "sweep[0].solvers[0].snr"),
        ({"sweep": [block(solvers=[{"name": "pc", "snr": [0.1, -1.0]}])]}, "sweep[0].solvers[0].snr[1]"),
        ({"sweep": [block(n=[0])]}, "sweep[0].n[0]"),
        ({"sweep": [block(solvers=[{"name": "pc"}], budgets=[1])]}, "sweep[0].solvers[0].nfe"),
        ({"sweep": [block(seeds=[])]}, "sweep[0].seeds"),
        ({"sweep": [block(solvers=[{"name": "pc", "snr": []}])]}, "sweep[0].solvers[0].snr"),
        ({"sweep": [block(bogus=1)]}, "sweep[0].bogus"),
        ({"sweep": [block()], "extra": 1}, "extra"),
        ({"sweep": [block(scores=[{"name": "trained", "color": 1}])]}, "sweep[0].scores[0].color"),
        ({"sweep": [block(problems=[{"data": {}, "oops": 1}])]}, "sweep[0].problems[0].oops"),
    ],
)
def test_error_paths(cfg, field):
    with pytest.raises(UserError) as info:
        expand_sweep(cfg)
    assert info.value.field == field


def test_every_error_reported():
    with pytest.raises(UserError) as info:
        expand_sweep({"sweep": [block(n=[0], seeds=[-1]), block(budgets=[])]})
    assert info.value.lines() == [
        "sweep[0].seeds[0]: must be >= 0",
        "sweep[0].n[0]: must be >= 2",
        "sweep[1].budgets: empty grid: give at least one value",
    ]


def test_every_error_one_line_each_on_the_command_line(tmp_path, capsys):
    from sdebench.cli import main

    config = tmp_path / "s.toml"
    config.write_text('[[sweep]]\nproblems = ["nope"]\nsolvers = [{ name = "em" }]\nn = [1]\ncolour = 2\n')
    assert main(["sweep", str(config), "--store", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error: sweep[0].") for line in err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_unreadable_and_malformed(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_sweep(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sweep]\n")
    with pytest.raises(UserError, match="malformed TOML"):
        load_sweep(bad)


TRI2D = """
name = "tri2d"
[sde]
type = "vp"
[data]
weights = [0.6, 0.3, 0.1]
means = [[1.0, 2.0], [-1.5, 0.5], [0.5, -2.0]]
covs = [0.04, 0.09, 0.01]
"""


def test_problem_given_as_a_toml_file_next_to_the_sweep(tmp_path):
    """``problems = ["tri2d.toml"]`` reads the file beside the sweep file (not the working directory), inlines its
    content, and gives the same runs as the same problem written inline."""
    (tmp_path / "problems").mkdir()
    (tmp_path / "problems" / "tri2d.toml").write_text(TRI2D)
    sweep = '[[sweep]]\nproblems = ["problems/tri2d.toml"]\nsolvers = [{ name = "em" }]\nbudgets = [8]\n'
    (tmp_path / "sweep.toml").write_text(sweep)
    runs = load_sweep(tmp_path / "sweep.toml")
    assert len(runs) == 1 and runs[0].problem["name"] == "tri2d" and runs[0].problem["sde"]["type"] == "vp"
    inline = {
        "sweep": [
            {
                "problems": [tomllib.loads(TRI2D)],
                "solvers": [{"name": "em"}],
                "budgets": [8],
            }
        ]
    }
    assert [r.key for r in expand_sweep(inline)] == [r.key for r in runs]


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        (None, "no such problem file 'tri2d.toml'"),
        ("name = 'x'\n[data\n", "malformed TOML"),
        ("[data]\nweights = [1.0]\nmeans = [[0.0, 0.0]]\ncovs = [-1.0]\n", "covs"),
    ],
    ids=["missing", "malformed", "bad-cov"],
)
def test_bad_problem_file_names_its_field(tmp_path, text, mention):
    if text is not None:
        (tmp_path / "tri2d.toml").write_text(text)
    (tmp_path / "sweep.toml").write_text('[[sweep]]\nproblems = ["tri2d.toml"]\nsolvers = [{ name = "em" }]\n')
    with pytest.raises(UserError) as info:
        load_sweep(tmp_path / "sweep.toml")
    assert info.value.field.startswith("sweep[0].problems[0]") and mention in str(info.value)
