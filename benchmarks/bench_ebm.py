"""Benchmark: the seasonal latitudinal EBM (``ebm_1d``) against climlab's ``EBM_seasonal``.

Both run the same model on the same grid at climlab's own time step, 1/90 yr: 90 latitude
bands, a 10 m slab, seasonal insolation, A + BT longwave, diffusion D = 0.555, P2 albedo with
ice (a0 = 0.3, a2 = 0.078, ai = 0.62 below -10 degC), from T = 12 - 40 P2(sin lat). dynlab
steps a whole ensemble at once with ``integrator=imex`` (ARS(2,2,2): diffusion and -B T
implicit through a tridiagonal solve, the rest explicit; the heat budget is carried in the
state); climlab steps one model object per member (implicit diffusion, the other terms
explicit), so its cost grows linearly with the number of members: we time a few months of
one member and scale, and say so.

Output, all measured in this run: member-years per second for 1, 64 and 256 members and
the ratio dynlab/climlab (target >= 300x at 256 members); the accuracy of dynlab's step
(global-mean T against an RK4 reference at dt = 0.0005 yr, sampled every 0.1 yr over a year
after a spin-up: largest difference and difference of the annual means); the largest
budget residual; and, for comparison, dynlab's explicit RK4 at its stability-limited step.
climlab is an optional, benchmark-only dependency (``pip install climlab six pooch``);
without it the script times dynlab alone and says so.

    python benchmarks/bench_ebm.py                       # 1 thread, 1-year runs
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

CLIMLAB_DT = 1.0 / 90.0  # climlab's default EBM step (years)


def dynlab_rate(members: int, years: float, dt: float, integrator: str, n_lat: int, depth: float) -> float:
    """Member-years per second of one ``simulate`` call of ``members`` members."""
    system = make_system("ebm_1d", n_lat=n_lat, mixed_layer_depth=depth)
    integ = make_integrator(integrator)
    # warm-up: fills the insolation table of the year's stage times and the cached operators
    system.simulate(integ, TimeGrid(dt=dt, save_every=dt, t_end=round(1.0 / dt) * dt), seed=0, members=range(1))
    grid = TimeGrid(dt=dt, save_every=years, t_end=years)
    start = time.perf_counter()
    system.simulate(integ, grid, seed=0, members=range(members))
    return members * years / (time.perf_counter() - start)


def accuracy(dt: float, spinup: float, n_lat: int, depth: float, ref_dt: float = 0.0005) -> tuple[float, float, float]:
    """(max |T_global − reference|, |annual mean − reference's|, max |budget residual| / J m⁻²)
    of ``imex`` at ``dt`` against RK4 at ``ref_dt``, sampled every 0.1 yr over one year after ``spinup``
    (0.1 yr is a whole number of both steps)."""
    system = make_system("ebm_1d", n_lat=n_lat, mixed_layer_depth=depth)
    out = system.simulate(make_integrator("imex"), TimeGrid(dt=dt, save_every=0.1, t_end=1.0, spinup=spinup),
                          seed=0, members=range(1))
    ref = system.simulate(make_integrator("rk4"), TimeGrid(dt=ref_dt, save_every=0.1, t_end=1.0, spinup=spinup),
                          seed=0, members=range(1))
    a, b = out["T_global"][0], ref["T_global"][0]
    return (float((a - b).abs().max()), abs(float(a[:-1].mean() - b[:-1].mean())),
            float(out["budget_residual"].abs().max()))


def climlab_rate(years: float, dt: float, n_lat: int, depth: float) -> float | None:
    """Member-years per second of one climlab model, or None without climlab."""
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
    return years / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=float, default=1.0, help="model years per dynlab run")
    parser.add_argument("--climlab-years", type=float, default=0.25, help="model years of the one climlab member")
    parser.add_argument("--spinup", type=float, default=2.0, help="spin-up (years) before the accuracy year")
    parser.add_argument("--n-lat", type=int, default=90)
    parser.add_argument("--depth", type=float, default=10.0, help="mixed-layer depth (m)")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    system = make_system("ebm_1d", n_lat=args.n_lat, mixed_layer_depth=args.depth)
    rk4_dt = 1.0 / 500.0
    while rk4_dt > system.max_stable_dt("rk4"):
        rk4_dt /= 2
    print(f"ebm_1d seasonal, n_lat={args.n_lat}, {args.depth:g} m slab, torch threads={args.threads}; "
          f"dynlab imex at climlab's dt = 1/90 yr (explicit RK4 limit {system.max_stable_dt('rk4'):.4g} yr)")

    per_member = climlab_rate(args.climlab_years, CLIMLAB_DT, args.n_lat, args.depth)
    if per_member is not None:
        print(f"climlab EBM_seasonal at 1/90 yr: {per_member:.3f} member-years/s, timed on one member for "
              f"{args.climlab_years:g} years; one model object per member, so its member-years/s is the same "
              f"for any number of members (scaled, not run {max(args.members)} times)")

    print(f"\n{'members':>8} {'imex member-yr/s':>17} {'climlab member-yr/s':>21} {'ratio':>9} "
          f"{'rk4@' + format(rk4_dt, '.4g') + ' member-yr/s':>26}")
    rates = {}
    for members in args.members:
        rate = rates[members] = dynlab_rate(members, args.years, CLIMLAB_DT, "imex", args.n_lat, args.depth)
        rk4 = dynlab_rate(members, args.years, rk4_dt, "rk4", args.n_lat, args.depth)
        ratio = "n/a" if per_member is None else f"{rate / per_member:.0f}x"
        ref = "n/a" if per_member is None else f"{per_member:.3f}"
        print(f"{members:>8} {rate:>17.2f} {ref:>21} {ratio:>9} {rk4:>26.2f}")
    if per_member is not None:
        top = max(args.members)
        print(f"\nat {top} members dynlab (imex) is {rates[top] / per_member:.0f}x climlab at climlab's own step "
              f"(target >= 300x)")
    err, annual, budget = accuracy(CLIMLAB_DT, args.spinup, args.n_lat, args.depth)
    print(f"accuracy of imex at 1/90 yr against rk4 at 0.0005 yr (one year after a {args.spinup:g}-year spin-up, "
          f"sampled every 0.1 yr): max |dT_global| {err:.4f} K, annual mean {annual:.4f} K (target 0.01 K); "
          f"max |budget residual| {budget:.2e} J m-2")
    if not math.isfinite(sum(rates.values())):
        raise SystemExit("a rate is not finite")


if __name__ == "__main__":
    main()
