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
