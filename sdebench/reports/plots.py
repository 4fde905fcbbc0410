"""Plots. Only plots assume two dimensions: higher-dimensional samples show their first two coordinates."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sdebench.io import write_atomic


def density_plot(
    panels: dict[str, np.ndarray], path: str | Path, title: str = "", bins: int = 200, lim: float | None = None
) -> None:
    """Side-by-side 2-D histograms (like the seed's hist2d), one per named sample set, on common axes.

    The colour scale is shared and logarithmic so that both the mode cores and stray samples between modes show.
    """
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in panels.items()}
    dim = next(iter(arrays.values())).shape[1]
    if lim is None:
        stacked = np.concatenate([a for a in arrays.values()])
        lim = float(np.quantile(np.abs(stacked[:, : min(dim, 2)]), 0.999)) * 1.15
    edges = np.linspace(-lim, lim, bins + 1)
    fig, axes = plt.subplots(1, len(arrays), figsize=(4.6 * len(arrays), 4.4), squeeze=False, constrained_layout=True)
    for ax, (name, a) in zip(axes[0], arrays.items(), strict=True):
        if dim == 1:
            ax.hist(a[:, 0], bins=edges, density=True, color="tab:blue")
            ax.set_xlabel("x")
        else:
            counts, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[edges, edges])
            mesh = ax.pcolormesh(edges, edges, counts.T, cmap="viridis", norm=matplotlib.colors.LogNorm(vmin=1))
            ax.set_aspect("equal")
            ax.set_xlabel("x₁")
            ax.set_ylabel("x₂" if dim == 2 else f"x₂ (first two of {dim} coordinates)")
            fig.colorbar(mesh, ax=ax, shrink=0.8, label="count per bin")
        ax.set_title(f"{name}  (n = {a.shape[0]:,})", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def convergence_plot(result: dict, path: str | Path) -> None:
    """Log-log errors against step count with the fitted orders in the legend; switch fraction on the right.

    ``result`` is :meth:`ConvergenceResult.to_dict` output.
    """
    rows = result["rows"]
    steps = np.array([r["steps"] for r in rows], dtype=float)
    series = [("strong", "strong_error", "RMS strong error", "o-")]
    if result["multimodal"]:
        series.append(("strong_same_mode", "strong_error_same_mode", "strong, same-mode paths", "s-"))
    series += [
        ("weak_mean", "weak_mean", "weak, mean", "d--"),
        ("weak_second_moment", "weak_second_moment", "weak, E‖x‖²", "^--"),
        ("weak_mode_spread", "weak_mode_spread", "weak, per-mode spread", "v--"),
    ]
    panels = 2 if result["multimodal"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 4.4), squeeze=False, constrained_layout=True)
    ax = axes[0][0]
    for order_key, column, label, style in series:
        values = np.array([r[column] for r in rows], dtype=float)
        kind, _, detail = order_key.partition("_")
        fit = result.get(f"{kind}_order" + (f"_{detail}" if detail else "") + "_fit", {})
        if fit.get("value") is not None:
            ci = fit.get("ci")
            label += f": order {fit['value']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        else:
            label += ": not fitted (Monte-Carlo error)"
        if column.startswith("weak"):
            se = np.array([r[f"{column}_se"] for r in rows], dtype=float)
            ax.errorbar(steps, np.maximum(values, 1e-12), yerr=se, fmt=style, label=label, capsize=3)
        else:
            ax.plot(steps, values, style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.set_ylabel("error at t_end")
    ax.set_title(f"{result['problem']}: {result['solver']} (n = {result['n']}, reference {result['fine_steps']} steps)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    if panels == 2:
        ax = axes[0][1]
        switch = np.array([r["switch_fraction"] for r in rows], dtype=float)
        fit = result.get("switch_order_fit", {})
        label = "paths ending in another mode" + (f": order {fit['value']:.2f}" if fit.get("value") else "")
        ax.plot(steps, np.maximum(switch, 1e-6), "o-", color="tab:red", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("steps")
        ax.set_ylabel("fraction of paths")
        ax.set_title("mode switches against the reference path")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


# -- sweep reports: figures rendered to PNG bytes (the report writes them and embeds them in the HTML) -----------------
def figure_png(fig: matplotlib.figure.Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    return buffer.getvalue()


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
#: 40 colours, the most distinct first: tab20's ten dark shades (tab10's hues), then its ten light ones, then tab20b.
_PALETTE = (
    [plt.get_cmap("tab20")(i) for i in range(0, 20, 2)]
    + [plt.get_cmap("tab20")(i) for i in range(1, 20, 2)]
    + [plt.get_cmap("tab20b")(i) for i in range(20)]
)


def _styles(groups: list) -> dict[str, dict]:
    """One colour and marker per solver label, the same in every panel and every figure of a report.

    Labels are numbered across all families (SDE, ODE, adaptive) in one order, so em and ddim never share a
    colour, and a figure showing fewer families (the convergence plot) keeps each solver's colour.
    """
    from sdebench.reports.tables import FAMILIES

    labels = [label for _, label in sorted({(FAMILIES.index(g.family), g.label) for g in groups})]
    return {
        label: {"color": _PALETTE[i % len(_PALETTE)], "marker": _MARKERS[i % len(_MARKERS)]}
        for i, label in enumerate(labels)
    }


def _family_grid(groups: list, width: float = 5.2, height: float = 3.9):
    """Figure with one row per score and one column per solver family present, and one style per solver label.

    Every panel shares the NFE axis, and the panels of a row share the metric axis, so an SDE solver and an ODE
    solver at the same height and position did equally well at the same cost."""
    from sdebench.reports.tables import FAMILIES

    scores = list(dict.fromkeys(g.score for g in groups))
    families = [f for f in FAMILIES if any(g.family == f for g in groups)]
    fig, axes = plt.subplots(
        len(scores),
        len(families),
        figsize=(width * len(families), height * len(scores) + 1.6),
        squeeze=False,
        sharex=True,
        sharey="row",
        constrained_layout=True,
    )
    return fig, axes, scores, families, _styles(groups)


def _budget_ticks(axes, groups: list) -> None:
    """x ticks at the fixed-step budgets that ran (4, 8, …, 128), labelled plainly, on every (shared) NFE axis."""
    budgets = sorted({g.budget for g in groups if not g.adaptive and g.budget})
    if not budgets:
        return
    rows = np.atleast_2d(axes)
    for i, row in enumerate(rows):
        for ax in row:
            if ax.get_xscale() == "log":
                ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(budgets))
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            # the NFE axis is shared: its label and tick labels only under the bottom row
            ax.set_xlabel("NFE per sample (ticks: the budgets run)" if i == len(rows) - 1 else "")


def _floor_band(ax, floor, label: str | None) -> None:
    if floor is None:
        return
    low = floor.mean - floor.half_width
    if low > 0:
        ax.axhspan(low, floor.mean + floor.half_width, color="0.85", zorder=0)
    ax.axhline(floor.mean, color="0.45", ls=":", lw=1.2, zorder=1, label=label)


def _plain_log_axes(ax) -> None:
    """Plain numbers (20, 50, 100) instead of 2×10¹ on log axes; 1-2-5 ticks when the axis spans few decades."""
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        low, high = (max(v, 1e-300) for v in limits)
        if abs(math.log10(high / low)) > 3:  # many decades: powers of ten read best
            axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=30))
            axis.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation())
        else:
            axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=30))
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _legend_below(fig, ax, handles_from, ncol: int = 2) -> None:
    handles, labels = handles_from.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, fontsize=7.5, frameon=False
        )


def _log_log_panel(ax: plt.Axes, title: str) -> None:
    """Log-log axes against NFE per sample, with plain tick labels and a light grid.

    A panel with no positive value to show (every error at or below its floor) says so instead of failing to
    log-scale."""
    if not any(len(line.get_ydata()) and (np.asarray(line.get_ydata(), dtype=float) > 0).any() for line in ax.lines):
        ax.text(0.5, 0.5, "every point at or below its noise floor", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("NFE per sample")
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax)
    ax.grid(True, which="both", alpha=0.25)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("NFE per sample")


def work_precision_png(groups: list, metric: str = "sw1") -> bytes:
    """``metric`` against NFE per sample (log-log), one line per solver with 95% CI error bars, the noise floor of
    exact samples as a grey band; one row of panels per score and one column per solver family."""
    from sdebench.reports.tables import declarations, series

    fig, axes, scores, families, styles = _family_grid(groups)
    lines = series(groups)
    declared = declarations(groups).get(metric)
    name = declared.title if declared else metric
    for i, score in enumerate(scores):
        for j, family in enumerate(families):
            ax = axes[i][j]
            floor = None
            for (s, label, n), rows in lines.items():
                rows = [g for g in rows if s == score and g.family == family and metric in g.estimates and g.nfe]
                if not rows:
                    continue
                rows.sort(key=lambda g: g.nfe)
                x = np.array([g.nfe for g in rows])
                y = np.array([g.estimates[metric].mean for g in rows])
                hw = np.array([g.estimates[metric].half_width for g in rows])
                hw = np.where(np.isfinite(hw), hw, 0.0)
                # a log axis cannot show a bar below zero: clip the lower bar just above zero
                yerr = np.vstack([np.minimum(hw, 0.95 * np.abs(y)), hw])
                suffix = f", n={n}" if len({g.n for g in groups}) > 1 else ""
                bars = ax.errorbar(
                    x,
                    np.abs(y),
                    yerr=yerr,
                    label=label + suffix,
                    capsize=2,
                    lw=1.3,
                    ms=4.5,
                    elinewidth=0.8,
                    **styles[label],
                )
                for part in bars[2]:  # lighter bars: with many solvers the CIs overlap
                    part.set_alpha(0.45)
                floor = floor or rows[0].floors.get(metric)
            if declared is None or declared.floor:  # an output without a meaningful floor shows none
                _floor_band(ax, floor, "noise floor (exact samples, 95% CI)")
            _log_log_panel(ax, f"{score} score · {family}")
            if j == 0:
                ax.set_ylabel(f"{name} (mean ± 95% CI)")
    _budget_ticks(axes, groups)
    for j in range(len(families)):
        # one legend per family column, under its bottom panel: the same solvers are in every row
        source = next((axes[i][j] for i in range(len(scores)) if axes[i][j].get_legend_handles_labels()[0]), None)
        if source is not None:
            _legend_below(fig, axes[-1][j], source)
    fig.suptitle(f"{groups[0].problem}: work–precision ({name} against the exact p_ε)", fontsize=11)
    return figure_png(fig)


def convergence_png(groups: list) -> bytes:
    """Error against NFE per sample for the fixed-step solvers (log-log) with the least-squares slope over the
    points clearly above the noise in the legend, beside the declared weak order. Filled markers: points used in
    the fit; open markers: points within twice the noise (not used)."""
    from sdebench.metrics.base import find_output
    from sdebench.reports.tables import convergence_fits, convergence_metric, declarations, error_above_floor, series

    fixed = [g for g in groups if not g.adaptive]
    metric = convergence_metric(fixed) if fixed else None
    if metric is None:
        fig, ax = plt.subplots(figsize=(6, 2), constrained_layout=True)
        ax.axis("off")
        ax.text(0.5, 0.5, "no fixed-step runs with metrics: nothing to fit", ha="center", va="center")
        return figure_png(fig)
    fits = convergence_fits(fixed, metric)
    output = declarations(fixed)[metric]
    fig, axes, scores, families, styles = _family_grid(fixed)
    lines = series(fixed)
    for i, score in enumerate(scores):
        for j, family in enumerate(families):
            ax = axes[i][j]
            for key, rows in lines.items():
                s, label, n = key
                rows = [g for g in rows if s == score and g.family == family and metric in g.estimates and g.nfe]
                if not rows or key not in fits:
                    continue
                fit = fits[key]
                pairs = [
                    error_above_floor(find_output(g.declared, metric), g.estimates[metric], g.floors.get(metric))
                    for g in rows
                ]
                x = np.array([g.nfe for g in rows])
                err = np.array([p[0] for p in pairs])
                style = styles[label]
                order = rows[0].weak_order
                declared = f", declared {order:g}" if order is not None else ""
                text = f"slope {fit.slope:.2f}".replace("-", "−") if fit.slope is not None else "not fitted"
                if fit.slope is not None and order is not None and not 0.5 * order <= -fit.slope <= 2 * order:
                    text += " (pre-asymptotic?)"  # far from the declared order: e.g. a blow-up at the coarsest steps
                suffix = f", n={n}" if len({g.n for g in fixed}) > 1 else ""
                legend = f"{label}{suffix}: {text}{declared}"
                shown = err > 0
                ax.plot(x[shown], err[shown], "-", color=style["color"], lw=1.1, alpha=0.7)
                used = np.array(fit.used)
                # filled markers: points in the fit; open: too close to the noise. The legend entry goes to
                # whichever kind exists, so each solver appears once.
                ax.plot(
                    x[used & shown], err[used & shown], ls="none", ms=5, label=legend if used.any() else None, **style
                )
                ax.plot(
                    x[~used & shown],
                    err[~used & shown],
                    ls="none",
                    ms=5,
                    mfc="none",
                    color=style["color"],
                    marker=style["marker"],
                    label=None if used.any() else legend,
                )
                if fit.slope is not None:
                    # the fitted line over the fitted range
                    xs = x[used]
                    logc = np.mean(np.log(err[used]) - fit.slope * np.log(xs))
                    ax.plot(xs, np.exp(logc) * xs**fit.slope, "--", color=style["color"], lw=0.9)
            _log_log_panel(ax, f"{score} score · {family}")
            if j == 0:
                what = f"|{output.title}|" if output.direction == "signed" else f"{output.title} − floor"
                ax.set_ylabel(what)
            _legend_below(fig, ax, ax, ncol=1)
    _budget_ticks(axes, fixed)
    why = (
        "error = |mean log p_ε(x) − E_p_ε[log p_ε]|, a weak error with exact value 0 (noise does not bias it up)"
        if metric == "log_density_gap"
        else f"error = {output.title} minus its noise floor"
    )
    fig.suptitle(
        f"{groups[0].problem}: convergence of the fixed-step solvers (means over seeds)\n{why}\nslope: least squares "
        "on log-log over the filled points (95% CI < error < 1: significant, and asymptotic); needs ≥ 3",
        fontsize=9.5,
    )
    return figure_png(fig)


def density_grid_png(
    panels: list[tuple[str, np.ndarray | str]],
    title: str,
    lim: float,
    ncols: int = 6,
    bins: int = 150,
    dim: int = 2,
) -> bytes:
    """A grid of 2-D histograms on shared axes and one shared logarithmic colour scale; a panel whose value is a
    string (e.g. "diverged") shows that text instead. Samples outside ±``lim`` are counted in the panel title.
    The axes are the samples' first two coordinates (x₁, x₂); ``dim`` = 1 puts every sample at x₂ = 0."""
    edges = np.linspace(-lim, lim, bins + 1)
    counts = {}
    for name, a in panels:
        if not isinstance(a, str):
            a = np.asarray(a, dtype=np.float64)
            y = a[:, 1] if a.shape[1] > 1 else np.zeros(len(a))
            counts[name] = (np.histogram2d(a[:, 0], y, bins=[edges, edges])[0], len(a))
    vmax = max([c.max() for c, _ in counts.values()] + [1.0])
    ncols = min(ncols, max(1, math.ceil(math.sqrt(1.6 * len(panels)))))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.55 * ncols + 0.8, 2.6 * nrows + 0.6),
        squeeze=False,
        sharex=True,
        sharey=True,
        constrained_layout=True,
    )
    mesh = None
    for ax, (name, a) in zip(axes.flat, panels, strict=False):
        ax.set_aspect("equal")
        if isinstance(a, str):
            ax.set_facecolor("#fbeaea")
            ax.text(
                0.5, 0.5, a, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="#a01010", wrap=True
            )
            ax.set_title(name, fontsize=7.5)
            continue
        c, total = counts[name]
        outside = 1 - c.sum() / total
        mesh = ax.pcolormesh(
            edges, edges, c.T, cmap="viridis", norm=matplotlib.colors.LogNorm(vmin=1, vmax=vmax), rasterized=True
        )
        ax.set_title(name + (f"\n{100 * outside:.1f}% outside" if outside > 0.001 else ""), fontsize=7.5)
        ax.tick_params(labelsize=7)
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.axis("off")
        elif k + ncols >= len(panels):  # nothing below this panel: it shows the x tick labels
            ax.xaxis.set_tick_params(labelbottom=True)
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, shrink=min(0.6, 2.5 / nrows), label="count per bin", pad=0.01)
    fig.supxlabel("x₁ (normalised coordinates)", fontsize=9)
    fig.supylabel("x₂" if dim > 1 else "(1-D data: x₂ = 0)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)
