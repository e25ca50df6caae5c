"""PINN ablation: causal against non-causal training and each refinement off in turn.

On Allen–Cahn (d = 1e-4, a = 5, t ∈ [0, 1]) and Kuramoto–Sivashinsky (benchmark
coefficients, first tenth t ∈ [0, 0.1]); each row trains from the same seed on the
same wall-clock budget (``--seconds`` per row, default 90) and reports the
relative L2 error against the ETDRK4 reference, the steps it managed and its
wall time. The reference is solved once per problem and its time is printed too.

    OMP_NUM_THREADS=1 python benchmarks/pinn_ablation.py --seconds 90 --out docs/pinn_ablation.md

Published gaps (about 1e5 GPU steps, Wang, Sankaran & Perdikaris 2022; jaxpi):
KS first tenth 1.42e-4 (all refinements), 2.58e-4 (causal off), 2.19e-1
(gradient-norm balancing off), 2.59e-1 (everything off); AC 1.66e-3 / 5.37e-5.
"""
from __future__ import annotations

import argparse
import copy
import platform
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynlab.pinn import PinnConfig, train_pinn  # noqa: E402
from dynlab.pinn.evaluate import relative_l2  # noqa: E402
from dynlab.pinn.pipeline import build_problem  # noqa: E402
from dynlab.pinn.reference import reference_solution  # noqa: E402
from simulators import make_system  # noqa: E402

FULL = {
    "network": {"arch": "modified_mlp", "width": 64, "depth": 4, "x_modes": 6},
    "exact_ic": False,            # the IC as a loss term, weighted by gradient-norm balancing (as in jaxpi)
    "balance": {"enabled": True, "every": 50},
    "causal": {"enabled": True, "chunks": 16, "eps": [1.0e-2, 1.0e-1, 1.0, 10.0, 100.0]},
    "lr": 1.0e-3, "lr_decay": True, "decay_rate": 0.9, "decay_steps": 200,
    "resample": True, "points": 512, "ic_points": 256, "steps": 100000, "log_every": 100000,
}

#: row name -> changes to FULL (nested dicts merge)
ROWS = {
    "all refinements": {},
    "causal weighting off": {"causal": {"enabled": False}},
    "grad-norm balancing off": {"balance": {"enabled": False}},
    "modified MLP off (plain MLP)": {"network": {"arch": "mlp"}},
    "Fourier features off (1 x-mode)": {"network": {"x_modes": 1}},
    "lr decay off": {"lr_decay": False},
    "resampling off": {"resample": False},
    "exact IC (balancing moot)": {"exact_ic": True},
    "2 time-marching windows": {"windows": 2},
    "every refinement off": {"causal": {"enabled": False}, "balance": {"enabled": False},
                             "network": {"arch": "mlp", "x_modes": 1}, "lr_decay": False, "resample": False},
}

PROBLEMS = {
    "allen_cahn": ({"name": "allen_cahn"}, {"dt": 1e-4, "save_every": 0.005, "t_end": 1.0}),
    "ks_first_tenth": ({"name": "kuramoto_sivashinsky"}, {"dt": 2.5e-5, "save_every": 0.001, "t_end": 0.1}),
}


def merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in change.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="wall-clock budget per row")
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--points", type=int, default=None, help="collocation points per step (default 512)")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    head = (f"Machine: {platform.machine()} {os.cpu_count()} CPU(s), load {load:.1f} at start, device {args.device}, "
            f"{args.dtype}; budget {args.seconds:g} s of training per row.")
    print(head)
    lines = [head, "", "| problem | row | rel L2 | steps | train s |", "|---|---|---|---|---|"]
    for pname in args.problems:
        sys_cfg, time_cfg = PROBLEMS[pname]
        system = make_system(sys_cfg["name"])
        ref = reference_solution(system, time_cfg, t_end=time_cfg["t_end"])
        problem = build_problem(system, ref, time_cfg["t_end"])
        print(f"{pname}: reference {ref.solver} in {ref.seconds:.2f} s")
        lines.append(f"| {pname} | reference ({ref.solver}) | 0 | — | {ref.seconds:.2f} |")
        for row in args.rows:
            raw = merge(FULL, ROWS[row])
            raw.update(max_seconds=args.seconds, device=args.device, dtype=args.dtype)
            if args.points:
                raw["points"] = args.points
            cfg = PinnConfig.from_dict(raw)
            started = time.perf_counter()
            sol = train_pinn(problem, cfg)
            wall = time.perf_counter() - started
            err = relative_l2(sol.predict(ref.times, ref.x), ref.u)
            line = f"| {pname} | {row} | {err:.3g} | {sol.steps} | {wall:.0f} |"
            print(line, flush=True)
            lines.append(line)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
