"""Benchmark: the seasonal latitudinal EBM (``ebm_1d``) against climlab's ``EBM_seasonal``.

Both run the same model on the same grid with the same time step: 90 latitude bands, a
10 m slab, seasonal insolation, A + BT longwave, diffusion D = 0.555, P2 albedo with ice
(a0 = 0.3, a2 = 0.078, ai = 0.62 below −10 °C), from T = 12 − 40 P2(sin φ). dynlab steps
a whole ensemble at once with explicit RK4 (and keeps the heat budget); climlab steps one
model object per member (its diffusion is implicit), so its cost grows linearly with the
number of members: we time a few years of one member and scale, and say so.

Output: member-years per second for 1, 64 and 256 members, and the ratio dynlab/climlab,
all measured in this run. climlab is an optional, benchmark-only dependency
(``pip install climlab`` — it also needs ``six`` and ``pooch`` at import); without it the
script times dynlab alone and says so.

    python benchmarks/bench_ebm.py                  # dt = 0.002 yr (0.73 days), 1 thread
    python benchmarks/bench_ebm.py --years 2 --climlab-years 1 --threads 2
"""
from __future__ import annotations

import argparse
import math
import time
import warnings

import torch

from simulators import TimeGrid, make_integrator, make_system
from simulators.climate import SECONDS_PER_YEAR


def dynlab_rate(members: int, years: float, dt: float, n_lat: int, depth: float) -> tuple[float, float]:
    """(member-years per second, final global-mean T of member 0)."""
    system = make_system("ebm_1d", n_lat=n_lat, mixed_layer_depth=depth)
    rk4 = make_integrator("rk4")
    # warm-up: builds the insolation table of the year and the cached constants
    system.simulate(rk4, TimeGrid(dt=dt, save_every=dt, t_end=dt), seed=0, members=range(members))
    grid = TimeGrid(dt=dt, save_every=years / 2, t_end=years)
    start = time.perf_counter()
    out = system.simulate(rk4, grid, seed=0, members=range(members))
    elapsed = time.perf_counter() - start
    return members * years / elapsed, float(out["T_global"][0, -1])


def climlab_rate(years: float, dt: float, n_lat: int, depth: float) -> tuple[float, float] | None:
    """(member-years per second of one climlab model, its final global-mean T), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # climlab warns about its optional Fortran modules
            import climlab
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        print(f"NOTICE: climlab is not available ({type(err).__name__}: {err}); timing dynlab alone. "
              "Install it with: pip install climlab six pooch")
        return None
    model = climlab.EBM_seasonal(num_lat=n_lat, water_depth=depth, a0=0.3, a2=0.078, ai=0.62,
                                 timestep=dt * SECONDS_PER_YEAR)
    model.step_forward()  # warm-up
    start = time.perf_counter()
    model.integrate_years(years, verbose=False)
    elapsed = time.perf_counter() - start
    return years / elapsed, float(climlab.global_mean(model.Ts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=float, default=1.0, help="model years per dynlab run")
    parser.add_argument("--climlab-years", type=float, default=0.5, help="model years of the one climlab member")
    parser.add_argument("--dt", type=float, default=0.002, help="time step in years (both models)")
    parser.add_argument("--n-lat", type=int, default=90)
    parser.add_argument("--depth", type=float, default=10.0, help="mixed-layer depth (m)")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    limit = make_system("ebm_1d", n_lat=args.n_lat, mixed_layer_depth=args.depth).max_stable_dt("rk4")
    print(f"ebm_1d seasonal, n_lat={args.n_lat}, {args.depth:g} m slab, dt={args.dt:g} yr "
          f"({args.dt * 365.2422:.2f} days; explicit RK4 limit {limit:.4g} yr), torch threads={args.threads}")

    reference = climlab_rate(args.climlab_years, args.dt, args.n_lat, args.depth)
    if reference is not None:
        per_member, T_climlab = reference
        print(f"climlab EBM_seasonal: {per_member:.3f} member-years/s, timed on one member for "
              f"{args.climlab_years:g} years; one model object per member, so its member-years/s is the same "
              f"for any number of members (scaled, not run {max(args.members)} times)")
        default_dt = climlab_rate(args.climlab_years, 1.0 / 90.0, args.n_lat, args.depth)

    print(f"\n{'members':>8} {'dynlab member-yr/s':>20} {'climlab member-yr/s':>21} {'ratio':>9}")
    rates = {}
    for members in args.members:
        rate, _ = dynlab_rate(members, args.years, args.dt, args.n_lat, args.depth)
        rates[members] = rate
        if reference is None:
            print(f"{members:>8} {rate:>20.2f} {'n/a':>21} {'n/a':>9}")
        else:
            print(f"{members:>8} {rate:>20.2f} {per_member:>21.3f} {rate / per_member:>8.0f}x")
    if reference is not None:
        top = max(args.members)
        print(f"\nat {top} members dynlab is {rates[top] / per_member:.0f}x climlab at the same dt "
              f"(target >= 100x)")
        print(f"climlab at its own default dt (1/90 yr, implicit diffusion, not comparable step): "
              f"{default_dt[0]:.3f} member-years/s; dynlab at {top} members is {rates[top] / default_dt[0]:.0f}x that")
        system = make_system("ebm_1d", n_lat=args.n_lat, mixed_layer_depth=args.depth)
        same = system.simulate(make_integrator("rk4"), TimeGrid(dt=args.dt, save_every=args.climlab_years,
                                                                t_end=args.climlab_years), seed=0, members=[0])
        print(f"sanity, global-mean T after {args.climlab_years:g} yr from the same start: "
              f"climlab {T_climlab:.3f} degC, dynlab {float(same['T_global'][0, -1]):.3f} degC")
    if not math.isfinite(sum(rates.values())):
        raise SystemExit("a rate is not finite")


if __name__ == "__main__":
    main()
