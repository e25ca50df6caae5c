"""Training throughput of the S4D and Mamba emulators, and the quickstart's end-to-end wall time.

Lorenz96 K=40 windows (a short RK4 trajectory, so the numbers see real data), the
emulators exactly as configured by ``experiment=quickstart`` (S4D) and
``experiment=lorenz96_mamba`` (Mamba), AdamW steps with gradient clipping, all timed
in this process:

* ``one-step``  teacher-forced one-step loss over a window of C + H steps;
* ``rollout``   free-running rollout loss over H steps from a C-step context;

samples/s = windows per second of optimiser steps (forward + backward + update),
after warm-up steps. Ratios are against S4D one-step measured in the same run.
``--quickstart`` also times ``dynlab run experiment=quickstart`` from an empty cache
(simulate + train + evaluate) in a subprocess.

Usage: python benchmarks/bench_training.py [--device cuda] [--steps 20] [--batch 16] [--quickstart]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import torch

from dynlab.emulators.codec import FieldSpec, StateCodec
from dynlab.emulators.registry import build_emulator
from dynlab.train import build_objective, param_groups
from simulators import TimeGrid, make_integrator, make_system, run_members

K = 40


def lorenz96_windows(n: int, window: int, device: torch.device) -> torch.Tensor:
    """``n`` windows ``(n, window, K)`` cut from RK4 trajectories saved every 0.05."""
    system = make_system("lorenz96", K=K, F=8.0)
    steps = max(window * 4, 200)
    out = run_members(system, make_integrator("rk4"), TimeGrid(dt=0.01, save_every=0.05, t_end=0.05 * steps, spinup=5.0),
                      seed=0, members=range(max(1, n // 4)))["X"]  # (M, T, K)
    starts = torch.arange(n) % (out.shape[1] - window)
    members = torch.arange(n) % out.shape[0]
    idx = starts[:, None] + torch.arange(window)
    return out[members[:, None], idx].to(device=device, dtype=torch.float32)


EXPERIMENTS = {"s4d": "quickstart", "mamba": "lorenz96_mamba"}


def learner_config(learner: str) -> dict:
    """The learner section of the experiment that uses ``learner``."""
    from omegaconf import OmegaConf

    from dynlab.config import compose

    return OmegaConf.to_container(compose("run", [f"experiment={EXPERIMENTS[learner]}"]).learner, resolve=True)


def bench(learner: str, loss_cfg: dict, x: torch.Tensor, context: int, steps: int, warmup: int) -> float:
    codec = StateCodec((FieldSpec("X", ("k",), (K,)),))
    em = build_emulator(learner_config(learner), codec, x.double().cpu(), dt=0.05).to(x.device)
    objective = build_objective(loss_cfg, context)
    objective.set_scale(x.reshape(-1, K).std(0))
    opt = torch.optim.AdamW(param_groups(em, 3e-3, 0.01), lr=3e-3)
    for i in range(warmup + steps):
        if i == warmup:
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss, _ = objective.loss(em, x, None, step=10**6)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(em.parameters(), 1.0)
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - start)


def quickstart_wall_time() -> float:
    cache = tempfile.mkdtemp(prefix="dynlab-bench-")
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dynlab.cli", "run", "experiment=quickstart", f"cache_dir={cache}/cache",
                        f"run_dir={cache}/run", "progress=false"], check=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--learners", nargs="+", default=["s4d", "mamba"], choices=sorted(EXPERIMENTS))
    parser.add_argument("--quickstart", action="store_true", help="also time dynlab run experiment=quickstart")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", cpu_count {os.cpu_count()}")
    x = lorenz96_windows(args.batch, args.context + args.horizon, device)
    losses = {
        "one-step": {"name": "one_step"},
        "rollout": {"name": "rollout", "horizon": {"start": args.horizon, "max": args.horizon}},
    }
    results = {}
    for learner in args.learners:
        for kind, cfg in losses.items():
            results[(learner, kind)] = bench(learner, cfg, x, args.context, args.steps, args.warmup)
    base = results[(args.learners[0], "one-step")]
    print(f"{'learner':8s} {'loss':9s} {'samples/s':>10s} {'ratio':>6s}   (batch {args.batch}, window "
          f"{args.context}+{args.horizon}, K={K}; ratio vs {args.learners[0]} one-step)")
    for (learner, kind), rate in results.items():
        print(f"{learner:8s} {kind:9s} {rate:10.1f} {rate / base:6.2f}")
    if args.quickstart:
        print(f"quickstart end to end from an empty cache: {quickstart_wall_time():.1f} s wall")


if __name__ == "__main__":
    main()
