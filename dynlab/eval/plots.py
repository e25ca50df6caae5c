"""Figures of an evaluation, drawn from its metrics dataset alone (matplotlib on the Agg canvas).

Each function takes the dataset written to ``metrics.zarr`` (dims ``learner``,
``lead``, ``variable``, ...) and a path, and writes one PNG.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_error_growth", "plot_hovmoller", "plot_histograms", "plot_spectra", "write_figures"]


def _figure(nrows: int, ncols: int, figsize: tuple[float, float], **kw):
    """A Figure on the Agg canvas, without pyplot: no global backend state is touched
    (plotting from a notebook with another backend keeps working)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def _save(fig, path: Path, top: float = 0.86, bottom: float = 0.15, left: float = 0.07, right: float = 0.98,
          wspace: float = 0.3, hspace: float = 0.3) -> Path:
    # fixed margins: a layout engine costs seconds per figure on a busy CPU
    fig.subplots_adjust(top=top, bottom=bottom, left=left, right=right, wspace=wspace, hspace=hspace)
    fig.savefig(path, dpi=80)
    return path


def _learners(ds) -> list[str]:
    if "learner" in ds.dims:
        return [str(v) for v in ds["learner"].values]
    return [str(ds.attrs.get("learner", "emulator"))]


def _sel(ds, name, learner):
    da = ds[name]
    return da.sel(learner=learner) if "learner" in da.dims else da


def plot_error_growth(ds, path: Path) -> Path:
    """RMSE, anomaly correlation and median normalised error against lead time, one line per learner."""
    fig, axes = _figure(1, 3, (13, 3.6))
    lead = ds["lead"].values
    for name in _learners(ds):
        axes[0].plot(lead, _sel(ds, "rmse", name).values, label=name)
        axes[1].plot(lead, _sel(ds, "acc", name).values, label=name)
        axes[2].semilogy(lead, np.maximum(_sel(ds, "error_median", name).values, 1e-16), label=name)
    axes[2].axhline(ds.attrs.get("threshold", 0.4), color="k", lw=0.8, ls="--", label="VPT threshold")
    lyap = ds.attrs.get("lyapunov_time", float("nan"))
    for ax in axes:
        if np.isfinite(lyap) and lyap <= lead[-1]:
            ax.axvline(lyap, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("lead time (model time)")
    axes[0].set_ylabel("RMSE")
    axes[1].set_ylabel("anomaly correlation")
    axes[2].set_ylabel("median |error| / climate scale")
    axes[0].legend(fontsize=8)
    fig.suptitle("error growth" + (f" (dotted: one Lyapunov time, {lyap:.3g})" if np.isfinite(lyap) else ""))
    return _save(fig, path)


def plot_hovmoller(ds, path: Path, learner: str | None = None) -> Path:
    """Truth vs forecast of the first forecast: space–lead diagrams of the first variable
    with a spatial dim (line plots of the features otherwise)."""
    learner = learner or _learners(ds)[0]
    truth = ds["sample_truth"].values  # (H, D)
    fc = _sel(ds, "sample_forecast", learner).values
    lead = ds["lead"].values
    names = [str(f) for f in ds["feature"].values]
    var = str(ds["variable"].values[0])
    cols = [i for i, n in enumerate(names) if n == var or n.startswith(var + "[")]
    if len(cols) > 1:
        fig, axes = _figure(1, 3, (13, 3.8), sharey=True)
        lim = np.nanmax(np.abs(truth[:, cols]))
        for ax, data, title in ((axes[0], truth[:, cols], "truth"), (axes[1], fc[:, cols], learner),
                                (axes[2], fc[:, cols] - truth[:, cols], f"{learner} − truth")):
            im = ax.pcolormesh(np.arange(len(cols)), lead, data, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
            ax.set_title(title)
            ax.set_xlabel(f"{var} feature")
        axes[0].set_ylabel("lead time")
        fig.colorbar(im, cax=fig.add_axes((0.92, 0.15, 0.012, 0.71)))
    else:
        n = min(len(names), 4)
        fig, axes = _figure(n, 1, (8, 2 * n), sharex=True, squeeze=False)
        for i in range(n):
            axes[i, 0].plot(lead, truth[:, i], "k", label="truth")
            axes[i, 0].plot(lead, fc[:, i], "C1--", label=learner)
            axes[i, 0].set_ylabel(names[i])
        axes[0, 0].legend(fontsize=8)
        axes[-1, 0].set_xlabel("lead time")
    fig.suptitle(f"first test forecast (member {ds['member'].values[0]})")
    return _save(fig, path, right=0.9 if len(cols) > 1 else 0.98, left=0.08 if len(cols) > 1 else 0.12)


def plot_histograms(ds, path: Path) -> Path:
    """Marginal densities of the truth and of each learner's free rollouts, per variable."""
    variables = [str(v) for v in ds["variable"].values][:4]
    fig, axes = _figure(1, len(variables), (4.5 * len(variables), 3.4), squeeze=False)
    for j, var in enumerate(variables):
        ax = axes[0, j]
        edges = ds["bin_edges"].sel(variable=var).values
        ax.stairs(ds["hist_truth"].sel(variable=var).values, edges, color="k", lw=2, label="truth")
        if "hist" in ds:
            for name in _learners(ds):
                ax.stairs(_sel(ds, "hist", name).sel(variable=var).values, edges, label=name)
        ax.set_xlabel(var)
        ax.set_ylabel("density")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("marginal distributions of long free rollouts")
    return _save(fig, path, left=0.7 / fig.get_figwidth(), top=0.84, bottom=0.17)


def plot_spectra(ds, path: Path) -> Path:
    """Mean temporal power spectra of the truth and of each learner's free rollouts."""
    variables = [str(v) for v in ds["variable"].values][:4]
    fig, axes = _figure(1, len(variables), (4.5 * len(variables), 3.4), squeeze=False)
    f = ds["frequency"].values
    sel = f > 0
    for j, var in enumerate(variables):
        ax = axes[0, j]
        truth = ds["spectrum_truth"].sel(variable=var).values[sel]
        ax.loglog(f[sel], truth, "k", lw=2, label="truth")
        if "spectrum" in ds:
            for name in _learners(ds):
                s = _sel(ds, "spectrum", name).sel(variable=var).values[sel]
                ax.loglog(f[sel], np.maximum(s, 1e-30), label=name)
        if np.isfinite(truth).any() and np.nanmin(truth) > 0:  # a flat forecast would stretch the axis to the floor
            ax.set_ylim(bottom=1e-4 * np.nanmin(truth))
        ax.set_xlabel("frequency (1/model time)")
        ax.set_ylabel(f"power of {var}")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("mean power spectra of long free rollouts")
    return _save(fig, path, left=0.8 / fig.get_figwidth(), top=0.84, bottom=0.17)


def write_figures(ds, out_dir: Path) -> dict[str, Path]:
    """All figures into ``out_dir``; returns ``{figure name: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"error_growth": plot_error_growth(ds, out_dir / "error_growth.png"),
               "hovmoller": plot_hovmoller(ds, out_dir / "hovmoller.png")}
    if "hist_truth" in ds and "hist" in ds:
        figures["histograms"] = plot_histograms(ds, out_dir / "histograms.png")
    if "spectrum_truth" in ds and "spectrum" in ds:
        figures["spectra"] = plot_spectra(ds, out_dir / "spectra.png")
    return figures
