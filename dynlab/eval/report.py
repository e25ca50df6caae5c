"""Summaries, bootstrap intervals, the ranking and the Markdown report of an evaluation.

The metrics dataset has a ``learner`` dimension: the run's emulator first, then the
baselines. :func:`summary` returns (and ``summary.json`` holds) the emulator's headline
numbers, the same keys for each baseline under ``baselines``, and

* ``intervals``: for every headline number, the ``ci`` bootstrap interval from
  :func:`dynlab.eval.stats.bootstrap`, resampling test members (forecasts from one
  member are correlated) with ``n_boot`` replicates;
* ``differences``: ``emulator − baseline`` for each baseline on the same resamples
  (paired), with its interval;
* ``ranking``: every learner by median VPT at the largest ε (longer first; ties by
  the lead-1 RMSE), and ``rank`` of the emulator;
* ``beats_baselines_until_vpt``: for each baseline, whether the emulator's RMSE is
  below it at every lead up to the emulator's median VPT.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .stats import bootstrap

__all__ = ["learner_summary", "summary", "report_markdown", "write_results", "SUMMARY_KEYS", "beats_until_vpt",
           "eps_key"]

SUMMARY_KEYS = ("rmse_lead1", "rmse_last", "acc_lead1", "acc_last", "acc_centred_lead1", "acc_below",
                "acc_centred_below", "vpt_median", "vpt_median_lyapunov", "vpt_capped_fraction",
                "vpt_censored_fraction", "wasserstein_mean", "spec_div_mean", "spec_res_mean",
                "long_rollout_finite", "blowup", "crps_lead1", "spread_error_lead1")


def eps_key(key: str, eps: float) -> str:
    """``vpt_median`` at ε = 0.5 → ``vpt_median_eps0.5``."""
    return f"{key}_eps{eps:g}"


def _num(x: Any) -> float | None:
    v = float(x)
    return float(f"{v:.12g}") if math.isfinite(v) else None  # 0.15, not 0.15000000000000002


def _median(a: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(a)) if np.isfinite(a).any() else float("nan")


def learner_summary(ds) -> dict[str, float | None]:
    """Headline numbers (point estimates) of one learner's scores (a dataset without ``learner`` dim)."""
    out: dict[str, Any] = {
        "rmse_lead1": _num(ds["rmse"].values[0]),
        "rmse_last": _num(ds["rmse"].values[-1]),
        "acc_lead1": _num(ds["acc"].values[0]),
        "acc_last": _num(ds["acc"].values[-1]),
        "vpt_median": _num(_median(ds["vpt"].values)),
        "vpt_median_lyapunov": _num(_median(ds["vpt_lyapunov"].values)),
        "vpt_capped_fraction": _num(np.mean(ds["vpt_capped"].values)),
        "vpt_censored_fraction": _num(np.mean(ds["vpt_censored"].values)),
    }
    for key, var in (("acc_centred_lead1", "acc_centred"), ("crps_lead1", "crps"),
                     ("spread_error_lead1", "spread_error")):
        out[key] = _num(ds[var].values[0]) if var in ds else None
    for key in ("acc_below", "acc_centred_below", "blowup"):
        out[key] = _num(ds[key].values) if key in ds else None
    if "vpt_eps" in ds:
        for eps in ds["threshold"].values:
            out[eps_key("vpt_median", eps)] = _num(_median(ds["vpt_eps"].sel(threshold=eps).values))
            out[eps_key("vpt_median_lyapunov", eps)] = _num(_median(ds["vpt_eps_lyapunov"].sel(threshold=eps).values))
    for key, var in (("wasserstein_mean", "wasserstein"), ("spec_div_mean", "spec_div"),
                     ("spec_res_mean", "spec_res"), ("long_rollout_finite", "long_rollout_finite")):
        out[key] = _num(np.mean(ds[var].values)) if var in ds else None
    return out


def _forecast_rows(ds) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-forecast columns ``(N, K)`` whose statistic gives the bootstrapped headline numbers,
    the statistic's names, and the member of each row."""
    Mn, S = ds.sizes["member"], ds.sizes["start"]
    cols = [ds["vpt"].values.reshape(-1), ds["vpt_lyapunov"].values.reshape(-1)]
    names = ["vpt_median", "vpt_median_lyapunov"]
    if "vpt_eps" in ds:
        for eps in ds["threshold"].values:
            cols += [ds["vpt_eps"].sel(threshold=eps).values.reshape(-1),
                     ds["vpt_eps_lyapunov"].sel(threshold=eps).values.reshape(-1)]
            names += [eps_key("vpt_median", eps), eps_key("vpt_median_lyapunov", eps)]
    n_median = len(cols)
    err = ds["error"].values.reshape(Mn * S, -1) if "error" in ds else None
    parts = ds["acc_parts"].values.reshape(Mn * S, -1, 3) if "acc_parts" in ds else None
    if err is not None:
        cols += [err[:, 0] ** 2, err[:, -1] ** 2]
        names += ["rmse_lead1", "rmse_last"]
    if parts is not None:
        cols += [parts[:, 0, 0], parts[:, 0, 1], parts[:, 0, 2], parts[:, -1, 0], parts[:, -1, 1], parts[:, -1, 2]]
        names += ["acc_lead1", "acc_last"]
    return np.stack(cols, axis=1), names, np.asarray([n_median, err is not None, parts is not None])


