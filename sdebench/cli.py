"""sdebench: a test bench for the SDE and ODE samplers of score-based diffusion models.

The command line: list, train, sample, nll, converge, grid-search, sweep, report.

User mistakes end as one line ``error: <field>: <what>`` with exit code 2, before any work and with no file
written. A solver that diverges ends with ``diverged: ...`` and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Only light modules at import time: `sdebench --help` must not wait for torch and scipy. Each command imports
# what it needs when it runs.
from sdebench import __version__
from sdebench.choices import DEFAULT_METRICS, DEFAULT_SIGMA_FLOOR, DIVERGENCES, LOSSES, NOISES, T_SAMPLINGS, WEIGHTINGS
from sdebench.errors import DivergedError, UserError, check
from sdebench.io import check_writable, write_atomic

if TYPE_CHECKING:
    import numpy as np

    from sdebench.problems import Problem
    from sdebench.scores import TrainConfig


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" where a default says something (not for flags, nor for "none given")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default == []
        if silent or action.default is argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action) or text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2 (no usage dump), and help shows every default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def _doc(obj: Any) -> str:
    return ((obj.__doc__ or "").strip().splitlines() or [""])[0]


def _problem(args: argparse.Namespace) -> Problem:
    from sdebench.problems import get_problem, load_problem

    check(
        (args.problem is None) != (args.config is None), "problem", "give exactly one of --problem NAME, --config FILE"
    )
    if args.config is not None:
        return load_problem(args.config, t_end=args.t_end)
    return get_problem(args.problem, t_end=args.t_end)


def _train_config(args: argparse.Namespace, steps: int | None) -> TrainConfig:
    from sdebench.scores import TrainConfig

    config = TrainConfig(
        arch=args.arch,
        seed=args.train_seed,
        weighting=args.weighting,
        loss=args.loss,
        t_sampling=args.t_sampling,
        sigma_floor=args.sigma_floor,
    )
    if steps is not None:
        config.steps = steps
    config.validate()
    return config


def _score_config(args: argparse.Namespace) -> TrainConfig | None:
    """Validate --score (and --checkpoint); the training config when the score is trained. No work is done."""
    from sdebench.scores import SCORES

    SCORES.get(args.score, "score")
    checkpoint = getattr(args, "checkpoint", None)
    check(checkpoint is None or args.score == "trained", "checkpoint", "applies only with --score trained")
    _score_params(args)
    return _train_config(args, args.train_steps) if args.score == "trained" else None


def _score_params(args: argparse.Namespace) -> dict[str, float]:
    """--score-param NAME=VALUE pairs, checked against the score's declared parameters (finite numbers)."""
    import math

    from sdebench.scores import score_params

    declared = score_params(args.score)
    out: dict[str, float] = {}
    for name, text in _parse_params(getattr(args, "score_param", [])).items():
        valid = ", ".join(sorted(declared)) or "none"
        check(name in declared, "score-param", f"{args.score!r} has no parameter {name!r} (valid: {valid})")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        check(math.isfinite(value), f"score-param {name}", f"must be a finite number, got {text!r}")
        out[name] = value
    return out


def _build_score(args: argparse.Namespace, problem: Problem, train_config: TrainConfig | None) -> Any:
    """The score the arguments ask for (training, or loading the cached checkpoint, when it is trained)."""
    from sdebench.scores import make_score

    return make_score(
        args.score,
        problem,
        train_config=train_config,
        cache_dir=args.cache_dir,
        checkpoint=getattr(args, "checkpoint", None),
        progress=not args.quiet,
        **_score_params(args),
    )


