"""Plots. Only plots assume two dimensions: higher-dimensional samples show their first two coordinates."""

from __future__ import annotations

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
