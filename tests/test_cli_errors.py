"""Bad input to the ``sdebench`` CLI: exit code 2, one line ``error: <field>: ...``, no traceback, no file written."""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from sdebench.cli import main

TRAIN_STEPS = 2  # the tiny checkpoint's training steps; any other --train-steps is "another config"


# -- helpers ---------------------------------------------------------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``main(argv)`` in-process; return (exit code, stdout, stderr) whether it returns or raises SystemExit."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # hidden by default in a real run too
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    # A warning would be one more line on stderr in a real run.
    err += "".join(f"warning: {w.message}\n" for w in caught)
    return code, out, err


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_fails(
    argv: list[str], capsys: pytest.CaptureFixture[str], root: Path, field: str, *mentions: str, prefix: bool = True
) -> str:
    """Run the CLI and check the failure contract; return the error line."""
    before = snapshot(root)
    code, out, err = run_cli(argv, capsys)
    assert "Traceback" not in out + err, err
    assert code == 2, (code, err)
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got {err!r}"
    assert err.startswith("error: "), err
    if prefix:
        assert err.startswith(f"error: {field}: "), f"expected the field {field!r} first: {err!r}"
    else:
        assert field in err, f"expected {field!r} in {err!r}"
    for word in mentions:
        assert word in err, f"expected {word!r} in {err!r}"
    assert out == "", out
    after = snapshot(root)
    assert after == before, f"files left behind: {sorted(after - before)}"
    assert not list(root.rglob("*.tmp")), "temporary file left behind"
    return err.strip()


def gmm_toml(
    weights: str = "[0.5, 0.5]",
    means: str = "[[-2.0, -2.0], [2.0, 2.0]]",
    covs: str = "[0.01, 0.01]",
    sde_type: str = '"ve"',
    sigma_min: str = "0.01",
    sigma_max: str = "10.0",
    t_end: str = "1e-5",
    normalize: str = "true",
    extra_sde: str = "",
    extra_data: str = "",
    extra_top: str = "",
) -> str:
    """A TOML problem definition (the ve-gmm2 problem unless a field is overridden)."""
    return (
        f"t_end = {t_end}\n{extra_top}\n"
        f"[sde]\ntype = {sde_type}\nsigma_min = {sigma_min}\nsigma_max = {sigma_max}\n{extra_sde}\n"
        f'[data]\ntype = "gmm"\nweights = {weights}\nmeans = {means}\ncovs = {covs}\nnormalize = {normalize}\n'
        f"{extra_data}\n"
    )


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    """Output, plot and cache paths inside ``tmp_path`` (the cache is never the home directory)."""
    return {"out": tmp_path / "samples.npy", "plot": tmp_path / "density.png", "cache": tmp_path / "cache"}


