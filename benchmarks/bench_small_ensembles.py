"""Small ensembles: dynlab RK4 and dopri5 against a numba kernel and scipy, timed in one process.

Fixed step (RK4, dt=0.01, float64, a save every 10 steps), member-steps per
second at 1, 4, 16, 64 and 1024 members for Lorenz96 (K=40, F=8) and Lorenz63:

* ``numba``    an ``@njit`` RK4 kernel (loops over members, steps, components;
               no fastmath): the baseline of the ratios;
* ``eager``    ``make_integrator("rk4")`` (the default path, one Python call per operation);
* ``blocks``   ``make_integrator("rk4", blocks=True, compile=True)``: the loops over
               steps and saves inside one compiled call per 32 saves. Compile time
               (one per member count and shape) is reported separately.

Adaptive, one member, 1,000 output times 0.05 apart, rtol=1e-6, atol=1e-9 (on
the state): scipy ``solve_ivp`` RK45 and DOP853 (numpy right-hand side) against
dynlab's dopri5 — torchdiffeq (the default) and ``blocks=True, compile=True``.

Rates are per CPU second of this process by default (``--clock cpu``): with
one torch thread and a single-threaded numba kernel that is fair, and on a
shared machine wall time is dominated by preemption (a 1 ms numba run fits in
one time slice, a 30 ms torch run does not). Compile times are wall time.

Needs numba (a benchmark-only dependency): ``pip install numba``.

Usage: python benchmarks/bench_small_ensembles.py [--quick] [--systems lorenz96 lorenz63]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout this script is in
from simulators import CounterRNG, make_integrator, make_system  # noqa: E402

DT, SAVE_EVERY = 0.01, 10

try:
    import numba
except ImportError:  # pragma: no cover - benchmark-only dependency
    numba = None


def numba_kernels():
    """RK4 kernels ``rk4(x (M, n), n_steps, dt)`` for Lorenz96 (F=8) and Lorenz63 (10, 28, 8/3)."""
    @numba.njit(cache=False)
    def l96(x, out, F):
        K = x.shape[0]
        for k in range(K):
            out[k] = (x[(k + 1) % K] - x[(k - 2) % K]) * x[(k - 1) % K] - x[k] + F

    @numba.njit(cache=False)
    def l63(x, out, F):
        out[0] = 10.0 * (x[1] - x[0])
        out[1] = x[0] * (28.0 - x[2]) - x[1]
        out[2] = x[0] * x[1] - (8.0 / 3.0) * x[2]

    def make(f):
        @numba.njit(cache=False)
        def rk4(x, n_steps, dt, F):
            M, n = x.shape
            k1, k2, k3, k4, y = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
            half = 0.5 * dt
            for m in range(M):
                xm = x[m].copy()
                for _ in range(n_steps):
                    f(xm, k1, F)
                    for i in range(n):
                        y[i] = xm[i] + half * k1[i]
                    f(y, k2, F)
                    for i in range(n):
                        y[i] = xm[i] + half * k2[i]
                    f(y, k3, F)
                    for i in range(n):
                        y[i] = xm[i] + dt * k3[i]
                    f(y, k4, F)
                    for i in range(n):
                        xm[i] = xm[i] + (dt / 6.0) * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])
                x[m] = xm
            return x
        return rk4

    return {"lorenz96": make(l96), "lorenz63": make(l63)}


def numpy_rhs(name):
    if name == "lorenz96":
        return lambda t, y: (np.roll(y, -1) - np.roll(y, 2)) * np.roll(y, 1) - y + 8.0
    return lambda t, y: np.array([10.0 * (y[1] - y[0]), y[0] * (28.0 - y[2]) - y[1], y[0] * y[1] - 8.0 / 3.0 * y[2]])


def clock():
    """Seconds of CPU time of this process (``--clock cpu``) or of wall time (``--clock wall``)."""
    return time.process_time() if CLOCK == "cpu" else time.perf_counter()


CLOCK = "cpu"


def best_of(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out


def bench_rk4(name, system, kernel, sizes, steps_for, repeats):
    print(f"\n{name}: RK4 dt={DT}, float64, save every {SAVE_EVERY} steps; member-steps/s (ratio to numba, "
          "best of interleaved repeats)")
    print(f"{'members':>8} {'numba':>10} {'eager':>18} {'blocks':>18} {'compile s':>10} "
          f"{'|eager-numba|':>13} {'|blocks-eager|':>14}")
    eager = make_integrator("rk4")
    for m in sizes:
        n = steps_for(m)
        x0 = system.sample_initial(CounterRNG(0, range(m)))
        kw = dict(t0=0.0, dt=DT, n_steps=n, save_every=SAVE_EVERY)
        t_e, x_e = best_of(lambda: eager.integrate(system, x0, **kw)[-1], 1 if m < 64 else repeats)
        blocks = make_integrator("rk4", blocks=True, compile=True)
        blocks.integrate(system, x0, **kw)  # compile for this shape (and check against eager)
        t_nb = t_b = float("inf")
        for _ in range(repeats):  # interleaved, so that both see the same load
            t, x_nb = best_of(lambda: kernel(x0.numpy().copy(), n, DT, 8.0), 1)
            t_nb = min(t_nb, t)
            t, x_b = best_of(lambda: blocks.integrate(system, x0, **kw)[-1], 1)
            t_b = min(t_b, t)
        rate = lambda s: m * n / s  # noqa: E731
        fb = " (eager fallback!)" if any(r.fallback for r in blocks._runners.values()) else ""
        print(f"{m:>8} {rate(t_nb):>10.3e} {rate(t_e):>10.3e} ({t_nb / t_e:>5.3f}) {rate(t_b):>10.3e} "
              f"({t_nb / t_b:>5.3f}) {blocks.compile_seconds:>10.1f} "
              f"{float(np.abs(x_e.numpy() - x_nb).max()):>13.1e} {float((x_b - x_e).abs().max()):>14.1e}{fb}")


def bench_dopri5(name, system, n_out, every, quick):
    rtol, atol = 1e-6, 1e-9
    print(f"\n{name}: one member, {n_out} output times {every} apart (t_end={n_out * every:g}), "
          f"rtol={rtol:g}, atol={atol:g}")
    x0 = system.sample_initial(CounterRNG(0, range(1)))
    times = every * np.arange(1, n_out + 1)
    fun = numpy_rhs(name)
    rows = {}
    for method in ("RK45", "DOP853"):
        t = clock()
        sol = solve_ivp(fun, (0.0, times[-1]), x0[0].numpy(), method=method, t_eval=times, rtol=rtol, atol=atol)
        rows[f"scipy {method}"] = (clock() - t, sol.nfev, sol.y.T)
    kw = dict(t0=0.0, dt=every, n_steps=n_out, save_every=1)
    ref = solve_ivp(fun, (0.0, times[-1]), x0[0].numpy(), method="DOP853", t_eval=times, rtol=1e-12, atol=1e-12).y.T
    blocks = make_integrator("dopri5", rtol=rtol, atol=atol, blocks=True, compile=True)
    short = dict(kw, n_steps=min(n_out, 40))
    blocks.integrate(system, x0, **short)  # compile (and check against eager)
    t = clock()
    out = blocks.integrate(system, x0, **kw)
    rows["dynlab dopri5 blocks"] = (clock() - t, blocks.last_stats["rhs_evaluations"], out[:, 0].numpy())
    if not quick:
        tde = make_integrator("dopri5", rtol=rtol, atol=atol)
        calls = [0]

        class Counted:
            def __getattr__(self, a):
                return getattr(system, a)

            def vector_field(self, t_, x_):
                calls[0] += 1
                return system.vector_field(t_, x_)

        t = clock()
        out = tde.integrate(Counted(), x0, **kw)
        rows["dynlab dopri5 torchdiffeq"] = (clock() - t, calls[0], out[:, 0].numpy())
    base = rows["scipy RK45"][0]
    print(f"{'solver':>26} {CLOCK + ' s':>8} {'RK45/this':>9} {'rhs calls':>9} {'max|x-ref| t<=1':>15} {'max|x-ref| t<=5':>15}")
    early, mid = times <= 1.0 + 1e-9, times <= 5.0 + 1e-9
    for label, (sec, nfev, y) in rows.items():
        print(f"{label:>26} {sec:>8.3f} {base / sec:>9.2f} {nfev:>9d} {np.abs(y - ref)[early].max():>15.1e} "
              f"{np.abs(y - ref)[mid].max():>15.1e}")
    fb = " (eager fallback!)" if any(r.fallback for r in blocks._runners.values()) else ""
    print(f"dopri5 blocks compile: {blocks.compile_seconds:.1f} s (one-off per state shape){fb}; "
          "errors against DOP853 at rtol=atol=1e-12 (chaotic: compare early times)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps and sizes, no torchdiffeq row")
    ap.add_argument("--systems", nargs="+", default=["lorenz96", "lorenz63"], choices=["lorenz96", "lorenz63"])
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="member counts (default 1 4 16 64 1024)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="time rates by this process's CPU time (default; fair on a shared, loaded "
                         "machine, with one thread) or by wall time")
    args = ap.parse_args()
    global CLOCK
    CLOCK = args.clock
    if numba is None:
        sys.exit("this benchmark needs numba: install numba (pip install numba); it is not a dynlab dependency")
    torch.set_num_threads(args.threads)
    try:
        load = "load %.1f %.1f %.1f" % os.getloadavg()
    except OSError:  # pragma: no cover
        load = "load unknown"
    print(f"machine: {platform.machine()} {platform.processor()}, {os.cpu_count()} cpus ({load}), "
          f"torch {torch.__version__} ({args.threads} thread), numba {numba.__version__}; "
          f"timed by {'process CPU time' if CLOCK == 'cpu' else 'wall time'}")
    kernels = numba_kernels()
    sizes = args.sizes or ([1, 16, 64] if args.quick else [1, 4, 16, 64, 1024])
    for name in args.systems:
        system = make_system(name) if name == "lorenz63" else make_system(name, K=40, F=8.0)
        t = time.perf_counter()
        kernels[name](system.sample_initial(CounterRNG(0, range(1))).numpy().copy(), 1, DT, 8.0)
        print(f"\nnumba compile ({name}): {time.perf_counter() - t:.1f} s")
        steps_for = (lambda m: 200) if args.quick else (lambda m: 2000 if m <= 16 else 500 if m <= 64 else 100)
        bench_rk4(name, system, kernels[name], sizes, steps_for, 1 if args.quick else 3)
        bench_dopri5(name, system, 100 if args.quick else 1000, 0.05, args.quick)
    print(f"\nfinal load {'%.1f %.1f %.1f' % os.getloadavg()}")


if __name__ == "__main__":
    main()