def _statistic(layout: np.ndarray, scale: float, n_features: int):
    n_median, has_err, has_parts = (int(v) for v in layout)

    def stat(rows: np.ndarray) -> np.ndarray:
        # called n_boot times per learner: one vectorised median, warnings silenced by the caller
        block = rows[:, :n_median]
        out = [*np.nanmedian(block, axis=0)]
        j = n_median
        if has_err:
            means = rows[:, j:j + 2].mean(0)
            out += [*(scale * np.sqrt(means / n_features))]
            j += 2
        if has_parts:
            sums = rows[:, j:j + 6].sum(0)
            for k in (0, 3):
                den = math.sqrt(sums[k + 1] * sums[k + 2])
                out.append(sums[k] / den if den > 0 else np.nan)
        return np.asarray(out, dtype=np.float64)

    return stat


def _pair(low: Any, high: Any) -> list[float | None]:
    return [_num(low), _num(high)]


def intervals(ds, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
              emulator: str | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
    """Bootstrap intervals of each learner's headline numbers, and the paired differences
    ``emulator − baseline`` (resampling test members; see the module docstring)."""
    learners = [str(v) for v in ds["learner"].values]
    emulator = emulator or learners[0]
    rows, layout = {}, None
    names: list[str] = []
    for name in learners:
        rows[name], names, layout = _forecast_rows(ds.sel(learner=name))
    members = np.repeat(np.arange(ds.sizes["member"]), ds.sizes["start"])
    stat = _statistic(layout, float(ds.attrs["climate_scale"]),
                      int(ds.attrs.get("n_features", ds.sizes.get("feature", 1))))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no λ₁) give NaN medians
        boot = bootstrap(rows, stat, groups=members, reference=emulator, n_boot=n_boot, ci=ci, seed=seed)
    per = {name: {k: _pair(boot[name].low[i], boot[name].high[i]) for i, k in enumerate(names)} for name in learners}
    diffs = {}
    for name in learners:
        if name == emulator:
            continue
        d = boot[f"{name} - {emulator}"]  # baseline − emulator on the same draws: negate
        diffs[name] = {k: {"estimate": _num(-d.estimate[i]), "low": _num(-d.high[i]), "high": _num(-d.low[i])}
                       for i, k in enumerate(names)}
    return per, diffs


def beats_until_vpt(ds, emulator: str) -> dict[str, bool]:
    """For each baseline: is the emulator's RMSE below it at every lead ≤ the emulator's median VPT
    (at least lead 1)?"""
    names = [str(v) for v in ds["learner"].values]
    vpt = _median(ds["vpt"].sel(learner=emulator).values)
    leads = int(max(1, round((vpt if math.isfinite(vpt) else 0.0) / float(ds.attrs["dt"]))))
    rmse = ds["rmse"]
    mine = rmse.sel(learner=emulator).values[:leads]

    def theirs(name: str) -> np.ndarray:  # a blown-up baseline (NaN RMSE) is beaten; a NaN emulator is not
        other = rmse.sel(learner=name).values[:leads]
        return np.where(np.isnan(other), np.inf, other)

    return {name: bool(np.all(mine < theirs(name))) for name in names if name != emulator}


def ranking_key(ds) -> str:
    """The summary key learners are ranked by: the median VPT at the largest ε."""
    if "threshold" in ds.coords and ds.sizes.get("threshold", 0):
        return eps_key("vpt_median", float(ds["threshold"].values.max()))
    return "vpt_median"


