"""Sweep config: a TOML file of ``[[sweep]]`` blocks expanded into fully resolved, keyed :class:`RunSpec` s.

Each block is a Cartesian product; several blocks are a union (identical runs dedupe). Field paths in errors are
0-based: ``sweep[0].solvers[1].snr``. Example::

    [[sweep]]
    problems = ["ve-gmm2", "tri2d.toml", { name = "mine", data = { weights = [1.0], means = [[0.0]], covs = [1.0] } }]
    scores = ["exact", { name = "trained", steps = 2000, arch = "mlp", seed = 0 }]
    solvers = [{ name = "pc", snr = [0.08, 0.16] }, { name = "em" }]
    budgets = [50, 100]        # fixed-step solvers -> option nfe
    tolerances = [1e-3]        # adaptive solvers -> rtol = atol
    seeds = [0, 1, 2]          # default [0]
    n = [10000]                # default [10000]
    metrics = ["energy"]       # default DEFAULT_METRICS

A problem is a registered name, a problem TOML file (relative to the sweep file's folder) or an inline table.
Rule: ``budgets`` apply only to fixed-step solvers and ``tolerances`` only to adaptive ones; the other list is
ignored for that solver. A solver with no matching list runs once with its defaults (budget None).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from sdebench.errors import UserError, check
from sdebench.fingerprint import closure, combine
from sdebench.io import read_toml
from sdebench.metrics import DEFAULT_METRICS, METRICS, metric_names
from sdebench.plugins import load_plugins
from sdebench.problems.problem import PROBLEMS, load_problem, problem_from_spec
from sdebench.scores import SCORES, TrainConfig, score_params
from sdebench.solvers import SOLVERS
from sdebench.solvers.base import Solver, make_solver
from sdebench.sweeps.store import RunResult

_BLOCK_KEYS = {"problems", "scores", "solvers", "budgets", "tolerances", "seeds", "n", "metrics"}
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", dict: "a table"}


#: The module that executes a run (seeding, metrics, floors, preview); through its imports its fingerprint covers the
#: problems, the scores and the metric machinery every run uses.
HARNESS = "sdebench.sweeps.runner"


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run.

    ``config_key`` hashes the resolved config (what was asked); ``code`` holds the hash of every module that computes
    the run (see :mod:`sdebench.fingerprint`); ``key`` hashes both, so a run made by other code is another run.
    The run's randomness comes from ``config_key``: a change of code that changes no arithmetic (a refactor)
    reproduces the same numbers. ``info`` describes the configured solver and score for reports (kind, adaptivity,
    declared orders of this instance, labels): reports read it from the store and never import solvers.
    """

    problem: dict[str, Any]
    score: dict[str, Any]
    solver: str
    options: dict[str, Any]
    budget: float | None
    seed: int
    n: int
    metrics: tuple[str, ...]
    config_key: str
    code: dict[str, str | None] = field(hash=False)
    key: str
    info: dict[str, Any] = field(hash=False, compare=False)
    #: Plugin files (absolute paths) and modules the run needs; every worker loads them before running it.
    plugins: tuple[str, ...] = field(default=(), hash=False, compare=False)

    def resolved(self) -> dict[str, Any]:
        """The resolved config as plain data (what ``config_key`` hashes)."""
        return _resolved(
            self.problem, self.score, self.solver, self.options, self.budget, self.seed, self.n, self.metrics
        )

    def result(self, status: str = "ok", **values: Any) -> RunResult:
        """An empty :class:`RunResult` of this run (what the store needs to file it), with ``values`` set."""
        return RunResult(
            key=self.key,
            status=status,
            config=self.resolved(),
            config_key=self.config_key,
            code=self.code,
            info=self.info,
            **values,
        )


def _resolved(problem, score, solver, options, budget, seed, n, metrics) -> dict[str, Any]:
    return {
        "problem": problem,
        "score": score,
        "solver": solver,
        "options": options,
        "budget": budget,
        "seed": seed,
        "n": n,
        "metrics": list(metrics),
    }


def _sha256(value: Any) -> str:
    # sort_keys makes the hash independent of the order keys were written in
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_key(config_key: str, code: dict[str, str | None]) -> str:
    """The key of a run: its config's hash and the fingerprint of the code that computes it."""
    return _sha256({"config": config_key, "code": combine(code)})


@cache
def run_code(solver: str, score: str, metrics: tuple[str, ...]) -> dict[str, str | None]:
    """Hash of every module a run of ``solver`` with ``score`` and ``metrics`` executes (the harness, the solver's,
    the score's and each metric's module, with their imports); the same in every process with the same code."""
    modules = [HARNESS, SOLVERS.get(solver).__module__, SCORES.get(score).__module__]
    return closure(modules + [METRICS.get(m).__module__ for m in metrics])


