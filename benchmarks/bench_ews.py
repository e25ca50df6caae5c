"""Batched early-warning indicators (dynlab.ews) against ewstools, and the LR bootstrap wall time.

Part 1: 1,000 series × 5,000 points (AR(1) residuals whose coefficient rises from 0.2 to
0.95, plus a slow sinusoidal trend; seed 0). dynlab computes Gaussian detrending
(bandwidth 0.2), every rolling indicator (variance, std, cv, ac1, skewness, kurtosis;
window 0.25) and the Kendall τ of each for all 1,000 series in one call. ewstools
(``TimeSeries.detrend("Gaussian") + compute_var/std/cv/auto/skew/kurt + compute_ktau``)
runs one series at a time on the first ``--ewstools-series`` (20) series; its time is
scaled ×(1000/20) (series are independent). The values on those series are compared
(max relative difference; pandas' rolling skew/kurt carry ~1e-10 rounding). Target ≥ 100×.

Part 2: the parametric bootstrap of the likelihood ratio (Boettiger & Hastings 2012):
one 500-point series simulated from the LSN (R0 = 0.04, m = −7e−5, θ = 1.8, σ = 0.2,
Δt = 1, x0 = 2, seed 3), 200 replicates from each fitted model, each fitted by both models
(800 fits), all in one batch. Target: under a minute on 2 CPU cores. For context only (not a
ratio: another machine, another implementation): the R package earlywarning's tutorial
reports 4,177 s for its 200-replicate bootstrap.

ewstools is a benchmark/test-only dependency (``pip install ewstools``); without it dynlab
is timed alone.

    python benchmarks/bench_ews.py [--series 1000] [--length 5000] [--ewstools-series 20]
                                   [--replicates 200] [--device cpu|cuda] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dynlab.ews import indicators, kendall_tau  # noqa: E402
from dynlab.ews.bootstrap import bootstrap_lr  # noqa: E402
from dynlab.ews.likelihood import simulate_lsn  # noqa: E402
from dynlab.ews.surrogates import ar1_scan  # noqa: E402

NAMES = {"variance": "variance", "std": "std", "cv": "cv", "ac1": "ac1", "skewness": "skew", "kurtosis": "kurtosis"}


def make_series(n_series: int, length: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_series, length, generator=g, dtype=torch.float64)
    phi = torch.linspace(0.2, 0.95, length, dtype=torch.float64)
    # time-varying AR(1) by a plain loop in chunks would be slow; use the scan with the mean phi per
    # block of 250 points (piecewise-constant coefficient) and stitch
    out = torch.empty_like(eps)
    prev = torch.zeros(n_series, dtype=torch.float64)
    for lo in range(0, length, 250):
        hi = min(length, lo + 250)
        p = phi[lo:hi].mean()
        block = eps[:, lo:hi].clone()
        block[:, 0] += p * prev
        out[:, lo:hi] = ar1_scan(p.reshape(1, 1).expand(n_series, 1), block)
        prev = out[:, hi - 1]
    t = torch.arange(length, dtype=torch.float64)
    return (out + 10 + 2 * torch.sin(2 * np.pi * t / length)).numpy()


def run_dynlab(x: np.ndarray, device: str):
    t0 = time.perf_counter()
    ds = indicators(torch.as_tensor(x, device=device), detrend="gaussian", bandwidth=0.2, window=0.25, device=device)
    tau = kendall_tau(ds, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, ds, tau


def run_ewstools(x: np.ndarray):
    import ewstools

    t0 = time.perf_counter()
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in x:
            ts = ewstools.TimeSeries(row)
            ts.detrend(method="Gaussian", bandwidth=0.2)
            ts.compute_var(rolling_window=0.25)
            ts.compute_std(rolling_window=0.25)
            ts.compute_cv(rolling_window=0.25)
            ts.compute_auto(rolling_window=0.25, lag=1)
            ts.compute_skew(rolling_window=0.25)
            ts.compute_kurt(rolling_window=0.25)
            ts.compute_ktau()
            results.append(ts)
    return time.perf_counter() - t0, results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--length", type=int, default=5000)
    ap.add_argument("--ewstools-series", type=int, default=20)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared, loaded machine more threads oversubscribe "
                         "the cores and run several times slower)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f}, device {args.device}")

    x = make_series(args.series, args.length)
    run_dynlab(x[:8, :500], args.device)                       # warm-up
    t_dyn, ds, tau = run_dynlab(x, args.device)
    print(f"dynlab: {args.series} series x {args.length} points, gaussian detrend + 6 indicators + tau: "
          f"{t_dyn:.2f} s ({t_dyn / args.series * 1e3:.2f} ms per series)")
    try:
        import ewstools  # noqa: F401
    except ImportError:
        print("ewstools not installed (pip install ewstools): dynlab timed alone")
    else:
        k = min(args.ewstools_series, args.series)
        t_ews, res = run_ewstools(x[:k])
        scaled = t_ews * args.series / k
        print(f"ewstools: {k} series in {t_ews:.2f} s ({t_ews / k:.3f} s per series); scaled to {args.series}: "
              f"{scaled:.0f} s")
        print(f"speed-up (ewstools scaled / dynlab): {scaled / t_dyn:.0f}x  (target >= 100x)")
        worst = {}
        for ours, theirs in NAMES.items():
            rel, dtau = 0.0, 0.0
            for b, ts in enumerate(res):
                a, e = ds[ours].values[b], ts.ews[theirs].values
                same = np.array_equal(np.isnan(a), np.isnan(e))
                d = np.nanmax(np.abs(a - e) / np.maximum(np.abs(e), 1e-300)) if same else np.inf
                rel = max(rel, d)
                dtau = max(dtau, abs(float(tau[ours][b]) - ts.ktau[theirs]))
            worst[ours] = (rel, dtau)
        print("max relative difference of the indicator series / max |tau difference| on those series:")
        for name, (rel, dtau) in worst.items():
            print(f"  {name:9s} {rel:.1e} / {dtau:.1e}")

    g = torch.Generator().manual_seed(3)
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    series = simulate_lsn(one(2.0), 499, 1.0, one(0.04), one(-7e-5), one(1.8), one(0.2), g)
    bootstrap_lr(series, 1.0, n_replicates=4, seed=0)       # warm-up
    t0 = time.perf_counter()
    res = bootstrap_lr(series, 1.0, n_replicates=args.replicates, seed=0)
    t_boot = time.perf_counter() - t0
    print(f"LR parametric bootstrap: {args.replicates} replicates x 4 fits on a 500-point series: {t_boot:.1f} s "
          f"(target < 60 s; earlywarning's tutorial reports 4,177 s on another machine, context only)")
    print(f"  delta = {res.observed[0]:.3f}, p = {res.p_value[0]:.3f}, null-vs-test AUC = {res.auc[0]:.3f}, "
          f"fits not converged: {res.failed[0]} of {4 * args.replicates + 2}, delta < 0: {res.negative[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