def summary(ds, *, emulator: str | None = None, extra: dict[str, Any] | None = None, n_boot: int = 1000,
            ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``summary.json`` content (module docstring)."""
    learners = [str(v) for v in ds["learner"].values]
    emulator = emulator or learners[0]
    per, diffs = intervals(ds, n_boot=n_boot, ci=ci, seed=seed, emulator=emulator)
    numbers = {name: {**learner_summary(ds.sel(learner=name)), "intervals": per[name]} for name in learners}
    key = ranking_key(ds)

    def order(name: str) -> tuple[float, float]:
        v, r = numbers[name].get(key), numbers[name].get("rmse_lead1")
        return (-(v if v is not None else -math.inf), r if r is not None else math.inf)

    ranking = sorted(learners, key=order)
    out: dict[str, Any] = {"learner": emulator, **numbers[emulator]}
    out["baselines"] = {name: numbers[name] for name in learners if name != emulator}
    out["differences"] = diffs
    out["ranking_key"] = key
    out["ranking"] = ranking
    out["rank"] = ranking.index(emulator) + 1
    out["beats_baselines_until_vpt"] = beats_until_vpt(ds, emulator) if len(learners) > 1 else {}
    lam = ds.attrs.get("lambda1", float("nan"))
    agree = ds["reference_agreement_time"].values if "reference_agreement_time" in ds else np.array([np.nan])
    out.update({
        "lambda1": _num(lam if lam is not None else float("nan")),
        "lambda1_estimate": _num(ds.attrs.get("lambda1_estimate") if ds.attrs.get("lambda1_estimate") is not None
                                 else float("nan")),
        "lambda1_stderr": _num(ds.attrs.get("lambda1_stderr") if ds.attrs.get("lambda1_stderr") is not None
                               else float("nan")),
        "lyapunov_time": _num(ds.attrs.get("lyapunov_time") if ds.attrs.get("lyapunov_time") is not None
                              else float("nan")),
        "reference_agreement_time_median": _num(_median(agree)),
        "reference_agreement_censored_fraction": _num(np.mean(ds["agreement_censored"].values))
        if "agreement_censored" in ds else None,
        "dt": _num(ds.attrs["dt"]), "context": int(ds.attrs["context"]), "horizon": int(ds.attrs["horizon"]),
        "horizon_time": _num(ds.attrs["horizon"] * ds.attrs["dt"]), "threshold": _num(ds.attrs["threshold"]),
        "thresholds": [float(v) for v in ds["threshold"].values] if "threshold" in ds.coords else [],
        "vpt_interpolate": bool(ds.attrs.get("vpt_interpolate", 0)),
        "n_test_members": int(ds.sizes["member"]), "n_forecasts": int(ds.sizes["member"] * ds.sizes["start"]),
        "n_boot": int(n_boot), "ci": float(ci),
    })
    if ds.attrs.get("notes"):
        out["notes"] = ds.attrs["notes"]
    out.update(extra or {})
    return out


def _fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else ("∞" if v == math.inf else f"{v:.{digits}g}")


def _ci(s: dict[str, Any], key: str, digits: int = 3) -> str:
    v = s.get(key)
    if v is None:
        return "—"
    lo, hi = (s.get("intervals") or {}).get(key, [None, None])
    return _fmt(v, digits) + (f" [{_fmt(lo, digits)}, {_fmt(hi, digits)}]" if lo is not None and hi is not None else "")


def _below(s: dict[str, Any], key: str, summ: dict[str, Any]) -> str:
    """A first-lead-below time; '> H' when the score never fell below within the horizon."""
    return _fmt(s.get(key)) if s.get(key) is not None else f"> {_fmt(summ['horizon_time'])}"


def report_markdown(summ: dict[str, Any], figures: dict[str, str], *, title: str = "Evaluation") -> str:
    """A short Markdown report: the ranked scores table with intervals, the paired differences,
    the scales and the figures."""
    numbers = {summ["learner"]: summ, **summ["baselines"]}
    ranking = summ.get("ranking") or list(numbers)
    eps = summ.get("thresholds") or []
    vpt_cols = [(eps_key("vpt_median", e), eps_key("vpt_median_lyapunov", e), f"ε={e:g}") for e in eps] or \
        [("vpt_median", "vpt_median_lyapunov", f"ε={summ['threshold']}")]
    head = "| rank | learner | " + " | ".join(f"VPT {lab} | VPT {lab} (Λ)" for _, _, lab in vpt_cols) + \
        " | RMSE lead 1 | ACC lead 1 | ACC<0.6 at | centred ACC<0.6 at | blow-up | W1 mean | SpecDiv |"
    ncol = head.count("|") - 1
    ci_pct = round(100 * summ.get("ci", 0.95))
    lines = [f"# {title}", "", f"Medians and {ci_pct} % bootstrap intervals over {summ['n_forecasts']} forecasts "
             f"({summ['n_boot']} resamples of the {summ['n_test_members']} test members); ranked by "
             f"`{summ.get('ranking_key', 'vpt_median')}`. '—': not defined (no significant λ₁, or no such score).",
             "", head, "|" + "---|" * ncol]
    for i, name in enumerate(ranking, 1):
        s = numbers[name]
        cells = [str(i), f"**{name}**" if name == summ["learner"] else name]
        for k, kl, _ in vpt_cols:
            cells += [_ci(s, k), _ci(s, kl)]
        cells += [_ci(s, "rmse_lead1"), _ci(s, "acc_lead1"), _below(s, "acc_below", summ),
                  _below(s, "acc_centred_below", summ), _fmt(s.get("blowup"), 2), _fmt(s.get("wasserstein_mean")),
                  _fmt(s.get("spec_div_mean"))]
        lines.append("| " + " | ".join(cells) + " |")
    diffs = summ.get("differences") or {}
    if diffs:
        k, kl, lab = vpt_cols[-1]
        lines += ["", f"Paired differences {summ['learner']} − baseline (same resamples; an interval that excludes 0 "
                      "is a difference the test members support):", "",
                  f"| baseline | Δ VPT {lab} | Δ VPT {lab} (Λ) | Δ RMSE lead 1 |", "|---|---|---|---|"]
        for name, d in diffs.items():
            cell = lambda key: ("—" if d[key]["estimate"] is None else  # noqa: E731
                                f"{_fmt(d[key]['estimate'])} [{_fmt(d[key]['low'])}, {_fmt(d[key]['high'])}]")
            lines.append(f"| {name} | {cell(k)} | {cell(kl)} | {cell('rmse_lead1')} |")
    lam = summ.get("lambda1")
    est, se = summ.get("lambda1_estimate"), summ.get("lambda1_stderr")
    lam_text = (f"λ₁ = {lam:.3f} ± {_fmt(se, 2)} (s.e.), one Lyapunov time = {_fmt(summ['lyapunov_time'])}."
                if lam is not None else
                (f"λ₁ = {_fmt(est)} ± {_fmt(se, 2)} is not clearly positive: VPT in model time only."
                 if est is not None else "in model time only (no λ₁ for this system)."))
    lines += [
        "",
        f"- {summ['n_forecasts']} forecasts on {summ['n_test_members']} test members; context {summ['context']} "
        f"steps, horizon {summ['horizon']} steps = {_fmt(summ['horizon_time'])} model time (Δt = {_fmt(summ['dt'])}).",
        "- VPT: the last valid time, max t with |forecast − truth| / σ_clim ≤ ε at every lead up to t (the first "
        "save is t = Δt" + ("; interpolated crossing" if summ.get("vpt_interpolate") else "") + "); " + lam_text,
        ("- Reference integrators (RK4 vs Dormand–Prince) agree over the whole horizon for every forecast."
         if summ.get("reference_agreement_censored_fraction") == 1.0 else
         f"- Reference integrators (RK4 vs Dormand–Prince) agree for "
         f"{_fmt(summ['reference_agreement_time_median'])} model time (median); VPT is capped there."
         if summ.get("reference_agreement_time_median") is not None
         else "- No reference integrator agreement horizon (no deterministic reference system): VPT uncapped."),
        "- ACC: uncentred (anomalies about the training climatology) and centred; 'ACC<0.6 at': the first lead "
        "time below 0.6 ('> H': not within the horizon). Blow-up: fraction of long free rollouts that leave the "
        "stated bound or turn non-finite.",
        "- W1: Wasserstein-1 of the marginals of long free rollouts; SpecDiv: spectral divergence on the "
        "high-frequency tail. Baselines: docs/baselines.md.",
    ]
    censored = [n for n in ranking if (numbers[n].get("vpt_censored_fraction") or 0) > 0.5]
    if censored:
        lines.append(f"- Most forecasts of {', '.join(censored)} stay valid over the whole horizon (censored): "
                     "their median VPT is the horizon, a lower bound; lengthen eval.horizon to separate them.")
    if summ.get("crps_lead1") is not None:
        lines.append(f"- Systems with noise: CRPS at lead 1 {_fmt(summ['crps_lead1'])}, spread–error ratio "
                     f"{_fmt(summ.get('spread_error_lead1'))} (1: reliable ensemble).")
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
                  extra: dict[str, Any] | None = None, plots: bool = True, summ: dict[str, Any] | None = None,
                  n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write ``metrics.zarr``, ``summary.json``, ``report.md`` and the PNG figures into ``out_dir``.

    Returns ``(paths, summary)``; pass ``summ`` to write a summary already computed.
    """
    from .plots import write_figures

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.zarr"
    with warnings.catch_warnings():  # zarr: consolidated metadata is an extension of format 3
        warnings.simplefilter("ignore")
        _zarr_ready(ds).to_zarr(metrics_path, mode="w", zarr_format=3, consolidated=True)
    if summ is None:
        summ = summary(ds, emulator=emulator, extra=extra, n_boot=n_boot, ci=ci, seed=seed)
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2) + "\n")
    figures = write_figures(ds, out_dir / "figures") if plots else {}
    rel = {name: str(Path(p).relative_to(out_dir)) for name, p in figures.items()}
    (out_dir / "report.md").write_text(report_markdown(summ, rel, title=title) + "\n")
    paths = {"metrics": metrics_path, "summary": out_dir / "summary.json", "report": out_dir / "report.md",
             **{f"figure_{k}": Path(v) for k, v in figures.items()}}
    return paths, summ
