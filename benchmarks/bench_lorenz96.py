"""Lorenz96 ensemble throughput: dynlab RK4 against NumPy and SciPy baselines.

Lorenz96 K=40, F=8, RK4 dt=0.01, float64. Member-steps per second for 1, 64,
1024 and 4096 members, all timed in this process:

* ``numpy``    vectorised RK4 over all members at once with ``np.roll`` (the way
               DAPPER integrates ensembles): the baseline of the ratios;
* ``scipy``    ``scipy.integrate.solve_ivp`` (RK45, rtol=1e-6) per member, counted in
               dt=0.01 step equivalents of model time;
* ``dynlab``   the RK4 integrator, eager torch;
* ``compiled`` the RK4 integrator with ``compile=True`` (torch.compile fuses a step
               into one kernel; compile time is reported separately).

Also: the wall time of the default ``dynlab simulate`` and the Zarr write
throughput against the raw array size (``--simulate``).

Small ensembles (1-1024 members against a numba RK4 kernel, RK4 with
``blocks=True`` and dopri5 against scipy) are in ``bench_small_ensembles.py``.

Usage: python benchmarks/bench_lorenz96.py [--quick] [--simulate] [--device cuda] [--members 65536]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import numpy as np
import torch

from simulators import CounterRNG, make_integrator, make_system

K, F, DT = 40, 8.0, 0.01


def numpy_rk4(x: np.ndarray, n_steps: int) -> np.ndarray:
    def f(x):
        return (np.roll(x, -1, axis=-1) - np.roll(x, 2, axis=-1)) * np.roll(x, 1, axis=-1) - x + F

    for _ in range(n_steps):
        k1 = f(x)
        k2 = f(x + 0.5 * DT * k1)
        k3 = f(x + 0.5 * DT * k2)
        k4 = f(x + DT * k3)
        x = x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def timed(fn, *args, repeats=3):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def initial(members: int, device="cpu") -> torch.Tensor:
    return make_system("lorenz96", K=K, F=F).sample_initial(CounterRNG(0, range(members)), device=device)


def bench_cpu(sizes, steps_for, quick):
    system = make_system("lorenz96", K=K, F=F)
    eager = make_integrator("rk4")
    compiled = make_integrator("rk4", compile=True)
    t = time.perf_counter()
    compiled.integrate(system, initial(8), t0=0.0, dt=DT, n_steps=2, save_every=2)
    compile_s = time.perf_counter() - t
    print(f"torch.compile of the RK4 step: {compile_s:.1f} s (one-off; cached per shape)")
    print(f"{'members':>8} {'numpy':>12} {'scipy':>12} {'dynlab':>12} {'compiled':>12}   "
          f"{'dynlab/np':>9} {'compiled/np':>11} {'max|diff|':>9}")
    for m in sizes:
        n = steps_for(m)
        x0 = initial(m)
        t_np, x_np = timed(numpy_rk4, x0.numpy(), n)
        t_eager, x_eager = timed(lambda: eager.integrate(system, x0, t0=0.0, dt=DT, n_steps=n, save_every=n)[-1])
        compiled.integrate(system, x0, t0=0.0, dt=DT, n_steps=1, save_every=1)  # compile for this shape
        t_comp, x_comp = timed(lambda: compiled.integrate(system, x0, t0=0.0, dt=DT, n_steps=n, save_every=n)[-1])
        # scipy: one member over a short span, in dt-step equivalents
        from scipy.integrate import solve_ivp

        span = 0.5 if quick else 2.0
        fun = lambda t_, y: (np.roll(y, -1) - np.roll(y, 2)) * np.roll(y, 1) - y + F  # noqa: E731
        t0 = time.perf_counter()
        solve_ivp(fun, (0.0, span), x0[0].numpy(), rtol=1e-6, atol=1e-8)
        scipy_rate = (span / DT) / (time.perf_counter() - t0)
        rate = lambda sec: m * n / sec  # noqa: E731
        diff = max(float(np.abs(x_eager.numpy() - x_np).max()), float(np.abs(x_comp.numpy() - x_np).max()))
        print(f"{m:>8} {rate(t_np):>12.3e} {scipy_rate:>12.3e} {rate(t_eager):>12.3e} {rate(t_comp):>12.3e}   "
              f"{t_np / t_eager:>9.2f} {t_np / t_comp:>11.2f} {diff:>9.1e}")
    print("rates in member-steps/s; ratios = numpy time / dynlab time (> 1: dynlab faster)")
    bytes_per_step = 40 * 8 * 2  # an ideal fused step reads and writes the state once
    print(f"note: an ideal fused RK4 step moves {bytes_per_step} B and does ~{4 * 10 + 10} flops per member; "
          "the NumPy baseline makes ~40 passes over memory per step and is bound by memory traffic and "
          "per-call overhead, not arithmetic")


def bench_cuda(members, peak_bw):
    system = make_system("lorenz96", K=K, F=F)
    rk4 = make_integrator("rk4")
    compiled = make_integrator("rk4", compile=True)
    x0 = initial(members, device="cuda")
    n = 200
    for label, integ in (("eager", rk4), ("compiled", compiled)):
        integ.integrate(system, x0, t0=0.0, dt=DT, n_steps=2, save_every=2)
        torch.cuda.synchronize()
        t = time.perf_counter()
        integ.integrate(system, x0, t0=0.0, dt=DT, n_steps=n, save_every=n)
        torch.cuda.synchronize()
        sec = time.perf_counter() - t
        rate = members * n / sec
        traffic = members * K * 8 * 2 * n / sec  # ideal: read + write the state once per step
        print(f"cuda {label:>8}: {members} members, {rate:.3e} member-steps/s, "
              f"ideal-traffic bandwidth {traffic / 1e9:.1f} GB/s = {traffic / peak_bw:.1%} of {peak_bw / 1e12:.2f} TB/s")
    # baseline on the same machine: numpy on its CPU at the same size (few steps)
    t_np, _ = timed(numpy_rk4, x0.cpu().numpy(), 20, repeats=1)
    print(f"numpy (host CPU) at {members} members: {members * 20 / t_np:.3e} member-steps/s")


def bench_simulate(quick):
    from dynlab.config import compose
    from dynlab.pipeline.simulate import simulate

    tmp = tempfile.mkdtemp()
    try:
        overrides = [f"out={tmp}/l96.zarr", "progress=false"] + (["ensemble.members=8", "time.t_end=10"] if quick else [])
        cfg = compose("simulate", overrides)
        t = time.perf_counter()
        res = simulate(cfg, log=lambda m: None)
        wall = time.perf_counter() - t
        import dynlab

        ds = dynlab.open_dataset(res.path)
        raw = sum(v.nbytes for v in ds.data_vars.values())
        disk = sum(f.stat().st_size for f in res.path.rglob("*") if f.is_file())
        # write throughput alone: rewrite the same arrays into a fresh store
        from dynlab.data import store
        from dynlab.pipeline.simulate import plan_simulation

        plan = plan_simulation(compose("simulate", overrides[:1] + [f"out={tmp}/w.zarr"] + overrides[2:]))
        store.create_store(plan.out, plan.variables, plan.coords, {"x": 1}, plan.member_chunk)
        data = {n: ds[n].values for n in ds.data_vars}
        t = time.perf_counter()
        store.write_region(plan.out, 0, data)
        w = time.perf_counter() - t
        print(f"default `dynlab simulate` ({plan.members} members x {plan.grid.n_saves} saves, "
              f"{plan.grid.spinup_steps + (plan.grid.n_saves - 1) * plan.grid.steps_per_save} steps): wall {wall:.1f} s")
        print(f"zarr write: {raw / 1e6:.1f} MB raw -> {disk / 1e6:.1f} MB on disk, {raw / w / 1e6:.0f} MB/s raw")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few steps, small sizes")
    ap.add_argument("--simulate", action="store_true", help="also time the default dynlab simulate")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--members", type=int, default=65536, help="members for --device cuda")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak-bw", type=float, default=3.35e12, help="GPU peak memory bandwidth, B/s (H100 SXM)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"numpy {np.__version__}, torch threads {torch.get_num_threads()}")
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name()}")
        bench_cuda(args.members, args.peak_bw)
        return
    sizes = [1, 64, 1024] if args.quick else [1, 64, 1024, 4096]
    steps_for = (lambda m: 50) if args.quick else (lambda m: 1000 if m <= 64 else 200)
    bench_cpu(sizes, steps_for, args.quick)
    if args.simulate:
        bench_simulate(args.quick)


if __name__ == "__main__":
    main()