def sample_argv(
    paths: dict[str, Path], *extra: str, problem: list[str] | None = None, steps: str | None = "5"
) -> list[str]:
    """A tiny, otherwise valid ``sample`` call with ``extra`` appended."""
    problem = ["--problem", "ve-gmm2"] if problem is None else problem
    return [
        "sample",
        *problem,
        "--n",
        "10",
        *(["--steps", steps] if steps is not None else []),
        "--out",
        str(paths["out"]),
        "--plot",
        str(paths["plot"]),
        "--cache-dir",
        str(paths["cache"]),
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint for ve-gmm2, trained for TRAIN_STEPS steps (in a module-wide temporary cache)."""
    cache = tmp_path_factory.mktemp("trained")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(
            ["train", "--problem", "ve-gmm2", "--steps", str(TRAIN_STEPS), "--cache-dir", str(cache), "--quiet"]
        )
    assert code == 0
    path = Path(buffer.getvalue().strip())
    assert path.is_file() and path.parent == cache
    return path


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default cache inside ``tmp_path`` too, in case a call forgets --cache-dir."""
    monkeypatch.setenv("SDEBENCH_CACHE", str(tmp_path / "default-cache"))


# -- controls: the same calls with good input succeed --------------------------------------------------------------
def test_control_valid_config_writes_outputs(tmp_path, paths, capsys):
    """The base TOML problem and the tiny sample call succeed, so the failures below are due to the bad field."""
    config = tmp_path / "good.toml"
    config.write_text(gmm_toml())
    code, _, err = run_cli(sample_argv(paths, problem=["--config", str(config)]), capsys)
    assert code == 0, err
    assert paths["out"].is_file() and paths["plot"].is_file()


def test_control_matching_checkpoint_is_accepted(paths, checkpoint, capsys):
    """A checkpoint used with the config it was trained for loads, so the mismatch failures below are real."""
    argv = sample_argv(paths, "--score", "trained", "--checkpoint", str(checkpoint), "--train-steps", str(TRAIN_STEPS))
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert paths["out"].is_file()


# -- unknown names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "field", "mentions"),
    [
        (["--score", "bogus"], "score", ("'bogus'", "exact", "trained")),
        (["--solver", "bogus"], "solver", ("'bogus'", "em")),
        (["--metrics", "bogus"], "metrics", ("'bogus'", "sliced_wasserstein", "mode_balance", "mode_moments")),
        (["--metrics", "sliced_wasserstein,bogus"], "metrics", ("'bogus'", "sliced_wasserstein")),
        (["--score", "trained", "--arch", "bogus"], "arch", ("'bogus'", "mlp", "seed-mlp")),
        (["--score", "trained", "--weighting", "bogus"], "weighting", ("'bogus'", "sigma2", "g2")),
        (["--score", "trained", "--loss", "bogus"], "loss", ("'bogus'", "squared", "norm")),
        (["--param", "grid=bogus"], "grid", ("'bogus'", "uniform-t", "karras", "log-sigma")),
    ],
    ids=["score", "solver", "metric", "metric-in-list", "arch", "weighting", "loss", "grid"],
)
def test_sample_unknown_name_lists_valid_ones(extra, field, mentions, tmp_path, paths, capsys):
    """An unknown score, solver, metric, arch, weighting, loss or grid name fails and lists the valid names."""
    assert_fails(sample_argv(paths, *extra), capsys, tmp_path, field, *mentions)


def test_sample_unknown_problem_lists_valid_ones(tmp_path, paths, capsys):
    """An unknown problem name fails and lists the registered problems."""
    argv = sample_argv(paths, problem=["--problem", "bogus"])
    assert_fails(argv, capsys, tmp_path, "problem", "'bogus'", "ve-gmm2")


@pytest.mark.parametrize(
    ("extra", "field", "mentions"),
    [
        (["--problem", "bogus"], "problem", ("'bogus'", "ve-gmm2")),
        (["--problem", "ve-gmm2", "--arch", "bogus"], "arch", ("'bogus'", "mlp", "seed-mlp")),
        (["--problem", "ve-gmm2", "--weighting", "bogus"], "weighting", ("sigma2", "g2")),
        (["--problem", "ve-gmm2", "--loss", "bogus"], "loss", ("squared", "norm")),
        (["--problem", "ve-gmm2", "--steps", "0"], "steps", ()),
        (["--problem", "ve-gmm2", "--steps", "-3"], "steps", ()),
        (["--problem", "ve-gmm2", "--t-end", "0"], "t_end", ()),
        (["--problem", "ve-gmm2", "--t-end", "1.5"], "t_end", ()),
        (["--problem", "ve-gmm2", "--sigma-floor", "-1"], "sigma_floor", ("-1",)),
        (["--problem", "ve-gmm2", "--sigma-floor", "inf"], "sigma_floor", ("inf",)),
        ([], "problem", ("--problem", "--config")),
    ],
    ids=[
        "problem",
        "arch",
        "weighting",
        "loss",
        "steps-0",
        "steps-neg",
        "t_end-0",
        "t_end-big",
        "sigma-floor-neg",
        "sigma-floor-inf",
        "no-problem",
    ],
)
def test_train_bad_input(extra, field, mentions, tmp_path, capsys):
    """``train`` with a bad name, step count or ε fails before training and writes no checkpoint."""
    cache = tmp_path / "cache"
    assert_fails(["train", *extra, "--cache-dir", str(cache), "--quiet"], capsys, tmp_path, field, *mentions)
    assert not cache.exists()


