"""Training throughput of every trainable learner on one Lorenz96 store: `dynlab train` per learner,
same data, windows, batch and optimiser steps; prints wall time, steps/s and windows/s per learner.

The prepared GPU check of issue 15 (about 4 minutes on one GPU):

    PYTHONPATH=. python benchmarks/bench_learner_throughput.py --device cuda --amp --steps 200 --K 40

On the CPU (a smoke run): ``--steps 10 --K 8``. Untrainable learners (persistence, linear, hippo,
reference) are fitted in closed form and are left out; `hnn` needs a Hamiltonian dataset (``--system
mass_spring`` runs it instead of the Lorenz96 learners).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dynlab.config import compose
from dynlab.pipeline.simulate import simulate
from dynlab.pipeline.train import train

LORENZ96_LEARNERS = {
    "s4d": ["learner.spatial_encoder=periodic_conv"],
    "mamba": ["learner.spatial_encoder=periodic_conv"],
    "energy_based": [],
    "neural_ode": [],
}
HAMILTONIAN_LEARNERS = {"hnn": [], "neural_ode": [], "energy_based": []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="train.amp=true (CUDA only; bfloat16)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--K", type=int, default=40, help="Lorenz96 sites")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--system", default="lorenz96", choices=("lorenz96", "mass_spring"))
    ap.add_argument("--learners", default=None, help="comma-separated subset")
    args = ap.parse_args()
    learners = LORENZ96_LEARNERS if args.system == "lorenz96" else HAMILTONIAN_LEARNERS
    if args.learners:
        learners = {k: learners.get(k, []) for k in args.learners.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = tmp / "data.zarr"
        sim = [f"system={args.system}", f"ensemble.members={args.members}", f"out={store}", "progress=false"]
        sim += [f"system.K={args.K}", "time.t_end=10", "time.spinup=2"] if args.system == "lorenz96" else \
            ["time.t_end=20"]
        start = time.perf_counter()
        simulate(compose("simulate", sim), log=lambda m: None)
        print(f"{args.system} store: {time.perf_counter() - start:.0f} s; device {args.device}"
              f"{' (AMP bfloat16)' if args.amp else ''}; {args.steps} steps of batch {args.batch}, context 16 "
              f"+ rollout horizon 4 (loss=rollout, 20 one-step warm-up steps)")
        print("| learner | parameters | wall time | steps/s | windows/s | final loss |")
        print("|---|---|---|---|---|---|")
        for name, extra in learners.items():
            run_dir = tmp / f"run_{name}"
            cfg = compose("train", [f"data.store={store}", f"run_dir={run_dir}", f"learner={name}", *extra,
                                    "loss=rollout", "loss.one_step_steps=20", "loss.horizon.start=4",
                                    "loss.horizon.max=4", "data.context=16", "data.stride=2",
                                    f"train.steps={args.steps}", f"train.batch_size={args.batch}",
                                    "train.val_every=100000", "train.val_windows=32", "train.warmup=10",
                                    f"device={args.device}", f"train.amp={str(args.amp).lower()}",
                                    "progress=false"])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            try:
                result = train(cfg, log=lambda m: None)
            except Exception as err:  # report and go on: one learner's failure should not hide the others
                print(f"| {name} | failed: {str(err).splitlines()[0][:120]} | | | | |")
                continue
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            import dynlab

            n_params = sum(p.numel() for p in dynlab.load_emulator(run_dir).parameters())
            print(f"| {name} | {n_params} | {seconds:.1f} s | {result.step / seconds:.2f} | "
                  f"{result.step * args.batch / seconds:.0f} | {result.losses[-1]:.4g} |")


if __name__ == "__main__":
    main()