def _progress(args: argparse.Namespace, total: int | None, desc: str) -> Any:
    """A progress bar over score evaluations on stderr: off with --quiet, and when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="NFE", disable=True if args.quiet else None, leave=False)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        check(bool(sep) and bool(key), "param", f"expected NAME=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def _save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    with path.open("wb") as handle:  # a handle, so numpy does not append ".npy" to the temporary name
        np.save(handle, array)


# -- commands --------------------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    """Print what is registered: problems, scores, solvers (with parameters and orders), metrics, grids, archs."""

    from sdebench.metrics import METRICS, Output, declared_outputs
    from sdebench.problems import PROBLEMS, SDES
    from sdebench.scores import ARCHS, SCORES
    from sdebench.solvers import GRIDS, SOLVERS

    listing = {
        "problems": {name: _doc(fn) for name, fn in PROBLEMS.items()},
        "sdes": {name: {"doc": _doc(cls), "params": dict(cls.params)} for name, cls in SDES.items()},
        "scores": {name: _doc(fn) for name, fn in SCORES.items()},
        "solvers": {name: cls.describe() for name, cls in SOLVERS.items()},
        "metrics": {
            name: {"doc": _doc(fn), "outputs": [{**o.to_dict(), "judged": o.judged} for o in declared_outputs(fn)]}
            for name, fn in METRICS.items()
        },
        "grids": {name: _doc(fn) for name, fn in GRIDS.items()},
        "archs": {name: {"doc": _doc(cls), "options": cls.defaults} for name, cls in ARCHS.items()},
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, entries in listing.items():
        print(f"{kind}:")
        for name, entry in entries.items():
            if kind == "solvers":
                params = ", ".join(f"{p}={d['default']}" for p, d in entry["params"].items())
                orders = f"strong {entry['strong_order']}, weak {entry['weak_order']}"
                print(f"  {name:<20} {entry['doc']}\n  {'':<20} [{entry['kind']}; {orders}; {params}]")
            elif kind == "metrics":
                declared = [Output.from_dict(o).describe() for o in entry["outputs"]]
                shown = "".join(f"\n  {'':<20} {'outputs:' if i == 0 else '':<9}{d}" for i, d in enumerate(declared))
                print(f"  {name:<20} {entry['doc']}{shown}")
            elif kind == "sdes":
                params = ", ".join(f"{p}={v:g}" for p, v in entry["params"].items())
                print(f"  {name:<20} {entry['doc']}\n  {'':<20} [{params}]")
            else:
                doc = entry["doc"] if isinstance(entry, dict) else entry
                print(f"  {name:<20} {doc}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or find in the cache) the score network for a problem; print the checkpoint path."""
    from sdebench.scores.training import load_or_train

    problem = _problem(args)
    config = _train_config(args, args.steps)
    score = load_or_train(problem, config, cache_dir=args.cache_dir, progress=not args.quiet)
    if args.json:
        print(json.dumps({"checkpoint": str(score.path), **score.info}))
    else:
        print(score.path)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Sample a problem with a score and a solver; print metrics; save samples (and a density plot)."""
    import torch

    from sdebench.metrics import compute_metrics, data_reference, exact_reference, noise_floors
    from sdebench.metrics import metric_names as resolve_metrics
    from sdebench.scores.base import ProgressScore
    from sdebench.solvers import make_solver
    from sdebench.solvers.base import FixedStepSolver

    # Validate everything before any work.
    problem = _problem(args)
    check(args.n > 0, "n", f"must be > 0, got {args.n}")
    options: dict[str, Any] = _parse_params(args.param)
    for name in ("steps", "nfe"):
        value = getattr(args, name)
        if value is not None:
            check(value > 0, name, f"must be > 0, got {value}")
            check(name not in options, name, f"given twice (--{name} and --param {name}=...)")
            options[name] = value
    solver = make_solver(args.solver, **options)
    metric_names = resolve_metrics([m.strip() for m in args.metrics.split(",") if m.strip()], "metrics")
    out = check_writable(args.out, "out") if args.out is not None else None
    if out is not None:
        check(out.suffix == ".npy", "out", f"must end in .npy, got {str(out)!r}")
    plot = check_writable(args.plot, "plot") if args.plot else None
    if plot is not None:
        check(plot.suffix == ".png", "plot", f"must end in .png, got {str(plot)!r}")
    reason = solver.supports(problem)
    check(reason is None, "solver", f"{args.solver!r} does not apply to {problem.name!r}: {reason}")
    check(args.budget_seeds >= 2, "budget-seeds", f"must be >= 2 (a CI needs two seeds), got {args.budget_seeds}")
    train_config = _score_config(args)
    score = _build_score(args, problem, train_config)
    generator = torch.Generator().manual_seed(args.seed)
    planned = solver.nfe_for_steps(solver.options["steps"]) if isinstance(solver, FixedStepSolver) else None
    try:
        with _progress(args, planned, f"sample {args.solver}") as bar:
            result = solver.solve(problem, ProgressScore(score, bar), args.n, generator)
    except DivergedError as exc:
        sys.stderr.write(f"diverged: {exc}\n")
        return 1
    reference = exact_reference(problem)
    metrics = compute_metrics(metric_names, result.samples, reference)
    floors = noise_floors(metric_names, reference, args.n)
    # The same metrics against p_data: what the ε truncation alone costs (e.g. +2% per-mode spread on ve-gmm2).
    data_ref = data_reference(problem)
    metrics_data = compute_metrics(metric_names, result.samples, data_ref)
    samples = result.samples.numpy()
    if out is not None:
        write_atomic(out, lambda tmp: _save_npy(tmp, samples))
    if plot is not None:
        from sdebench.reports.plots import density_plot

        exact = reference.draw(args.n, torch.Generator().manual_seed(args.seed + 1)).numpy()
        title = (
            f"{problem.name}: {args.solver} ({result.nfe} NFE), {args.score} score — "
            f"SW1 {metrics.get('sw1', float('nan')):.4f} (floor {floors.get('sw1', float('nan')):.4f})"
        )
        density_plot({f"{args.solver}, {args.score} score": samples, "exact p_ε": exact}, plot, title=title)
    summary = {
        "problem": problem.name,
        "score": args.score,
        "solver": args.solver,
        "params": solver.options,
        "n": args.n,
        "seed": args.seed,
        "nfe": result.nfe,
        "nfe_per_sample": result.nfe_per_sample,
        "wall_s": result.wall_s,
        "reference": reference.label,
        "metrics_p_data": metrics_data,
        "reference_p_data": data_ref.label,
        "metrics": metrics,
        "floors": floors,
        "out": str(out) if out else None,
        "plot": str(plot) if plot else None,
        "version": __version__,
    }
    budget = None
    if args.budget:
        from sdebench.analysis.budget import error_budget

        seeds = [args.seed + k for k in range(args.budget_seeds)]
        try:
            budget = error_budget(problem, args.solver, solver.options, score, args.n, seeds, metric_names)
        except DivergedError as exc:
            sys.stderr.write(f"diverged (error budget): {exc}\n")
            return 1
        summary["budget"] = {
            key: {
                "floor": _estimate_dict(b.floor),
                "terms": {source: _estimate_dict(t) for source, t in b.terms.items()},
                "dominant": b.dominant,
                "seeds": seeds,
            }
            for key, b in budget.items()
        }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{problem.name}: {args.solver} {solver.options} with the {args.score} score, n = {args.n:,}")
        print(f"NFE {result.nfe}, wall time {result.wall_s:.2f} s; reference: {reference.label}")
        print(f"{'metric':<24}{'vs p_ε':>12}{'floor':>12}{'vs p_data':>12}")
        for key, value in metrics.items():
            print(f"{key:<24}{value:>12.5g}{floors[key]:>12.5g}{metrics_data.get(key, float('nan')):>12.5g}")
        if budget is not None:
            _print_budget(budget, len(seeds))
        print(f"samples: {out}" if out else "samples: not kept (give --out FILE.npy to keep them)")
        if plot:
            print(f"plot: {plot}")
    return 0


def _estimate_dict(e: Any) -> dict[str, float] | None:
    return None if e is None else {"mean": e.mean, "ci": e.half_width}


def _print_budget(budget: dict[str, Any], seeds: int) -> None:
    """The error budget of the headline metrics as a text table."""
    from sdebench.metrics.budget import SOURCES, format_term

    shown = [k for k in ("sw1", "mode_max_dev_se", "mode_std_rel_err_max") if k in budget] or list(budget)[:3]
    print(f"\nerror budget over {seeds} seeds (term ± 95% CI; * = distinguishable from 0):")
    print(f"{'metric':<22}{'floor':>18}" + "".join(f"{s:>22}" for s in SOURCES) + f"{'dominant':>20}")
    for key in shown:
        b = budget[key]
        floor = "—" if b.floor is None else f"{b.floor.mean:.3g} ± {b.floor.half_width:.2g}"
        terms = "".join(f"{format_term(b.terms[s]):>22}" for s in SOURCES)
        print(f"{key:<22}{floor:>18}{terms}{b.dominant:>20}")


def cmd_nll(args: argparse.Namespace) -> int:
    """NLL of exact draws from p_ε through the probability-flow ODE, next to the exact −log p_ε at the same points."""
    import torch

    from sdebench.analysis.likelihood import exact_nll, negative_log_likelihood, prior_gap

    problem = _problem(args)
    check(args.n >= 2, "n", f"must be ≥ 2 (the standard error needs two points), got {args.n}")
    check(
        args.divergence in DIVERGENCES, "divergence", f"unknown {args.divergence!r} (valid: {', '.join(DIVERGENCES)})"
    )
    check(args.noise in NOISES, "noise", f"unknown {args.noise!r} (valid: {', '.join(NOISES)})")
    check(args.probes >= 1, "probes", f"must be ≥ 1, got {args.probes}")
    for name in ("rtol", "atol"):
        value = getattr(args, name)
        check(0 < value < float("inf"), name, f"must be a finite number > 0, got {value}")
    train_config = _score_config(args)
    score = _build_score(args, problem, train_config)
    generator = torch.Generator().manual_seed(args.seed)
    x = problem.target().sample(args.n, generator=generator)[0]
    try:
        result = negative_log_likelihood(
            problem,
            score,
            x,
            divergence=args.divergence,
            noise=args.noise,
            n_probes=args.probes,
            rtol=args.rtol,
            atol=args.atol,
            generator=generator,
            progress=not args.quiet,
        )
    except DivergedError as exc:
        sys.stderr.write(f"diverged: {exc}\n")
        return 1
    exact = exact_nll(problem, x)
    diff = result.nll - exact  # paired over the same points: their sampling error cancels
    summary = {
        "problem": problem.name,
        "score": args.score,
        "seed": args.seed,
        "density": f"p_eps (t_end={problem.t_end:g})",
        **result.summary(),
        "exact_nll_mean": float(exact.mean()),
        "diff_mean": float(diff.mean()),
        "diff_se": float(diff.std()) / args.n**0.5,
        "prior_gap_mean": float(prior_gap(problem, result).mean()),
        "version": __version__,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{problem.name}: NLL of {args.n:,} exact draws from {summary['density']}, {args.score} score")
    print(f"{'NLL (nats)':<24}{result.mean:>12.5f} ± {result.se:.5f}   ({result.bpd:.5f} bits/dim)")
    print(f"{'exact −log p_ε':<24}{summary['exact_nll_mean']:>12.5f}")
    print(f"{'difference (paired)':<24}{summary['diff_mean']:>12.5f} ± {summary['diff_se']:.5f}")
    prior = f"N(0, {problem.sde.prior_std:g}² I) in place of p_T"
    print(f"{'  of which prior gap':<24}{summary['prior_gap_mean']:>12.5f}   ({prior})")
    print(f"NFE {result.nfe} ({result.backward} backward passes), wall time {result.wall_s:.2f} s")
    return 0


def cmd_converge(args: argparse.Namespace) -> int:
    """Strong and weak errors of a solver against a fine run of itself on the same Brownian path; fitted orders."""
    from sdebench.analysis.convergence import convergence_study
    from sdebench.scores.base import ProgressScore
    from sdebench.solvers import make_solver

    problem = _problem(args)
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise UserError("steps", f"must be comma-separated integers, got {args.steps!r}") from None
    check(len(steps) >= 2 and all(s > 0 for s in steps), "steps", "need at least two positive step counts")
    check(args.n >= 10, "n", f"must be ≥ 10, got {args.n}")
    options = _parse_params(args.param)
    solver = make_solver(args.solver, **options)
    check("steps" in solver.options, "solver", f"{args.solver!r} is not a fixed-step solver")
    plot = check_writable(args.plot, "plot") if args.plot else None
    if plot is not None:
        check(plot.suffix == ".png", "plot", f"must end in .png, got {str(plot)!r}")
    train_config = _score_config(args)
    score = _build_score(args, problem, train_config)
    try:
        with _progress(args, None, f"converge {args.solver}") as bar:
            study = convergence_study(
                problem,
                ProgressScore(score, bar),
                args.solver,
                steps,
                n=args.n,
                fine_steps=args.fine_steps,
                seed=args.seed,
                path=args.path,
                options=options,
            )
    except DivergedError as exc:
        sys.stderr.write(f"diverged: {exc}\n")
        return 1
    result = study.to_dict()
    if plot is not None:
        from sdebench.reports.plots import convergence_plot

        convergence_plot(result, plot)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{problem.name}: {args.solver} {options or ''} with the {args.score} score; n = {args.n} paths")
    print(f"reference: the same solver with {result['fine_steps']} steps on the same Brownian path")
    columns = ["steps", "nfe", "wall_s", "strong_error"]
    if result["multimodal"]:
        columns += ["strong_error_same_mode", "switch_fraction"]
    columns += ["weak_second_moment", "weak_second_moment_se"]
    print("".join(f"{c:>24}" for c in columns))
    for row in result["rows"]:
        print("".join(f"{row[c]:>24.5g}" for c in columns))
    for key in [k for k in result if k.endswith("_order_fit")]:
        fit = result[key]
        ci = f" [{fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}]" if fit["ci"] else ""
        value = f"{fit['value']:.3f}{ci}" if fit["value"] is not None else "not fitted"
        print(f"{key.removesuffix('_fit'):<32}{value}  {fit['note']}")
    if plot is not None:
        print(f"plot: {plot}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep config: every run not yet in the store, on the chosen executor; results stored as they finish."""
    from sdebench.sweeps import Store, load_sweep, score_label, solver_label
    from sdebench.sweeps.executors import check_executor, make_executor
    from sdebench.sweeps.sweep import prepare_scores, run_sweep, samples_dir

    notes: list[str] = []
    runs = load_sweep(args.config, notes, plugins=args.plugins)
    executor_name = args.executor or ("pool" if args.workers > 1 else "serial")
    check_executor(executor_name, args.workers, args.scheduler)
    check_writable(args.store, "store")
    if args.keep_samples:
        folder = samples_dir(args.store)
        check(not folder.exists() or folder.is_dir(), "keep-samples", f"{str(folder)!r} exists and is not a folder")
    # An existing store is checked now (a foreign file is refused untouched); a new one is created only once the
    # scores are trained, so a failure or Ctrl-C before any run leaves no empty store behind.
    statuses, stored_configs = Store.peek(args.store)
    for note in notes:
        print(f"note: {note}")
    if args.dry_run:
        for i, spec in enumerate(runs):
            # stale: this config is stored, but made by other code; the sweep redoes it under its new key
            status = statuses.get(spec.key, "stale" if spec.config_key in stored_configs else "pending")
            kind = "tol" if "rtol" in spec.options else "nfe"
            budget = "defaults" if spec.budget is None else f"{kind} {spec.budget:g}"
            print(
                f"{i:>5}  {status:<9} {spec.problem.get('name', 'custom'):<12} {score_label(spec.score):<10} "
                f"{solver_label(spec.solver, spec.options, spec.budget):<36} {budget:<10} seed {spec.seed:<3} "
                f"n {spec.n}"
            )
        counts = {s: sum(statuses.get(r.key) == s for r in runs) for s in ("ok", "diverged", "failed")}
        stale = sum(r.key not in statuses and r.config_key in stored_configs for r in runs)
        pending = len(runs) - sum(counts.values())
        print(
            f"{len(runs)} runs: {counts['ok']} done, {counts['diverged']} diverged, {counts['failed']} failed, "
            f"{pending} pending"
            + (f" ({stale} of them stale: stored, but made by other code)" if stale else "")
            + (" (--retry-failed reruns failed and diverged runs)" if counts["failed"] + counts["diverged"] else "")
        )
        return 0
    if args.keep_samples and any(statuses.get(r.key) == "ok" for r in runs):
        print("note: --keep-samples keeps the samples of runs computed now; runs already stored are not recomputed")
    executor = make_executor(executor_name, args.workers, args.scheduler)
    try:
        # the executor's workers train the networks side by side; the store is made only after that
        checkpoints = prepare_scores(runs, args.cache_dir, progress=not args.quiet, executor=executor)
        with Store(args.store) as store:
            summary = run_sweep(
                runs,
                store,
                executor,
                checkpoints,
                retry_failed=args.retry_failed,
                keep_samples=args.keep_samples,
                progress=not args.quiet,
            )
    finally:
        executor.close()
    print(summary.line())
    print(f"store: {args.store}")
    return 1 if summary.stored["failed"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Tables (Markdown, CSV, HTML) and plots of everything in a store, per problem."""
    from sdebench.reports import build_report

    written = build_report(args.store, args.out, density_budget=args.budget)
    for path in written:
        if path.name == "summary.md":
            print(path.read_text())
    index = Path(args.out) / "index.html"
    print(f"report: {index} (self-contained page); per problem: table.md, table.csv and PNG plots")
    print(f"{len(written)} files in {args.out}")
    return 0


def cmd_grid_search(args: argparse.Namespace) -> int:
    """Search the grid that makes a solver best at an NFE; judge it on other seeds; optionally save it as a plugin."""
    from sdebench.analysis.grid_search import (
        MARGIN,
        check_grid_name,
        fixed_step_solver,
        grid_plugin_source,
        judge,
        search_grid,
    )
    from sdebench.metrics import metric_names
    from sdebench.solvers import make_solver
    from sdebench.solvers.grids import positions_of

    problem = _problem(args)
    options: dict[str, Any] = _parse_params(args.param)
    solver = fixed_step_solver(args.solver, args.nfe, options)
    if args.objective != MARGIN:
        metric_names([args.objective], "objective")
    check(args.n >= 100, "n", f"must be >= 100, got {args.n}")
    check(args.evaluations > 0, "evaluations", f"must be > 0, got {args.evaluations}")
    judge_seeds = _seed_list(args.judge_seeds, "judge-seeds")
    check(args.seed not in judge_seeds, "judge-seeds", f"must not include the search seed {args.seed}")
    out = None
    if args.out is not None:
        out = check_writable(args.out, "out")
        check(out.suffix == ".py", "out", f"must end in .py (a plugin file), got {str(out)!r}")
        check(args.name is not None, "name", "is needed with --out (the name the grid is registered under)")
        check_grid_name(args.name)
    name = args.name or "searched"
    score = _build_score(args, problem, _score_config(args))
    result = search_grid(
        problem, args.solver, args.nfe, options, args.objective, args.n, args.seed, args.evaluations, score
    )
    source = grid_plugin_source(name, result) if out is not None else None
    verdicts = {
        grid: judge(
            problem,
            make_solver(args.solver, nfe=args.nfe, grid=grid, **options),
            judge_seeds,
            args.n,
            score=score,
        )
        for grid in result.starts
    }
    verdicts["searched"] = judge(problem, solver, judge_seeds, args.n, positions=result.positions, score=score)
    if out is not None:
        write_atomic(out, lambda tmp: Path(tmp).write_text(source))
    summary = {
        "problem": problem.name,
        "solver": args.solver,
        "options": options,
        "nfe": args.nfe,
        "steps": result.steps,
        "objective": args.objective,
        "search_seed": args.seed,
        "n": args.n,
        "sigmas": result.sigmas,
        "positions": positions_of(problem, [problem.sde.t_of_sigma(s) for s in result.sigmas]),
        "value": result.value,
        "start_values": result.starts,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
        "out": str(out) if out else None,
        "judged": {
            grid: [{"seed": v.seed, "margin": v.margin, "failures": v.failures} for v in vs]
            for grid, vs in verdicts.items()
        },
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{result.summary()}; {result.evaluations} evaluations in {result.seconds:.1f} s")
    print("σ: " + ", ".join(f"{s:.4g}" for s in result.sigmas))
    print(f"judged on seeds {judge_seeds} (margin = worst bar ratio, <= 1 passes every bar):")
    for grid, vs in verdicts.items():
        searched = (
            f"{args.objective} {result.value:.3g} at seed {args.seed}"
            if grid == "searched"
            else (f"{args.objective} {result.starts[grid]:.3g} at seed {args.seed}")
        )
        margins = "  ".join(f"{v.margin:6.3f}" for v in vs)
        verdict = (
            "passes" if all(not v.failures for v in vs) else "fails: " + next(v.failures[0] for v in vs if v.failures)
        )
        print(f"  {grid:<16} {searched:<28} margins {margins}  {verdict}")
    if out is not None:
        print(f"saved as grid {name!r} in {out}: use --plugin {out} and grid={name}")
    return 0


def _seed_list(text: str, field: str) -> list[int]:
    """Comma-separated non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(field, f"must be comma-separated integers, got {text!r}") from None
    check(seeds and all(seed >= 0 for seed in seeds), field, f"must list seeds >= 0, got {text!r}")
    return seeds


# -- parser ----------------------------------------------------------------------------------------------------------
def _add_problem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", help="a registered problem (see 'sdebench list')")
    p.add_argument("--config", type=Path, help="a TOML problem definition (format in README)")
    p.add_argument("--t-end", type=float, default=None, help="sampling stops at t = ε (default: the problem's)")


def _add_score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--score", default="exact", help="exact, trained, perturbed, or a plugin's (see 'sdebench list')")
    p.add_argument(
        "--score-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a score parameter, e.g. perturbed's scale=1.05 or shift=0.02",
    )


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="mlp", help="network: mlp (default, time-conditioned) or seed-mlp")
    p.add_argument("--weighting", default="sigma2", help=f"DSM weighting λ(t): {' or '.join(WEIGHTINGS)}")
    p.add_argument("--loss", default="squared", help=f"DSM loss: {' or '.join(LOSSES)} (norm: the seed's quirk)")
    p.add_argument(
        "--t-sampling",
        default="log-sigma",
        help=f"DSM training times: {' or '.join(T_SAMPLINGS)} (uniform-t: score_sde's)",
    )
    p.add_argument(
        "--sigma-floor",
        type=float,
        default=DEFAULT_SIGMA_FLOOR,
        help="log-sigma training times start at max(sigma(eps), this) (default 0.002, EDM's sigma_min)",
    )
    p.add_argument("--train-seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="checkpoint cache (None: $SDEBENCH_CACHE or ~/.cache/sdebench)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = _Parser(prog="sdebench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sdebench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list problems, SDEs, scores, solvers, metrics, grids and archs")
    p.add_argument("--json", action="store_true", help="print the registries as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a score network by DSM (cached); prints the checkpoint path")
    _add_problem_args(p)
    _add_train_args(p)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the config's, 4000)")
    p.add_argument("--json", action="store_true", help="print the checkpoint and its training info as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample with a solver and a score; print metrics")
    _add_problem_args(p)
    _add_train_args(p)
    _add_score_args(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="a trained checkpoint to use (must match)")
    p.add_argument("--train-steps", type=int, default=None, help="training steps for --score trained")
    p.add_argument("--solver", default="em", help="a registered solver (see 'sdebench list')")
    p.add_argument("--steps", type=int, default=None, help="solver steps")
    p.add_argument("--nfe", type=int, default=None, help="NFE budget: the most steps that fit (fixed-step solvers)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a solver parameter")
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help="comma-separated metrics, by name or by an output's name (sw1 computes sliced_wasserstein)",
    )
    p.add_argument("--out", type=Path, default=None, help="save the samples here (.npy, float64, shape (n, d))")
    p.add_argument("--plot", type=Path, default=None, help="density.png")
    p.add_argument(
        "--budget",
        action="store_true",
        help="also print the error budget: discretisation, prior mismatch, score error and ε-truncation, each "
        "with its noise (runs the solver from exact p_T draws and from the prior, with the exact and the given score)",
    )
    p.add_argument("--budget-seeds", type=int, default=3, help="seeds per rung of the error budget")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("nll", help="negative log-likelihood through the probability-flow ODE, against the exact one")
    _add_problem_args(p)
    _add_train_args(p)
    _add_score_args(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="a trained checkpoint to use (must match)")
    p.add_argument("--train-steps", type=int, default=None, help="training steps for --score trained")
    p.add_argument("--n", type=int, required=True, help="number of exact draws from p_ε to evaluate")
    p.add_argument("--seed", type=int, default=0, help="seeds the points and the Hutchinson probes")
    p.add_argument("--divergence", default="exact", help=f"{' or '.join(DIVERGENCES)} (exact: d backward passes)")
    p.add_argument("--noise", default="rademacher", help=f"Hutchinson probes: {' or '.join(NOISES)}")
    p.add_argument("--probes", type=int, default=1, help="Hutchinson probes per point")
    p.add_argument("--rtol", type=float, default=1e-6, help="solve_ivp relative tolerance")
    p.add_argument("--atol", type=float, default=1e-6, help="solve_ivp absolute tolerance")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_nll)

    p = sub.add_parser("converge", help="strong and weak errors against step count; fitted orders and a plot")
    _add_problem_args(p)
    _add_train_args(p)
    _add_score_args(p)
    p.add_argument("--train-steps", type=int, default=None, help="training steps for --score trained")
    p.add_argument("--solver", default="em", help="a registered solver (see 'sdebench list')")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a solver parameter")
    p.add_argument("--steps", default="16,32,64,128", help="comma-separated step counts")
    p.add_argument("--fine-steps", type=int, default=None, help="reference step count (default 8 × the largest)")
    p.add_argument("--n", type=int, default=2000, help="number of paths")
    p.add_argument(
        "--path",
        default="partition",
        help="Brownian path: partition (any grid, held in memory), interval (any grid, slower) or nested "
        "(uniform-t only; O(n·d) memory, for 10⁵ paths and weak errors)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Brownian paths and the start")
    p.add_argument("--plot", type=Path, default=None, help="convergence.png")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_converge)

    p = sub.add_parser("sweep", help="run a sweep config (TOML); results go into a SQLite store, resumable")
    p.add_argument("config", type=Path, help="sweep TOML file ([[sweep]] blocks; see README)")
    p.add_argument("--store", type=Path, default=Path("runs.db"), help="SQLite store")
    p.add_argument("--dry-run", action="store_true", help="print the expanded runs and what is done; run nothing")
    p.add_argument("--retry-failed", action="store_true", help="rerun runs stored as failed or diverged")
    p.add_argument("--workers", type=int, default=1, help="worker processes (more than 1: a local process pool)")
    p.add_argument("--executor", default=None, help="serial, pool or dask (default: serial, or pool with --workers)")
    p.add_argument("--scheduler", default=None, help="an existing Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--keep-samples", action="store_true", help="save each run's samples as <store>.samples/KEY.npy")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="checkpoint cache (None: $SDEBENCH_CACHE or ~/.cache/sdebench)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (for logs): one summary line")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "grid-search",
        help="find the time grid that makes a solver best at an NFE (exact score); judge it on other seeds; save it",
    )
    _add_problem_args(p)
    _add_train_args(p)
    _add_score_args(p)
    p.add_argument("--solver", required=True, help="a fixed-step solver (see 'sdebench list')")
    p.add_argument("--nfe", type=int, required=True, help="the NFE budget the grid is for")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a solver parameter")
    p.add_argument(
        "--objective",
        default="margin",
        help="what to minimise: margin (the worst ratio of the within-noise bars; <= 1 passes them all) or a metric "
        "output such as sw1 or mode_std_rel_err_max",
    )
    p.add_argument("--n", type=int, default=20_000, help="samples per trial")
    p.add_argument("--seed", type=int, default=0, help="the seed every trial samples with (search on one seed...)")
    p.add_argument("--judge-seeds", default="1,2", help="...judge on others: comma-separated seeds")
    p.add_argument("--evaluations", type=int, default=400, help="objective evaluations (solver runs) in all")
    p.add_argument("--name", default=None, help="register the grid under this name (with --out)")
    p.add_argument("--out", type=Path, default=None, help="write the grid as a plugin file (.py) to load later")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_grid_search)

    p = sub.add_parser("report", help="tables and plots from a sweep store: Markdown, CSV, one HTML page")
    p.add_argument("--store", type=Path, default=Path("runs.db"), help="SQLite store written by 'sdebench sweep'")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--budget", type=float, default=None, help="budget shown in the density grid (None: a middle one)")
    p.set_defaults(func=cmd_report)
    for command in sub.choices.values():
        command.add_argument(
            "--plugin",
            action="append",
            default=[],
            metavar="FILE.py|MODULE",
            help="load a plugin (a solver, metric, score or problem) first; repeatable",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sdebench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        from sdebench.plugins import load_entry_points, load_plugins

        load_entry_points()
        args.plugins = load_plugins(args.plugin)
        return args.func(args)
    except UserError as exc:
        sys.stderr.write("".join(f"error: {line}\n" for line in exc.lines()))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