def solver_info(solver: Solver, budget: float | None) -> dict[str, Any]:
    """What reports need to know of a configured solver: its kind, whether it is adaptive, the declared orders of
    this instance (options such as pc's corrector change them), and its label."""
    return {
        "kind": solver.kind,
        "adaptive": bool(solver.adaptive),
        "strong_order": solver.strong_order,
        "weak_order": solver.weak_order,
        "label": solver_label(solver.name, solver.options, budget),
        "budget_kind": None if budget is None else ("tolerance" if solver.adaptive else "nfe"),
    }


class _Errors:
    """Collects errors so the whole file is checked before anything is returned."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))

    def raise_if_any(self) -> None:
        if self.items:
            (field, message), *more = self.items
            raise UserError(field, message, more)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _list(block: dict, key: str, where: str, errors: _Errors, default: list | None) -> list:
    if key not in block:
        if default is None:
            errors.add(f"{where}.{key}", "missing")
            return []
        return list(default)
    value = block[key]
    if not isinstance(value, list):
        errors.add(f"{where}.{key}", f"must be a list, got {value!r}")
        return []
    if not value:
        errors.add(f"{where}.{key}", "empty grid: give at least one value")
    return value


def _problem_file(item: str, base: Path, field: str) -> Path:
    """The problem TOML file named in a sweep, relative to the sweep file's folder unless absolute."""
    path = Path(item) if Path(item).is_absolute() else base / item
    check(path.is_file(), field, f"no such problem file {item!r} (looked for {str(path)!r})")
    return path


def _problems(items: list, where: str, errors: _Errors, base: Path) -> list[dict]:
    out = []
    for i, item in enumerate(items):
        field = f"{where}.problems[{i}]"
        try:
            if isinstance(item, str) and (item.endswith(".toml") or "/" in item):
                out.append(load_problem(_problem_file(item, base, field)).spec)  # as --config reads it
                continue
            if isinstance(item, str):
                spec = PROBLEMS.get(item, field)()
                spec.setdefault("name", item)
            elif isinstance(item, dict):
                spec = item
            else:
                raise UserError(field, f"must be a problem name, a problem TOML file or a table, got {item!r}")
            out.append(problem_from_spec(spec).spec)
        except UserError as exc:
            errors.add(exc.field if exc.field.startswith(field) else f"{field}.{exc.field}", exc.message)
    return out


def _scores(items: list, where: str, errors: _Errors) -> list[dict]:
    """Resolved score tables: ``{"name": "exact"}``, or ``trained`` with every training field filled in."""
    out = []
    train_fields = {f.name for f in fields(TrainConfig)}
    for i, item in enumerate(items):
        field = f"{where}.scores[{i}]"
        table = {"name": item} if isinstance(item, str) else item
        if not isinstance(table, dict):
            errors.add(field, f"must be a score name or table, got {item!r}")
            continue
        name = table.get("name")
        if not isinstance(name, str) or name not in SCORES:
            errors.add(f"{field}.name", f"unknown score {name!r} (valid: {', '.join(SCORES.names())})")
            continue
        params = score_params(name)
        allowed = {"name"} | (train_fields if name == "trained" else set(params))
        unknown = [k for k in table if k not in allowed]
        for key in unknown:
            errors.add(f"{field}.{key}", f"unknown key (valid: {', '.join(sorted(allowed))})")
        if unknown:
            continue
        if name != "trained":
            # a score's declared parameters, all filled in (so equal configs hash alike) and checked as numbers
            given = {k: table.get(k, default) for k, default in params.items()}
            bad = [k for k, v in given.items() if not _is_num(v) or not math.isfinite(v)]
            for key in bad:
                errors.add(f"{field}.{key}", f"must be a finite number, got {given[key]!r}")
            if not bad:
                out.append({"name": name, **given})
            continue
        options = {k: v for k, v in table.items() if k != "name"}
        defaults = TrainConfig()
        bad = False
        for key, value in options.items():
            kind = type(getattr(defaults, key))  # each field's type is its default's
            if kind in (int, float):
                ok = _is_num(value) if kind is float else _is_int(value)
            else:
                ok = isinstance(value, kind)
            if not ok:
                errors.add(f"{field}.{key}", f"must be {_KIND_NAMES[kind]}, got {value!r}")
                bad = True
        if bad:
            continue
        config = TrainConfig(**options)
        try:
            config.validate()
        except UserError as exc:
            errors.add(f"{field}.{exc.field}", exc.message)
            continue
        out.append({"name": name, **config.resolved()})
    return out