# -- numbers out of range --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--n", "0"], "n"),
        (["--n", "-5"], "n"),
        (["--steps", "0"], "steps"),
        (["--steps", "-2"], "steps"),
        (["--t-end", "0"], "t_end"),
        (["--t-end", "1"], "t_end"),
        (["--t-end", "-0.1"], "t_end"),
        (["--t-end", "1.5"], "t_end"),
        (["--t-end", "nan"], "t_end"),
        (["--score", "trained", "--train-steps", "0"], "steps"),
        (["--score", "trained", "--train-steps", "-1"], "steps"),
    ],
    ids=[
        "n-0",
        "n-neg",
        "steps-0",
        "steps-neg",
        "t_end-0",
        "t_end-1",
        "t_end-neg",
        "t_end-big",
        "t_end-nan",
        "train-steps-0",
        "train-steps-neg",
    ],
)
def test_sample_number_out_of_range(extra, field, tmp_path, paths, capsys):
    """n ≤ 0, steps ≤ 0, ε outside (0, 1) and training steps ≤ 0 each fail naming the field."""
    # Later flags override the base call's --n 10 / --steps 5.
    assert_fails(sample_argv(paths, *extra), capsys, tmp_path, field)


@pytest.mark.parametrize("value", ["0", "-4"])
def test_sample_param_steps_not_positive(value, tmp_path, paths, capsys):
    """``--param steps=0`` (without --steps, which would take precedence) fails naming ``steps``."""
    assert_fails(sample_argv(paths, "--param", f"steps={value}", steps=None), capsys, tmp_path, "steps")


@pytest.mark.parametrize("pair", ["steps", "=5"])
def test_sample_param_not_name_value(pair, tmp_path, paths, capsys):
    """A --param that is not NAME=VALUE fails naming ``param``."""
    assert_fails(sample_argv(paths, "--param", pair), capsys, tmp_path, "param", "NAME=VALUE")


@pytest.mark.parametrize(
    ("extra", "word"),
    [(["--n", "abc"], "--n"), (["--steps", "1.5"], "--steps"), (["--seed", "x"], "--seed")],
    ids=["n-text", "steps-float", "seed-text"],
)
def test_sample_unparsable_number(extra, word, tmp_path, paths, capsys):
    """A value argparse cannot convert gives one usage line naming the option, exit code 2."""
    assert_fails(sample_argv(paths, *extra), capsys, tmp_path, word, prefix=False)


@pytest.mark.parametrize(
    ("problem", "field"),
    [
        (["--problem", "ve-gmm2", "--config", "x.toml"], "problem"),
        ([], "problem"),
    ],
    ids=["both", "neither"],
)
def test_sample_problem_and_config_exclusive(problem, field, tmp_path, paths, capsys):
    """Giving both or neither of --problem and --config fails naming ``problem``."""
    assert_fails(sample_argv(paths, problem=problem), capsys, tmp_path, field, "--config")


@pytest.mark.parametrize(
    ("which", "name", "field"),
    [
        ("out", "missing/samples.npy", "out"),
        ("out", "samples.txt", "out"),
        ("out", "", "out"),
        ("plot", "missing/density.png", "plot"),
        ("plot", "density.jpg", "plot"),
    ],
    ids=["out-no-folder", "out-suffix", "out-folder", "plot-no-folder", "plot-suffix"],
)
def test_sample_bad_output_path(which, name, field, tmp_path, paths, capsys):
    """An output path in a missing folder, with the wrong suffix, or that is a folder fails before any work."""
    paths = {**paths, which: tmp_path / name}
    assert_fails(sample_argv(paths), capsys, tmp_path, field)


