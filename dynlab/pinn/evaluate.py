r"""A PINN's own evaluation against its reference solution.

Relative L2 error over the whole domain, :math:`\lVert u − u_{ref}\rVert_2 /
\lVert u_{ref}\rVert_2` on the reference grid (the convention of Raissi et al. 2019
and Wang et al. 2022), and per time; the space–time error field beside the
reference (PDE) or the trajectories (ODE).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["relative_l2", "relative_l2_in_time", "plot_error_field", "plot_error_in_time"]


def relative_l2(u: torch.Tensor, ref: torch.Tensor) -> float:
    """``‖u − ref‖ / ‖ref‖`` over all entries (shapes must agree)."""
    if u.shape != ref.shape:
        raise ValueError(f"prediction {tuple(u.shape)} and reference {tuple(ref.shape)} differ in shape")
    return float((u - ref).norm() / ref.norm())


def relative_l2_in_time(u: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per time (first axis): ``‖u(t) − ref(t)‖ / ‖ref(t)‖``, ``(T,)``."""
    if u.shape != ref.shape:
        raise ValueError(f"prediction {tuple(u.shape)} and reference {tuple(ref.shape)} differ in shape")
    diff = (u - ref).reshape(u.shape[0], -1).norm(dim=1)
    return diff / ref.reshape(ref.shape[0], -1).norm(dim=1).clamp_min(1e-300)


def _figure(nrows, ncols, figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_error_field(path: Path, times, u, ref, x=None, title: str = "") -> Path:
    """Reference | PINN | |error| as space–time images (PDE) or trajectories and error (ODE)."""
    times, u, ref = (np.asarray(v) for v in (times, u, ref))
    if x is not None:
        x = np.asarray(x)
        fig, ax = _figure(1, 3, (13, 3.6))
        lim = float(np.abs(ref).max())
        extent = (times[0], times[-1], x[0], x[-1])
        for a, data, name, kw in ((ax[0, 0], ref, "reference", dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
                                  (ax[0, 1], u, "PINN", dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
                                  (ax[0, 2], np.abs(u - ref), "|PINN − reference|", dict(cmap="viridis"))):
            im = a.imshow(data.T, origin="lower", aspect="auto", extent=extent, **kw)
            a.set_xlabel("t")
            a.set_ylabel("x")
            a.set_title(name)
            fig.colorbar(im, ax=a)
    else:
        fig, ax = _figure(1, 2, (11, 3.6))
        for i in range(ref.shape[1]):
            ax[0, 0].plot(times, ref[:, i], color=f"C{i}", lw=2, alpha=0.5, label=f"reference {i}")
            ax[0, 0].plot(times, u[:, i], color=f"C{i}", ls="--", lw=1, label=f"PINN {i}")
        ax[0, 0].set_xlabel("t")
        ax[0, 0].set_title("trajectories")
        floor = 1e-16 * float(np.abs(ref).max())  # the exact IC gives 0 at t = 0: keep the log axis readable
        ax[0, 1].semilogy(times, np.maximum(np.abs(u - ref), floor))
        ax[0, 1].set_xlabel("t")
        ax[0, 1].set_title("|PINN − reference|")
    fig.suptitle(title)
    fig.subplots_adjust(top=0.82, bottom=0.14, left=0.06, right=0.98, wspace=0.3)
    fig.savefig(path, dpi=80)
    return path


def plot_error_in_time(path: Path, times, rel_t, title: str = "") -> Path:
    """Relative L2 error against time (log scale)."""
    fig, ax = _figure(1, 1, (6, 3.6))
    ax[0, 0].semilogy(np.asarray(times), np.maximum(np.asarray(rel_t), 1e-16))
    ax[0, 0].set_xlabel("t")
    ax[0, 0].set_ylabel("relative L2 error")
    ax[0, 0].set_title(title)
    fig.subplots_adjust(top=0.88, bottom=0.15, left=0.14, right=0.97)
    fig.savefig(path, dpi=80)
    return path