def _solvers(items, budgets, tolerances, where, errors):
    """(name, options, budget) triples, each option set built by the solver itself so defaults are filled in."""
    out = []
    for i, item in enumerate(items):
        field = f"{where}.solvers[{i}]"
        if not isinstance(item, dict):
            errors.add(field, f"must be a table, got {item!r}")
            continue
        name = item.get("name")
        if not isinstance(name, str) or name not in SOLVERS:
            errors.add(f"{field}.name", f"unknown solver {name!r} (valid: {', '.join(SOLVERS.names())})")
            continue
        cls = SOLVERS.get(name)
        known = {p.name: p for p in cls.params}
        grid: dict[str, list] = {}
        for key, value in item.items():
            if key == "name":
                continue
            if key not in known:
                errors.add(f"{field}.{key}", f"unknown key (valid: name, {', '.join(known)})")
                continue
            values = value if isinstance(value, list) else [value]
            if not values:
                errors.add(f"{field}.{key}", "empty grid: give at least one value")
                continue
            parsed = []
            for j, v in enumerate(values):
                vfield = f"{field}.{key}[{j}]" if isinstance(value, list) else f"{field}.{key}"
                try:
                    parsed.append(known[key].parse(v, vfield))
                except UserError as exc:
                    errors.add(exc.field, exc.message)
            grid[key] = parsed
        budget_list: list = [None]
        if cls.adaptive and tolerances:
            budget_list = tolerances
        elif not cls.adaptive and budgets and "nfe" in known:
            budget_list = budgets
        keys = sorted(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            for budget in budget_list:
                opts = dict(zip(keys, combo, strict=True))
                if budget is not None:
                    if cls.adaptive:
                        opts["rtol"] = opts["atol"] = budget
                    else:
                        opts["nfe"] = budget
                try:
                    solver = make_solver(name, **opts)
                except UserError as exc:
                    errors.add(f"{field}.{exc.field}", exc.message)
                    continue
                out.append((name, dict(solver.options), budget, solver_info(solver, budget)))
    return out


def _numbers(items: list, field: str, errors: _Errors, integer: bool, least: float, strict: bool) -> list:
    out = []
    for i, v in enumerate(items):
        f = f"{field}[{i}]"
        if not (_is_int(v) if integer else _is_num(v)):
            errors.add(f, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
        elif (v <= least) if strict else (v < least):
            errors.add(f, f"must be {'>' if strict else '>='} {least}")
        else:
            out.append(v)
    return out


def expand_sweep(
    config: dict[str, Any],
    source: str = "config",
    notes: list[str] | None = None,
    base: Path | None = None,
    plugins: tuple[str, ...] = (),
) -> list[RunSpec]:
    """Validate a parsed sweep config as a whole and expand it into deduplicated runs (in first-seen order).

    A problem given as a TOML file name (``"tri2d.toml"``) is read relative to ``base`` (the sweep file's folder;
    the working directory if None) and inlined: runs carry its content, so workers never read the file.

    ``plugins = [...]`` at the top of the file (files relative to ``base``) and the already resolved ``plugins``
    given here (the command line's) are loaded before anything is validated, so their names are known; every run
    carries them (see :mod:`sdebench.plugins`).

    A solver that does not apply to a problem (its ``supports`` gives a reason) is left out of that problem's runs;
    the reason goes into ``notes``, once per solver and problem.
    """
    errors = _Errors()
    if not isinstance(config, dict):
        raise UserError(source, "must be a table")
    for key in config:
        if key not in ("sweep", "plugins"):
            errors.add(key, "unknown key (valid: plugins, sweep)")
    listed = config.get("plugins", [])
    if not isinstance(listed, list):
        raise UserError("plugins", f"must be a list of plugin files or modules, got {listed!r}")
    plugins = tuple(dict.fromkeys([*plugins, *load_plugins(listed, base, field="plugins")]))
    blocks = config.get("sweep")
    if isinstance(blocks, dict):
        errors.add("sweep", "must be an array of tables: write [[sweep]], not [sweep]")
        blocks = []
    elif not isinstance(blocks, list) or not blocks:
        errors.add("sweep", "give at least one [[sweep]] block")
        blocks = []
    runs: dict[str, RunSpec] = {}
    reasons: dict[str, str | None] = {}
    for b, block in enumerate(blocks):
        where = f"sweep[{b}]"
        if not isinstance(block, dict):
            errors.add(where, "must be a table")
            continue
        for key in block:
            if key not in _BLOCK_KEYS:
                errors.add(f"{where}.{key}", f"unknown key (valid: {', '.join(sorted(_BLOCK_KEYS))})")
        problems = _problems(_list(block, "problems", where, errors, None), where, errors, base or Path("."))
        scores = _scores(_list(block, "scores", where, errors, ["exact"]), where, errors)
        budgets = _numbers(_list(block, "budgets", where, errors, []), f"{where}.budgets", errors, True, 0, True)
        tols = _numbers(_list(block, "tolerances", where, errors, []), f"{where}.tolerances", errors, False, 0, True)
        solvers = _solvers(_list(block, "solvers", where, errors, None), budgets, tols, where, errors)
        seeds = _numbers(_list(block, "seeds", where, errors, [0]), f"{where}.seeds", errors, True, 0, False)
        # n ≥ 2: every metric needs two samples (spreads, the energy distance's pairs)
        sizes = _numbers(_list(block, "n", where, errors, [10000]), f"{where}.n", errors, True, 2, False)
        listed = _list(block, "metrics", where, errors, DEFAULT_METRICS)
        metrics = []
        for i, m in enumerate(listed):  # a metric's name, or one of its outputs' (sw1 → sliced_wasserstein)
            try:
                check(isinstance(m, str), f"{where}.metrics[{i}]", f"must be a metric name, got {m!r}")
                metrics += [x for x in metric_names([m], f"{where}.metrics[{i}]") if x not in metrics]
            except UserError as exc:
                errors.add(exc.field, exc.message)
        if errors.items:
            continue  # the file is refused anyway; expand only what is valid throughout
        for problem, score, (solver, options, budget, info), seed, n in itertools.product(
            problems, scores, solvers, seeds, sizes
        ):
            memo = json.dumps([problem, solver, options], sort_keys=True)
            if memo not in reasons:
                reasons[memo] = make_solver(solver, **options).supports(problem_from_spec(problem))
            reason = reasons[memo]
            if reason is not None:
                note = f"{where}: {solver} left out for {problem.get('name', 'custom')!r}: {reason}"
                if notes is not None and note not in notes:
                    notes.append(note)
                continue
            resolved = _resolved(problem, score, solver, options, budget, seed, n, metrics)
            config_key = _sha256(resolved)
            code = run_code(solver, score["name"], tuple(metrics))
            key = run_key(config_key, code)
            if key not in runs:
                described = {**info, "score_label": score_label(score)}
                runs[key] = RunSpec(
                    problem,
                    score,
                    solver,
                    options,
                    budget,
                    seed,
                    n,
                    tuple(metrics),
                    config_key,
                    code,
                    key,
                    described,
                    plugins,
                )
    errors.raise_if_any()
    return list(runs.values())


def load_sweep(path: str | Path, notes: list[str] | None = None, plugins: tuple[str, ...] = ()) -> list[RunSpec]:
    """Read, validate and expand the sweep TOML file at ``path`` (see :func:`expand_sweep` for ``notes`` and
    ``plugins``, resolved plugin specs to add to the file's own)."""
    path = Path(path)
    config = read_toml(path)
    return expand_sweep(config, str(path), notes, base=path.parent, plugins=plugins)


#: Options that say how long a solver runs; a label leaves them out (the budget column shows them).
BUDGET_OPTIONS = ("nfe", "steps", "rtol", "atol")


def solver_label(solver: str, options: dict[str, Any], budget: float | None = None) -> str:
    """The solver's name with the options that differ from its defaults, e.g. ``pc (snr=0.08)``.

    With a ``budget`` the options it sets (nfe and the steps that fit, or rtol = atol) are left out: the budget
    column shows them. Without one, a steps or tolerance grid given directly shows in the label.
    """
    defaults = {p.name: p.default for p in SOLVERS.get(solver).params}
    hidden = BUDGET_OPTIONS if budget is not None else ()
    extra = [f"{k}={v}" for k, v in sorted(options.items()) if k not in hidden and v != defaults.get(k)]
    return f"{solver} ({', '.join(extra)})" if extra else solver


def score_label(score: dict[str, Any]) -> str:
    """The score's name with the training settings that differ from the defaults, e.g. ``trained (steps=300)``."""
    if score["name"] != "trained":
        defaults = score_params(score["name"]) if score["name"] in SCORES else {}
        extra = [f"{k}={v:g}" for k, v in sorted(score.items()) if k in defaults and v != defaults[k]]
        return f"{score['name']} ({', '.join(extra)})" if extra else score["name"]
    defaults = {"name": "trained", **TrainConfig().resolved()}
    extra = [f"{k}={v}" for k, v in sorted(score.items()) if k != "arch_options" and v != defaults.get(k)]
    extra += [
        f"{k}={v}" for k, v in sorted(score.get("arch_options", {}).items()) if v != defaults["arch_options"].get(k)
    ]
    return f"trained ({', '.join(extra)})" if extra else "trained"