# -- TOML problem files ----------------------------------------------------------------------------------------------
BAD_CONFIGS = {
    # σ range
    "sigma_min-0": (dict(sigma_min="0.0"), "sde.sigma_min"),
    "sigma_min-neg": (dict(sigma_min="-0.01"), "sde.sigma_min"),
    "sigma_min-eq-max": (dict(sigma_min="10.0"), "sde.sigma_max"),
    "sigma_min-gt-max": (dict(sigma_min="20.0"), "sde.sigma_max"),
    "sigma_min-text": (dict(sigma_min='"small"'), "sde.sigma_min"),
    "sde-type": (dict(sde_type='"vq"'), "sde.type"),
    "sde-type-number": (dict(sde_type="1"), "sde.type"),
    "vp-with-sigma-keys": (dict(sde_type='"vp"'), "sde.sigma_min"),
    # ε
    "t_end-0": (dict(t_end="0.0"), "t_end"),
    "t_end-1": (dict(t_end="1.0"), "t_end"),
    "t_end-neg": (dict(t_end="-1e-3"), "t_end"),
    "t_end-big": (dict(t_end="2.0"), "t_end"),
    "t_end-text": (dict(t_end='"small"'), "t_end"),
    # weights
    "weights-neg": (dict(weights="[-0.5, 1.5]"), "data.weights"),
    "weights-sum-low": (dict(weights="[0.3, 0.3]"), "data.weights"),
    "weights-sum-high": (dict(weights="[0.7, 0.7]"), "data.weights"),
    "weights-empty": (dict(weights="[]", means="[]", covs="[]"), "data.weights"),
    "weights-text": (dict(weights='"half"'), "data.weights"),
    # covariances
    "cov-not-symmetric": (dict(covs="[[[1.0, 0.5], [0.0, 1.0]], 0.01]"), "data.covs[0]"),
    "cov-indefinite": (dict(covs="[0.01, [[1.0, 2.0], [2.0, 1.0]]]"), "data.covs[1]"),
    "cov-iso-neg": (dict(covs="[-0.01, 0.01]"), "data.covs[0]"),
    "cov-iso-0": (dict(covs="[0.0, 0.01]"), "data.covs[0]"),
    "cov-diag-0": (dict(covs="[[1.0, 0.0], 0.01]"), "data.covs[0]"),
    "cov-diag-neg": (dict(covs="[0.01, [1.0, -1.0]]"), "data.covs[1]"),
    # dimensions
    "means-vs-weights": (dict(means="[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]"), "data.means"),
    "means-ragged": (dict(means="[[0.0, 0.0], [1.0, 1.0, 1.0]]"), "data.means"),
    "means-flat": (dict(weights="[1.0]", means="[0.0, 0.0]", covs="[0.01]"), "data.means"),
    "covs-count": (dict(covs="[0.01]"), "data.covs"),
    "cov-diag-dim": (dict(covs="[[1.0, 1.0, 1.0], 0.01]"), "data.covs[0]"),
    "cov-matrix-dim": (dict(covs="[0.01, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]"), "data.covs[1]"),
    # structure
    "unknown-data-key": (dict(extra_data="foo = 1"), "data.foo"),
    "unknown-sde-key": (dict(extra_sde="beta = 1"), "sde.beta"),
    "unknown-top-key": (dict(extra_top="foo = 1"), "foo"),
    "normalize-text": (dict(normalize='"yes"'), "data.normalize"),
}


