"""Batched exact SSA (dynlab) against GillesPy2's SSA solvers on the same models and output.

Models (the same reactions, propensities and output times in both):

* birth–death: 0 -> X at rate 10, X -> 0 at rate 0.1 per individual, X(0) = 0,
  t_end = 100, 101 output times (about 2,000 reactions per trajectory);
* Schlögl (bistable): A + 2X -> 3X (c1·A·x(x-1)/2), 3X -> A + 2X (c2·x(x-1)(x-2)/6),
  B -> X (c3·B), X -> B (c4·x) with c1 = 3e-7, c2 = 1e-4, c3 = 1e-3, c4 = 3.5,
  A = 1e5, B = 2e5, X(0) = 250, t_end = 1, 101 output times (paths split between
  the wells at ~85 and ~567; several thousand reactions per trajectory). GillesPy2
  gets these as custom propensities (its mass-action 2X -> ... omits the 1/2).

Prints trajectories per second for 1,000 and 10,000 trajectories: dynlab (all
trajectories as one batch; the event loop on one thread, the random numbers of the next
draw and the writes of the last draw's observations in two more), GillesPy2's NumPy SSA and C++ SSA solvers (the C++ build time on its
own line), and the ratios; the target is dynlab >= 10x GillesPy2's fastest solver at
10,000 trajectories on 2 CPU cores. Both sides include the conversion of their output to
arrays (dynlab: the (M, P, T, S) tensor; GillesPy2: its Results parsed into numpy arrays).
Next to wall-clock rates, the CPU seconds used (this process and its children, as
GillesPy2's C++ solver runs in a subprocess) are printed: on a shared, loaded machine
they show the work each side does. A slow solver is timed on a
subset (``--budget`` seconds at most) and its rate reported as measured there;
trajectories are independent, so a serial solver's rate does not depend on how
many are asked for. Means and variances of X(t_end) are printed as a check that
both simulate the same model.

GillesPy2 is an optional, benchmark-only dependency (``pip install gillespy2``);
without it dynlab is timed alone. Its C++ solver needs a C++ compiler.

    python benchmarks/bench_gillespie.py [--device cuda] [--trajectories 1000 10000] [--repeats 3]
                                         [--models birth_death schlogl] [--budget 60]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from simulators.jump import ReactionNetwork, regular_grid, simulate_reactions  # noqa: E402


@dataclass(frozen=True)
class Model:
    name: str
    network: ReactionNetwork
    x0: tuple[int, ...]
    t_end: float
    n_times: int
    gillespy2_propensities: tuple[str, ...]  # custom propensity of each reaction, in GillesPy2's syntax


def birth_death() -> Model:
    net = ReactionNetwork(("X",), ("birth", "death"), ((0,), (1,)), ((1,), (0,)), (10.0, 0.1))
    return Model("birth_death", net, (0,), 100.0, 101, ("10.0", "0.1 * X"))


def schlogl() -> Model:
    c1, c2, c3, c4, A, B = 3e-7, 1e-4, 1e-3, 3.5, 1e5, 2e5
    net = ReactionNetwork(("X",), ("A+2X->3X", "3X->A+2X", "B->X", "X->B"),
                          reactants=((2,), (3,), (0,), (1,)), products=((3,), (2,), (1,), (0,)),
                          rate_constants=(c1 * A, c2, c3 * B, c4))
    props = (f"{c1 * A!r} * X * (X - 1) / 2", f"{c2!r} * X * (X - 1) * (X - 2) / 6", f"{c3 * B!r}", f"{c4!r} * X")
    return Model("schlogl", net, (250,), 1.0, 101, props)


MODELS = {"birth_death": birth_death, "schlogl": schlogl}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (user + system)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_dynlab(model: Model, n: int, device: str, seed: int = 0) -> tuple[float, float, np.ndarray]:
    times = regular_grid(model.t_end, model.n_times, device=device)
    x0 = torch.tensor(model.x0, dtype=torch.float64, device=device).expand(1, n, -1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), cpu_seconds()
    paths = simulate_reactions(model.network, x0, times, t_end=model.t_end, seed=seed)
    counts = paths.observed.cpu().numpy()  # (1, n, T, S) arrays; includes the device sync
    return time.perf_counter() - start, cpu_seconds() - cpu, counts[0, :, -1, 0]


def gillespy2_model(model: Model):
    import gillespy2

    m = gillespy2.Model(name=model.name)
    species = {s: gillespy2.Species(name=s, initial_value=int(v), mode="discrete")
               for s, v in zip(model.network.species, model.x0)}
    m.add_species(list(species.values()))
    net = model.network
    for r, (name, prop) in enumerate(zip(net.reactions, model.gillespy2_propensities)):
        reactants = {species[s]: v for s, v in zip(net.species, net.reactants[r]) if v}
        products = {species[s]: v for s, v in zip(net.species, net.products[r]) if v}
        m.add_reaction(gillespy2.Reaction(name=f"r{r}", reactants=reactants, products=products,
                                          propensity_function=prop))
    m.timespan(np.linspace(0.0, model.t_end, model.n_times))
    return m


def run_gillespy2(solver, n: int, species: str, seed: int = 1) -> tuple[float, float, np.ndarray]:
    start, cpu = time.perf_counter(), cpu_seconds()
    results = solver.run(number_of_trajectories=n, seed=seed)
    counts = np.stack([np.asarray(traj[species]) for traj in results])  # (n, T) arrays, as dynlab's
    return time.perf_counter() - start, cpu_seconds() - cpu, counts[:, -1]


def timed_subset(run, n: int, budget: float) -> tuple[float, float, int, np.ndarray]:
    """Wall-clock and CPU rates of a serial solver on at most n trajectories within about
    ``budget`` seconds."""
    pilot = min(n, 10)
    seconds, cpu, final = run(pilot)
    if pilot == n:
        return n / seconds, n / cpu, n, final
    m = int(min(n, max(pilot, budget / (seconds / pilot))))
    if m > pilot:
        seconds, cpu, final = run(m)
    return m / seconds, m / max(cpu, 1e-9), m, final


def median_trial(runs: list) -> tuple:
    """The median wall-clock and CPU rates of repeated trials (with the first trial's values)."""
    wall = float(np.median([r[0] for r in runs]))
    cpu = float(np.median([r[1] for r in runs]))
    return (wall, cpu) + tuple(runs[0][2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds at most per slow solver run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-gillespy2", action="store_true")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time every solver this many times, interleaved, and report the median rates "
                             "(steadier on a shared machine)")
    parser.add_argument("--no-numpy-solver", action="store_true",
                        help="skip GillesPy2's (slow) NumPy SSA solver; time its C++ solver only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gillespy2 = None
    if not args.no_gillespy2:
        try:
            import gillespy2  # noqa: F401
            # GillesPy2 runs SCons through shutil.which("scons") first: make it find the one
            # installed next to this interpreter (a virtual environment's bin folder)
            os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            print("NOTICE: gillespy2 is not installed (pip install gillespy2); timing dynlab alone.")
            gillespy2 = None
    cpu = os.cpu_count()
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
          + f", {torch.get_num_threads()} torch threads, {cpu} CPUs; load average {os.getloadavg()[0]:.1f}")
    if gillespy2 is not None:
        print(f"gillespy2 {gillespy2.__version__}")

    for name in args.models:
        model = MODELS[name]()
        print(f"\n== {name}: t_end = {model.t_end}, {model.n_times} output times, x0 = {model.x0}")
        run_dynlab(model, 16, args.device)  # warm-up (first-call costs)
        solvers = {}
        if gillespy2 is not None:
            gmodel = gillespy2_model(model)
            if not args.no_numpy_solver:
                solvers["GillesPy2 NumPySSASolver"] = gillespy2.NumPySSASolver(model=gmodel)
            try:
                start = time.perf_counter()
                solvers["GillesPy2 SSACSolver (C++)"] = gillespy2.SSACSolver(model=gmodel)
                print(f"GillesPy2 SSACSolver C++ build: {time.perf_counter() - start:.1f} s (not in the rates below)")
            except Exception as err:  # no compiler, or a failed build
                print(f"NOTICE: GillesPy2's C++ solver could not be built ({type(err).__name__}: "
                      f"{str(err).splitlines()[0]}); NumPy solver only")
        for n in args.trajectories:
            trials: dict[str, list] = {}
            for _ in range(max(1, args.repeats)):  # interleaved: the load changes alike for all
                seconds, cpu, final = run_dynlab(model, n, args.device)
                trials.setdefault("dynlab (batched SSA)", []).append((n / seconds, n / cpu, n, final))
                for label, solver in solvers.items():
                    trials.setdefault(label, []).append(timed_subset(
                        lambda k, s=solver: run_gillespy2(s, k, model.network.species[0]), n, args.budget))
            rates = {label: median_trial(runs) for label, runs in trials.items()}
            print(f"-- {n} trajectories (load average {os.getloadavg()[0]:.1f}"
                  + (f"; medians of {args.repeats} interleaved runs)" if args.repeats > 1 else ")"))
            for label, (rate, cpu_rate, measured, values) in rates.items():
                note = "" if measured == n else f"  (measured on {measured})"
                print(f"   {label:28s} {rate:10.1f} traj/s wall {cpu_rate:10.1f} traj/CPU-s   X(t_end) mean "
                      f"{values.mean():8.2f} var {values.var():9.2f}{note}")
            ours, ours_cpu = rates["dynlab (batched SSA)"][:2]
            others = {k: v[0] for k, v in rates.items() if not k.startswith("dynlab")}
            for label, rate in others.items():
                print(f"   ratio dynlab / {label:28s} {ours / rate:8.1f}x wall, "
                      f"{ours_cpu / rates[label][1]:8.1f}x per CPU second")
            if others:
                best = max(others, key=others.get)
                verdict = "met" if ours >= 10 * others[best] else "not met"
                print(f"   vs the fastest GillesPy2 solver ({best}): {ours / others[best]:.1f}x "
                      f"(target >= 10x at 10,000: {verdict if n >= 10000 else 'n/a'})")


if __name__ == "__main__":
    main()
