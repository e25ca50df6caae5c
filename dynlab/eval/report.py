"""Summaries and the Markdown report of an evaluation, and writing them out.

The metrics dataset has a ``learner`` dimension: the run's emulator first, then
the baselines (persistence, linear). ``summary.json`` holds the emulator's
headline numbers and the same keys for each baseline under ``baselines``.
"""
from __future__ import annotations

import warnings
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["learner_summary", "summary", "report_markdown", "write_results", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("rmse_lead1", "rmse_last", "acc_lead1", "acc_last", "vpt_median", "vpt_median_lyapunov",
                "vpt_capped_fraction", "vpt_censored_fraction", "wasserstein_mean", "spec_div_mean",
                "spec_res_mean", "long_rollout_finite")


def _num(x: Any) -> float | None:
    v = float(x)
    return float(f"{v:.12g}") if math.isfinite(v) else None  # 0.15, not 0.15000000000000002


def learner_summary(ds) -> dict[str, float | None]:
    """Headline numbers of one learner's scores (a dataset without ``learner`` dim)."""
    out: dict[str, Any] = {
        "rmse_lead1": _num(ds["rmse"].values[0]),
        "rmse_last": _num(ds["rmse"].values[-1]),
        "acc_lead1": _num(ds["acc"].values[0]),
        "acc_last": _num(ds["acc"].values[-1]),
        "vpt_median": _num(np.median(ds["vpt"].values)),
        "vpt_median_lyapunov": _num(np.median(ds["vpt_lyapunov"].values)),
        "vpt_capped_fraction": _num(np.mean(ds["vpt_capped"].values)),
        "vpt_censored_fraction": _num(np.mean(ds["vpt_censored"].values)),
    }
    for key, var in (("wasserstein_mean", "wasserstein"), ("spec_div_mean", "spec_div"),
                     ("spec_res_mean", "spec_res"), ("long_rollout_finite", "long_rollout_finite")):
        out[key] = _num(np.mean(ds[var].values)) if var in ds else None
    return out


def summary(ds, *, emulator: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json`` content: the emulator's numbers, ``baselines: {name: numbers}``, and the scales."""
    learners = [str(v) for v in ds["learner"].values]
    emulator = emulator or learners[0]
    out: dict[str, Any] = {"learner": emulator, **learner_summary(ds.sel(learner=emulator))}
    out["baselines"] = {name: learner_summary(ds.sel(learner=name)) for name in learners if name != emulator}
    lam = ds.attrs.get("lambda1", float("nan"))
    agree = ds["reference_agreement_time"].values if "reference_agreement_time" in ds else np.array([np.nan])
    out.update({
        "lambda1": _num(lam), "lyapunov_time": _num(ds.attrs.get("lyapunov_time", float("nan"))),
        "reference_agreement_time_median": _num(np.median(agree)),
        "reference_agreement_censored_fraction": _num(np.mean(ds["agreement_censored"].values))
        if "agreement_censored" in ds else None,
        "dt": _num(ds.attrs["dt"]), "context": int(ds.attrs["context"]), "horizon": int(ds.attrs["horizon"]),
        "horizon_time": _num(ds.attrs["horizon"] * ds.attrs["dt"]), "threshold": _num(ds.attrs["threshold"]),
        "n_test_members": int(ds.sizes["member"]), "n_forecasts": int(ds.sizes["member"] * ds.sizes["start"]),
    })
    out.update(extra or {})
    return out


def _fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}g}"