@pytest.mark.parametrize(("overrides", "field"), list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_config_bad_field(overrides, field, tmp_path, paths, capsys):
    """A TOML problem with a bad σ range, ε, weights, covariance, dimension or key fails naming that field."""
    config = tmp_path / "bad.toml"
    config.write_text(gmm_toml(**overrides))
    assert_fails(sample_argv(paths, problem=["--config", str(config)]), capsys, tmp_path, field)


BAD_SDE_TABLES = {
    "vp-beta-order": ('type = "vp"\nbeta_min = 20.0\nbeta_max = 0.1', "sde.beta_max"),
    "vp-beta-equal": ('type = "vp"\nbeta_min = 1.0\nbeta_max = 1.0', "sde.beta_max"),
    "vp-beta-negative": ('type = "vp"\nbeta_min = -0.1', "sde.beta_min"),
    "vp-beta-inf": ('type = "vp"\nbeta_max = inf', "sde.beta_max"),
    "subvp-beta-text": ('type = "subvp"\nbeta_min = "low"', "sde.beta_min"),
    "subvp-sigma-key": ('type = "subvp"\nsigma_max = 1.0', "sde.sigma_max"),
    "edm-sigma-order": ('type = "edm"\nsigma_min = 80.0\nsigma_max = 1.0', "sde.sigma_max"),
    "edm-sigma-zero": ('type = "edm"\nsigma_min = 0.0', "sde.sigma_min"),
    "edm-beta-key": ('type = "edm"\nbeta_min = 0.1', "sde.beta_min"),
    "edm-t_end-past-T": ('type = "edm"\nsigma_max = 5.0\n[extra]', "t_end"),
}


@pytest.mark.parametrize(("table", "field"), list(BAD_SDE_TABLES.values()), ids=list(BAD_SDE_TABLES))
def test_config_bad_sde_of_the_family(table, field, tmp_path, paths, capsys):
    """Each SDE type validates its own parameters (β order, σ range, keys of another type, ε inside (0, T))."""
    table = table.replace("\n[extra]", "")
    t_end = "t_end = 6.0\n" if field == "t_end" else ""
    config = tmp_path / "bad.toml"
    config.write_text(
        f'{t_end}[sde]\n{table}\n[data]\ntype = "gmm"\nweights = [1.0]\nmeans = [[0.0, 0.0]]\ncovs = [1.0]\n'
    )
    assert_fails(sample_argv(paths, problem=["--config", str(config)]), capsys, tmp_path, field)


@pytest.mark.parametrize(
    "text",
    [
        "[data\nweights = [1.0]\n",
        "t_end = \n",
        "[data]\nweights = [0.5, 0.5\n",
        "[data]\nweights = [1.0]\n[data]\nweights = [1.0]\n",
    ],
    ids=["unclosed-table", "missing-value", "unclosed-array", "duplicate-table"],
)
def test_config_malformed_toml(text, tmp_path, paths, capsys):
    """Malformed TOML fails naming ``config``."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert_fails(sample_argv(paths, problem=["--config", str(config)]), capsys, tmp_path, "config", "bad.toml")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("data = 3\n", "data"),
        ("sde = 3\n[data]\nweights = [1.0]\nmeans = [[0.0]]\ncovs = [1.0]\n", "sde"),
        ("[sde]\nsigma_min = 0.01\n", "data"),
        ('[data]\ntype = "gmm"\nmeans = [[0.0]]\ncovs = [1.0]\n', "data.weights"),
        ('[data]\ntype = "gmm"\nweights = [1.0]\ncovs = [1.0]\n', "data.means"),
        ('[data]\ntype = "gmm"\nweights = [1.0]\nmeans = [[0.0]]\n', "data.covs"),
        ('[data]\ntype = "flow"\nweights = [1.0]\nmeans = [[0.0]]\ncovs = [1.0]\n', "data.type"),
        ("", "data"),
    ],
    ids=["data-not-table", "sde-not-table", "no-data", "no-weights", "no-means", "no-covs", "data-type", "empty"],
)
def test_config_bad_structure(text, field, tmp_path, paths, capsys):
    """A TOML file whose tables are missing or of the wrong kind fails naming the table or key."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert_fails(sample_argv(paths, problem=["--config", str(config)]), capsys, tmp_path, field)


@pytest.mark.parametrize("kind", ["missing", "folder", "not-utf8"])
def test_config_unreadable(kind, tmp_path, paths, capsys):
    """A config path that does not exist, is a folder, or is not UTF-8 text fails naming ``config``."""
    config = tmp_path / "problem.toml"
    if kind == "folder":
        config.mkdir()
    elif kind == "not-utf8":
        config.write_bytes(b"\xff\xfe[data]\n\x80\x81 = 1\n")
    assert_fails(sample_argv(paths, problem=["--config", str(config)]), capsys, tmp_path, "config")


def test_train_config_bad_field_writes_no_checkpoint(tmp_path, capsys):
    """``train --config`` with an invalid covariance fails before training and creates no cache."""
    config = tmp_path / "bad.toml"
    config.write_text(gmm_toml(covs="[[[1.0, 0.5], [0.0, 1.0]], 0.01]"))
    cache = tmp_path / "cache"
    argv = ["train", "--config", str(config), "--steps", "5", "--cache-dir", str(cache), "--quiet"]
    assert_fails(argv, capsys, tmp_path, "data.covs[0]")
    assert not cache.exists()


# -- checkpoints -----------------------------------------------------------------------------------------------------
def _write_bad_checkpoint(kind: str, path: Path, real: Path) -> None:
    """Write a bad checkpoint of the given kind to ``path`` (``real`` is a valid one to damage)."""
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint \x00\x01\x02\xff" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated-torch-file":
        torch.save({"format": "sdebench-checkpoint-1", "weights": torch.arange(10_000.0)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-checkpoint":
        data = real.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt-middle":
        data = bytearray(real.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
    elif kind == "other-torch-file":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "not-a-dict":
        torch.save(torch.zeros(3), path)
    elif kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    elif kind in ("bad-weights", "no-weights", "bad-key"):
        payload = torch.load(real, map_location="cpu", weights_only=True)
        if kind == "bad-weights":
            payload["state_dict"] = {k: torch.zeros(1) for k in payload["state_dict"]}
        elif kind == "no-weights":
            del payload["state_dict"]
        else:
            payload["key"] = "{not json"
        torch.save(payload, path)
    else:  # pragma: no cover
        raise AssertionError(kind)


CHECKPOINT_KINDS = [
    "garbage",
    "empty",
    "truncated-torch-file",
    "truncated-checkpoint",
    "corrupt-middle",
    "other-torch-file",
    "not-a-dict",
    "missing",
    "folder",
    "bad-weights",
    "no-weights",
    "bad-key",
]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_checkpoint_truncated_or_corrupt(kind, tmp_path, paths, checkpoint, capsys):
    """A truncated, corrupt, foreign or missing --checkpoint fails naming ``checkpoint``."""
    bad = tmp_path / "bad.pt"
    _write_bad_checkpoint(kind, bad, checkpoint)
    argv = sample_argv(paths, "--score", "trained", "--checkpoint", str(bad), "--train-steps", str(TRAIN_STEPS))
    assert_fails(argv, capsys, tmp_path, "checkpoint")


@pytest.mark.parametrize("kind", ["garbage", "truncated-checkpoint"])
def test_cached_checkpoint_corrupt(kind, tmp_path, paths, checkpoint, capsys):
    """A corrupt file at the cache's checkpoint path fails naming ``checkpoint`` (and is not silently retrained)."""
    paths["cache"].mkdir()
    cached = paths["cache"] / checkpoint.name
    _write_bad_checkpoint(kind, cached, checkpoint)
    content = cached.read_bytes()
    argv = sample_argv(paths, "--score", "trained", "--train-steps", str(TRAIN_STEPS))
    assert_fails(argv, capsys, tmp_path, "checkpoint")
    assert cached.read_bytes() == content


@pytest.mark.parametrize(
    ("extra", "diff"),
    [
        (["--train-steps", "30"], "steps"),
        (["--train-steps", str(TRAIN_STEPS), "--train-seed", "1"], "seed"),
        (["--train-steps", str(TRAIN_STEPS), "--arch", "seed-mlp"], "arch"),
        (["--train-steps", str(TRAIN_STEPS), "--weighting", "g2"], "weighting"),
        (["--train-steps", str(TRAIN_STEPS), "--t-end", "1e-3"], "t_end"),
    ],
    ids=["steps", "seed", "arch", "weighting", "t_end"],
)
def test_checkpoint_from_another_config(extra, diff, tmp_path, paths, checkpoint, capsys):
    """A real checkpoint used with another training config or ε fails naming ``checkpoint`` and the difference."""
    content = checkpoint.read_bytes()
    argv = sample_argv(paths, "--score", "trained", "--checkpoint", str(checkpoint), *extra)
    assert_fails(argv, capsys, tmp_path, "checkpoint", diff)
    assert checkpoint.read_bytes() == content


@pytest.mark.parametrize("shape", ["other-means", "other-dimension"])
def test_checkpoint_from_another_problem(shape, tmp_path, paths, checkpoint, capsys):
    """A ve-gmm2 checkpoint used for another (even 3-D) problem fails naming ``checkpoint``."""
    config = tmp_path / "other.toml"
    if shape == "other-means":
        config.write_text(gmm_toml(means="[[-3.0, -3.0], [3.0, 3.0]]"))
    else:
        config.write_text(gmm_toml(means="[[-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]]"))
    copy = tmp_path / "copy.pt"
    shutil.copyfile(checkpoint, copy)
    argv = sample_argv(
        paths,
        "--score",
        "trained",
        "--checkpoint",
        str(copy),
        "--train-steps",
        str(TRAIN_STEPS),
        problem=["--config", str(config)],
    )
    assert_fails(argv, capsys, tmp_path, "checkpoint")
    assert copy.read_bytes() == checkpoint.read_bytes()
