r"""``ews(cfg)``: early-warning statistics with their error rates (``dynlab ews``).

Protocol (stated again in every report):

1. Simulate two ensembles of the configured tipping model on one time grid: the
   *ramped* one (driver ramped at ``ramp_rate`` from its start value) and the
   *control* one (``stationary_rate``, 0 by default: no bifurcation approaches).
2. Detect each run's transition (:mod:`dynlab.ews.transitions`): the first saved
   time the state is below the threshold. Statistics stop ``analysis.lead`` before
   it (or at ``t_end`` for runs that did not tip).
3. Positives: ramped runs cut at their stop. Negatives: the control run with the
   same member index cut at the same length (or earlier, should it collapse).
4. Score every series: Kendall τ of each indicator (after detrending, with the
   bandwidth and window as fractions of the series' own length) and the likelihood
   ratio δ of the LSN against the OU, fitted to the detrended series (residuals plus
   the mean; ``analysis.lr_input=raw`` for the series itself).
5. Report, per statistic, the detection rate at ``report.alpha`` false alarms and the
   AUC, with member-block bootstrap intervals (paired over members).
6. The prosecutor's-fallacy control: control runs that collapsed by chance, cut
   before their collapse, against control runs that did not, cut at the same
   lengths. Their alarm rate at the threshold calibrated on the latter is the
   false-alarm rate of each indicator when nothing approaches; the fitted ramp m
   of the collapses should stay near zero.

Writes into ``out`` (created by dynlab, marked by ``.dynlab-run``):
``results.zarr``, ``summary.json``, ``report.md`` and ``figures/*.png``.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr

from ..config import to_container
from ..errors import ConfigError
from .config import EWSConfig
from .indicators import indicators as compute_indicators
from .models import TIPPING_MODELS
from .roc import auc, detection_rate
from .scoring import analysed_lengths, score_series

__all__ = ["ews", "EWSResult", "MARKER", "prepare_out"]

MARKER = ".dynlab-run"


@dataclass
class EWSResult:
    out_dir: Path
    summary: dict[str, Any]
    paths: dict[str, Path]


def prepare_out(path: str | Path) -> Path:
    """Create ``path`` with the marker file, or reuse it if dynlab made it (marker present).
    A non-empty folder without the marker is refused: dynlab never overwrites what it did not create."""
    out = Path(path)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"out={str(out)!r} exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise ConfigError(f"out={str(out)!r} is a non-empty folder that dynlab did not create "
                              f"(no {MARKER}); choose another out")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by dynlab ews; dynlab may overwrite this folder\n")
    return out


def _simulate(conf: EWSConfig, rate: float, member_offset: int):
    from simulators import TimeGrid, make_integrator, make_system

    params = dict(conf.system)
    name = params.pop("name", None)
    if name not in TIPPING_MODELS:
        raise ConfigError(f"system.name must be one of {', '.join(TIPPING_MODELS)}, got {name!r}")
    model = TIPPING_MODELS[name]
    params[model.rate_key] = rate
    try:
        system = make_system(name, **params)
        t = conf.time
        grid = TimeGrid(dt=t.dt, save_every=t.save_every, t_end=t.t_end, spinup=t.spinup)
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    members = range(member_offset, member_offset + conf.members)
    out = system.simulate(make_integrator(system.default_integrator), grid, seed=conf.seed, members=members)
    return (out[model.state].numpy().astype(np.float64), out[model.driver][0].numpy().astype(np.float64),
            grid.times.numpy().astype(np.float64), model, params)


def _transition_times(x, driver, times, model, params, conf) -> np.ndarray:
    thr = model.threshold(driver, params, conf.analysis.threshold, conf.analysis.fraction)
    below = x < thr[None, :]
    first = below.argmax(-1)
    return np.where(below.any(-1), times[first], np.nan)


def _stats_names(conf: EWSConfig) -> list[str]:
    names = [f"tau_{n}" for n in conf.analysis.indicators]
    return names + (["lr"] if conf.analysis.likelihood else [])


def _score(x, stop, times, conf):
    a = conf.analysis
    lengths = analysed_lengths(stop, conf.time.save_every, x.shape[1], a.length_step)
    return score_series(x, lengths, times, names=a.indicators, detrend=a.detrend, bandwidth=a.bandwidth,
                        span=a.span, window=a.window, min_points=a.min_points, likelihood=a.likelihood,
                        lr_input=a.lr_input, device=conf.device)


def _table(neg: Mapping[str, np.ndarray], pos: Mapping[str, np.ndarray], names, conf, *, paired: bool):
    """AUC and detection rate per statistic with bootstrap intervals; rows where both scores exist."""
    from ..eval.stats import bootstrap

    alpha, rows = conf.report.alpha, {}
    for name in names:
        n, p = np.asarray(neg[name]), np.asarray(pos[name])
        if paired:
            keep = np.isfinite(n) | np.isfinite(p)
            n, p = n[keep], p[keep]
        counts = dict(n_negative=int(np.isfinite(n).sum()), n_positive=int(np.isfinite(p).sum()))
        if n.size < 2 or p.size < 2:
            rows[name] = dict(auc=np.nan, auc_low=np.nan, auc_high=np.nan, detection=np.nan, detection_low=np.nan,
                              detection_high=np.nan, **counts)
            continue
        both = lambda neg_, pos_: np.array([auc(neg_, pos_), detection_rate(neg_, pos_, alpha)])  # noqa: E731
        if paired:  # member-block bootstrap: member i's ramped and control series are drawn together
            iv = bootstrap(np.stack([n, p], -1), statistic=lambda a: both(a[:, 0], a[:, 1]),
                           n_boot=conf.report.n_boot, ci=conf.report.ci, seed=conf.seed)["value"]
            est, low, high = iv.estimate, iv.low, iv.high
        else:  # independent groups: each resampled on its own
            rng = np.random.default_rng(conf.seed)
            reps = np.array([both(n[rng.integers(0, n.size, n.size)], p[rng.integers(0, p.size, p.size)])
                             for _ in range(conf.report.n_boot)])
            q = [(1 - conf.report.ci) / 2, (1 + conf.report.ci) / 2]
            est, (low, high) = both(n, p), np.quantile(reps, q, axis=0)
        rows[name] = dict(auc=float(est[0]), auc_low=float(low[0]), auc_high=float(high[0]),
                          detection=float(est[1]), detection_low=float(low[1]), detection_high=float(high[1]),
                          **counts)
    return rows


def _m_summary(scores: Mapping[str, np.ndarray], z: float = 1.645) -> dict[str, float]:
    m, se, ok = scores["m"], scores["m_se"], scores["fit_ok"]
    good = ok & np.isfinite(m) & np.isfinite(se) & (se > 0)
    return dict(n=int(good.sum()), median_m=float(np.median(m[good])) if good.any() else float("nan"),
                frac_m_negative=float((m[good] / se[good] < -z).mean()) if good.any() else float("nan"),
                failed_fits=int((~ok & (scores["n_points"] > 0)).sum()),
                negative_lr=int((scores["lr"] < 0).sum()))


def ews(cfg) -> EWSResult:
    """Run the protocol of the module docstring for a composed ``configs/ews.yaml`` config."""
    from .report import write_figures, write_report

    raw = to_container(cfg) if not isinstance(cfg, EWSConfig) else None
    conf = cfg if isinstance(cfg, EWSConfig) else EWSConfig.from_cfg(raw)
    unknown = [n for n in conf.analysis.indicators if n not in ("variance", "std", "ac1", "skewness", "kurtosis", "cv")]
    if unknown or not conf.analysis.indicators:
        raise ConfigError(f"analysis.indicators must be a non-empty subset of variance, std, ac1, skewness, "
                          f"kurtosis, cv; got {conf.analysis.indicators!r}")
    if conf.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={conf.device!r} but CUDA is not available; use device=cpu")
    out = prepare_out(conf.out)

    x_r, c_r, times, model, params = _simulate(conf, conf.ramp_rate, 0)
    x_c, c_c, _, _, params_c = _simulate(conf, conf.stationary_rate, conf.members)
    lead, t_end = conf.analysis.lead, conf.time.t_end
    tr_r = _transition_times(x_r, c_r, times, model, params, conf)
    tr_c = _transition_times(x_c, c_c, times, model, params_c, conf)
    stop_r = np.where(np.isnan(tr_r), t_end, tr_r - lead)
    stop_c = np.minimum(stop_r, np.where(np.isnan(tr_c), np.inf, tr_c - lead))
    s_r, s_c = _score(x_r, stop_r, times, conf), _score(x_c, stop_c, times, conf)
    names = _stats_names(conf)
    main = _table(s_c, s_r, names, conf, paired=True)

    # prosecutor's fallacy: chance collapses of the control ensemble vs non-collapsed control runs
    collapsed = np.flatnonzero(np.isfinite(tr_c))
    survivors = np.flatnonzero(np.isnan(tr_c))
    prosecutor: dict[str, Any] = dict(n_collapsed=int(collapsed.size), n_survivors=int(survivors.size))
    s_k = s_s = None
    if collapsed.size and survivors.size:
        stop_k = tr_c[collapsed] - lead
        s_k = _score(x_c[collapsed], stop_k, times, conf)
        partners = survivors[np.arange(collapsed.size) % survivors.size]
        s_s = _score(x_c[partners], stop_k, times, conf)
        prosecutor["table"] = _table(s_s, s_k, names, conf, paired=False)
        if conf.analysis.likelihood:
            prosecutor["m_collapsed"] = _m_summary(s_k)
    fold_value = model.fold(params)
    rate = conf.ramp_rate
    t_fold = (fold_value - params[model.start_key]) / rate if rate > 0 else float("inf")
    summary: dict[str, Any] = dict(
        name=conf.name, system=dict(conf.system), ramp_rate=rate, members=conf.members,
        driver=model.driver, fold_driver=fold_value, t_fold=t_fold,
        transitions=dict(ramped=int(np.isfinite(tr_r).sum()), control=int(np.isfinite(tr_c).sum()),
                         ramped_median_time=float(np.nanmedian(tr_r)) if np.isfinite(tr_r).any() else None,
                         ramped_median_lead_to_fold=float(np.nanmedian(t_fold - tr_r)) if np.isfinite(tr_r).any() else None),
        analysed=dict(ramped=int((s_r["n_points"] > 0).sum()), control=int((s_c["n_points"] > 0).sum()),
                      median_points=float(np.median(s_r["n_points"][s_r["n_points"] > 0])) if (s_r["n_points"] > 0).any() else 0),
        table=main, prosecutor=prosecutor, alpha=conf.report.alpha)
    if conf.analysis.likelihood:
        summary["m_ramped"] = _m_summary(s_r)
        summary["m_control"] = _m_summary(s_c)
    summary["lr_bootstrap"] = _lr_bootstrap(x_r, s_r, times, conf)

    # results store: per-series statistics on (ensemble, member) and the table on (statistic, metric)
    keys = names + ["m", "m_se", "n_points"]
    data = {k: (("ensemble", "member"), np.stack([s_r[k], s_c[k]]).astype(np.float64)) for k in keys if k in s_r}
    data["transition_time"] = (("ensemble", "member"), np.stack([tr_r, tr_c]))
    data["stop_time"] = (("ensemble", "member"), np.stack([stop_r, stop_c]))
    metrics = ["auc", "auc_low", "auc_high", "detection", "detection_low", "detection_high"]
    data["table"] = (("statistic", "metric"), np.array([[main[n][k] for k in metrics] for n in names]))
    text = lambda values: np.array(values, dtype=object)  # noqa: E731  (Zarr v3 variable-length strings)
    ds = xr.Dataset(data, coords=dict(ensemble=text(["ramped", "control"]), member=np.arange(conf.members),
                                      statistic=text(names), metric=text(metrics)))
    ds.attrs["summary"] = json.dumps(summary, default=float)
    ds.attrs["config"] = json.dumps(raw if raw is not None else {}, default=str)
    store = out / "results.zarr"
    with warnings.catch_warnings():  # zarr: consolidated metadata is an extension of format 3
        warnings.simplefilter("ignore")
        ds.to_zarr(store, mode="w", zarr_format=3, consolidated=True)
    paths = {"results": store}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    paths["summary"] = out / "summary.json"
    if conf.report.plots:
        paths.update(write_figures(out, conf, s_r, s_c, s_k, s_s, x_r, x_c, times, stop_r, names))
    paths["report"] = write_report(out, conf, summary, model, paths)
    return EWSResult(out, summary, paths)


def _lr_bootstrap(x_r, s_r, times, conf) -> list[dict[str, Any]]:
    from .bootstrap import bootstrap_lr

    if not conf.analysis.likelihood or conf.report.lr_series == 0:
        return []
    res = []
    rows = np.flatnonzero(s_r["n_points"] > 0)[: conf.report.lr_series]
    dt = float(times[1] - times[0])
    for i in rows:
        series = x_r[i, : s_r["n_points"][i]]
        if conf.analysis.lr_input == "detrended":
            a = conf.analysis
            ds = compute_indicators(series, detrend=a.detrend, bandwidth=a.bandwidth, span=a.span, window=a.window,
                                    indicators=["variance"])
            series = ds["residuals"].values + series.mean()
        b = bootstrap_lr(series, dt, n_replicates=conf.report.lr_replicates, seed=conf.seed)
        res.append(dict(member=int(i), n_points=int(s_r["n_points"][i]), delta=float(b.observed[0]),
                        p_value=float(b.p_value[0]), auc=float(b.auc[0]), power=float(b.power[0]),
                        m=float(b.m[0]), m_stderr=float(b.m_stderr[0]), failed_fits=int(b.failed[0]),
                        negative_delta=int(b.negative[0]), replicates=conf.report.lr_replicates))
    return res