def report_markdown(summ: dict[str, Any], figures: dict[str, str], *, title: str = "Evaluation") -> str:
    """A short Markdown report: the scores table (emulator vs baselines), the scales, the figures."""
    rows = [(summ["learner"], summ)] + list(summ["baselines"].items())
    head = ("| learner | RMSE lead 1 | RMSE last | ACC lead 1 | ACC last | VPT median | VPT median (Λ) "
            "| capped | W1 mean | SpecDiv | SpecRes |")
    lines = [f"# {title}", "", head, "|" + "---|" * 11]
    for name, s in rows:
        lines.append(f"| {name} | {_fmt(s['rmse_lead1'])} | {_fmt(s['rmse_last'])} | {_fmt(s['acc_lead1'])} "
                     f"| {_fmt(s['acc_last'])} | {_fmt(s['vpt_median'])} | {_fmt(s['vpt_median_lyapunov'])} "
                     f"| {_fmt(s['vpt_capped_fraction'], 2)} | {_fmt(s['wasserstein_mean'])} "
                     f"| {_fmt(s['spec_div_mean'])} | {_fmt(s['spec_res_mean'])} |")
    lam = summ.get("lambda1")
    lines += [
        "",
        f"- {summ['n_forecasts']} forecasts on {summ['n_test_members']} test members; context {summ['context']} "
        f"steps, horizon {summ['horizon']} steps = {_fmt(summ['horizon_time'])} model time (Δt = {_fmt(summ['dt'])}).",
        f"- VPT: first lead with |forecast − truth| / σ_clim > {summ['threshold']}; "
        + (f"λ₁ = {lam:.3f}, one Lyapunov time = {_fmt(summ['lyapunov_time'])}." if lam is not None
           else "in model time only (no λ₁ for this system)."),
        ("- Reference integrators (RK4 vs Dormand–Prince) agree over the whole horizon for every forecast."
         if summ.get("reference_agreement_censored_fraction") == 1.0 else
         f"- Reference integrators (RK4 vs Dormand–Prince) agree for "
         f"{_fmt(summ['reference_agreement_time_median'])} model time (median); VPT is capped there "
         "('capped' = fraction of capped forecasts)." if summ.get("reference_agreement_time_median") is not None
         else "- No reference integrator agreement horizon (no deterministic reference system): VPT uncapped."),
        "- W1: Wasserstein-1 of the marginals of long free rollouts; SpecDiv/SpecRes: spectral divergence on the "
        "high-frequency tail and RMS difference of log10 power spectra.",
    ]
    if summ.get("notes"):
        lines.append(f"- Notes: {summ['notes']}")
    lines += ["", "## Figures", ""]
    for name, rel in figures.items():
        lines.append(f"![{name.replace('_', ' ')}]({rel})")
        lines.append("")
    return "\n".join(lines)


def _zarr_ready(ds):
    """String coordinates as object arrays (Zarr v3's variable-length strings)."""
    for name in list(ds.variables):
        if ds[name].dtype.kind == "U":
            ds = ds.assign_coords({name: ds[name].astype(object)}) if name in ds.coords else \
                ds.assign({name: ds[name].astype(object)})
    attrs = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in ds.attrs.items()}
    return ds.assign_attrs(attrs)


def write_results(ds, out_dir: Path, *, emulator: str | None = None, title: str = "Evaluation",
                  extra: dict[str, Any] | None = None, plots: bool = True) -> dict[str, Path]:
    """Write ``metrics.zarr``, ``summary.json``, ``report.md`` and the PNG figures into ``out_dir``."""
    from .plots import write_figures

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.zarr"
    with warnings.catch_warnings():  # zarr: consolidated metadata is an extension of format 3
        warnings.simplefilter("ignore")
        _zarr_ready(ds).to_zarr(metrics_path, mode="w", zarr_format=3, consolidated=True)
    summ = summary(ds, emulator=emulator, extra=extra)
    if ds.attrs.get("notes"):
        summ["notes"] = ds.attrs["notes"]
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2) + "\n")
    figures = write_figures(ds, out_dir / "figures") if plots else {}
    rel = {name: str(Path(p).relative_to(out_dir)) for name, p in figures.items()}
    (out_dir / "report.md").write_text(report_markdown(summ, rel, title=title) + "\n")
    return {"metrics": metrics_path, "summary": out_dir / "summary.json", "report": out_dir / "report.md",
            **{f"figure_{k}": Path(v) for k, v in figures.items()}}
