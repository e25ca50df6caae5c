"""Benchmark: rollouts of SSM emulators — memoised discretisations, parallel warm-up, compiled steps.

Every baseline is timed in the same process and every line prints a ratio:

* ``layer``: ``S4D.step`` over a sequence (memoised discretisation) against the old
  step that discretises at every call, a hand-written loop that discretises once
  (target: ``layer.step`` within 1.5x of it) and the FFT convolution.
* ``warmup``: the rollout warm-up on a context (parallel mode, exact final state)
  against one teacher-forced pass over the same context (target <= 1x) and against
  the old recurrent warm-up.
* ``emulators``: forecast-steps per second (forecasts x steps / s) of quickstart-sized
  S4D and Mamba emulators at 1, 64 and 1024 forecasts per rollout: old path (recurrent
  warm-up, no memo), default path (parallel warm-up, memo), compiled step
  (``torch.compile``; its compile time is printed).
* ``threads``: the default path with 1 and 2 intra-op threads.
* ``evaluation``: the quickstart evaluation's rollouts (a quickstart-config S4D
  emulator, 60-step forecasts plus the 1000-step free runs of the 4 test members)
  with 10x the forecasts (160) on the default path against today's 16 on the old
  path (target <= 1x).

    python benchmarks/bench_rollout.py                       # everything, CPU, float32
    python benchmarks/bench_rollout.py --quick               # small sizes, a smoke run
    python benchmarks/bench_rollout.py --sections layer warmup --no-compile
    python benchmarks/bench_rollout.py --device cuda         # on a GPU (one run, a few minutes)

Times are the minimum over ``--repeats`` runs after a warm-up run (the minimum is the
least disturbed by other processes on a shared machine); ``--clock cpu`` times process
CPU instead of wall time (single-threaded sections; the threads section always uses
wall time).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
import warnings
from typing import Callable

import torch

from dynlab.emulators.codec import FieldSpec, StateCodec
from dynlab.emulators.ssm import SSMEmulator
from dynlab.models.ssm import S4D
from dynlab.models.ssm.step_cache import step_cache_disabled

K = 40  # Lorenz96 sites of the quickstart
LEARNERS = {  # configs/experiment/quickstart.yaml and lorenz96_mamba.yaml
    "s4d": dict(d_model=32, n_layers=2, block="s4d", spatial_encoder="periodic_conv", kernel_size=5,
                backbone={"d_state": 16, "init": "real", "dt_min": 0.5, "dt_max": 2.0}),
    "mamba": dict(d_model=32, n_layers=2, block="mamba", spatial_encoder="periodic_conv", kernel_size=5,
                  backbone={"d_state": 8, "dt_min": 0.1, "dt_max": 1.0}),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


CLOCK = {"clock": time.perf_counter}  # --clock cpu: process CPU time (single-threaded sections, busy machine)


def best_seconds(fn: Callable[[], object], device: torch.device, repeats: int, warmup: bool = True,
                 clock: Callable[[], float] | None = None) -> float:
    """Minimum time of ``fn()`` over ``repeats`` runs (after one untimed run)."""
    clock = clock or CLOCK["clock"]
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        times.append(clock() - start)
    return min(times)


@contextlib.contextmanager
def old_path(em: SSMEmulator):
    """The rollout before memoised discretisations and the parallel warm-up."""
    em.parallel_warmup = False
    try:
        with step_cache_disabled(), _env("DYNLAB_STEP_THREADS", "0"):
            yield
    finally:
        em.parallel_warmup = True


@contextlib.contextmanager
def _env(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def make_emulator(name: str, device, dtype) -> SSMEmulator:
    torch.manual_seed(0)
    codec = StateCodec((FieldSpec("X", ("k",), (K,)),))
    em = SSMEmulator(codec, **LEARNERS[name])
    x = 3.0 * torch.randn(8, 20, K, dtype=torch.float64) + 2.0  # Lorenz96-like scale
    em.fit_normalizers(x)
    return em.to(device=device, dtype=dtype).eval()


def contexts(batch: int, length: int, device, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    return (3.0 * torch.randn(batch, length, K, generator=g) + 2.0).to(device=device, dtype=dtype)


# --- sections ---------------------------------------------------------------------------------

def bench_layer(args, device, dtype) -> None:
    B, H, N, L = (4, 16, 16, 128) if args.quick else (32, 64, 64, args.L)
    torch.manual_seed(0)
    layer = S4D(H, N, dtype=dtype, device=device)
    u = torch.randn(B, L, H, dtype=dtype, device=device)
    state0 = layer.default_state(B)

    def steps():
        state = state0
        for u_t in u.unbind(1):
            y, state = layer.step(u_t, state)

    def hand():
        A_bar, B_bar, _ = layer.discretize()
        C = torch.view_as_complex(layer.C)
        state = state0
        for u_t in u.unbind(1):
            state = A_bar * state + B_bar * u_t[..., None]
            y = 2 * torch.einsum("hn,bhn->bh", C, state).real + layer.D * u_t

    def old():
        with step_cache_disabled():
            steps()

    with torch.no_grad():
        t_step = best_seconds(steps, device, args.repeats)
        t_hand = best_seconds(hand, device, args.repeats)
        t_old = best_seconds(old, device, args.repeats)
        t_conv = best_seconds(lambda: layer(u), device, args.repeats)
    print(f"\n[layer] S4D B={B} H={H} N={N} L={L}, no_grad")
    print(f"  layer.step (memo)         {t_step:8.3f} s")
    print(f"  hand loop, discretise once{t_hand:8.3f} s   layer.step / hand = {t_step / t_hand:.2f}x (target <= 1.5x)")
    print(f"  old layer.step (no memo)  {t_old:8.3f} s   old / memo = {t_old / t_step:.2f}x faster now")
    print(f"  FFT convolution           {t_conv:8.3f} s   memo steps / convolution = {t_step / t_conv:.1f}x")


def bench_warmup(args, device, dtype) -> None:
    batch, lengths = (4, (16,)) if args.quick else (64, (16, 64, 256))
    print(f"\n[warmup] batch {batch} forecasts, no_grad: parallel warm-up vs one teacher-forced pass (target <= 1x)")
    for name in LEARNERS:
        em = make_emulator(name, device, dtype)
        for C in lengths:
            ctx = contexts(batch, C, device, dtype)
            with torch.no_grad():
                t_par = best_seconds(lambda: em.warm_up(ctx), device, args.repeats)
                t_fwd = best_seconds(lambda: em(ctx), device, args.repeats)
                em.parallel_warmup = False
                t_rec = best_seconds(lambda: em.warm_up(ctx), device, args.repeats)
                em.parallel_warmup = True
            print(f"  {name:5s} C={C:4d}: parallel {t_par * 1e3:8.1f} ms, teacher-forced pass {t_fwd * 1e3:8.1f} ms "
                  f"-> {t_par / t_fwd:.2f}x; recurrent warm-up {t_rec * 1e3:8.1f} ms -> {t_rec / t_fwd:.2f}x of a pass")


def _compiled_rollout(em, ctx, steps, device, repeats):
    """(compile seconds, best rollout seconds) of the compiled path, or (None, None) if it fell back."""
    em.__dict__.pop("_compiled_step", None)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _sync(device)
        start = time.perf_counter()
        em.rollout(ctx, steps, compile=True)
        _sync(device)
        first = time.perf_counter() - start
        if em.compiled_step().failed:
            print(f"    compile failed: {em.compiled_step().failed}")
            return None, None
        best = best_seconds(lambda: em.rollout(ctx, steps, compile=True), device, repeats, warmup=False)
    return first - best, best


def bench_emulators(args, device, dtype) -> None:
    batches = (1, 8) if args.quick else (1, 64, 1024)
    print(f"\n[emulators] quickstart-sized emulators (K={K} sites, d_model 32, 2 layers), context 2, no_grad; "
          "forecast-steps/s = forecasts x steps / s")
    for name in LEARNERS:
        em = make_emulator(name, device, dtype)
        for batch in batches:
            steps = 6 if args.quick else (60 if batch < 1024 else 8)
            ctx = contexts(batch, 2, device, dtype)
            with torch.no_grad():
                with old_path(em):
                    t_old = best_seconds(lambda: em.rollout(ctx, steps), device, args.repeats)
                t_new = best_seconds(lambda: em.rollout(ctx, steps), device, args.repeats)
                rate = lambda t: batch * steps / t
                line = (f"  {name:5s} batch {batch:5d}: old {rate(t_old):10.0f}/s, memo {rate(t_new):10.0f}/s "
                        f"({t_old / t_new:.2f}x)")
                if not args.no_compile:
                    t_compile, t_comp = _compiled_rollout(em, ctx, steps, device, args.repeats)
                    if t_comp is not None:
                        line += (f", compiled {rate(t_comp):10.0f}/s ({t_old / t_comp:.2f}x of old, "
                                 f"{t_new / t_comp:.2f}x of memo; compile {t_compile:.1f} s)")
            print(line)


def bench_threads(args, device, dtype) -> None:
    if device.type != "cpu":
        return
    batches = (1, 8) if args.quick else (1, 64, 1024)
    print("\n[threads] default path, intra-op threads 1 vs 2, no_grad")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for name in LEARNERS:
            em = make_emulator(name, device, dtype)
            for batch in batches:
                steps = 6 if args.quick else (60 if batch < 1024 else 8)
                ctx = contexts(batch, 2, device, dtype)
                times = {}
                for n in (1, 2):
                    with torch.no_grad(), _env("DYNLAB_STEP_THREADS", str(n)):
                        times[n] = best_seconds(lambda: em.rollout(ctx, steps), device, args.repeats,
                                                clock=time.perf_counter)
                print(f"  {name:5s} batch {batch:5d}: 1 thread {times[1] * 1e3:8.1f} ms, 2 threads "
                      f"{times[2] * 1e3:8.1f} ms -> 2 threads take {times[2] / times[1]:.2f}x")
    finally:
        torch.set_num_threads(previous)


def bench_evaluation(args, device, dtype) -> None:
    members, starts, horizon, long = (2, 2, 10, 50) if args.quick else (4, 4, 60, 1000)
    em = make_emulator("s4d", device, dtype)
    ctx_old = contexts(members * starts, 2, device, dtype)
    ctx_new = contexts(members * starts * 10, 2, device, dtype)
    ctx_long = contexts(members, 2, device, dtype)

    def evaluation(ctx):
        em.rollout(ctx, horizon)
        em.rollout(ctx_long, long)

    with torch.no_grad():
        with old_path(em):
            t_old = best_seconds(lambda: evaluation(ctx_old), device, args.repeats)
        t_new = best_seconds(lambda: evaluation(ctx_new), device, args.repeats)
        t_new16 = best_seconds(lambda: evaluation(ctx_old), device, args.repeats)
    print(f"\n[evaluation] quickstart S4D emulator: {horizon}-step forecasts + {members} free runs of {long} steps")
    print(f"  old path, {members * starts:4d} forecasts: {t_old:7.2f} s")
    print(f"  new path, {members * starts:4d} forecasts: {t_new16:7.2f} s   -> {t_new16 / t_old:.2f}x of old")
    print(f"  new path, {members * starts * 10:4d} forecasts: {t_new:7.2f} s   -> {t_new / t_old:.2f}x of old "
          f"16-forecast time (target <= 1x)")


SECTIONS = {"layer": bench_layer, "warmup": bench_warmup, "emulators": bench_emulators,
            "threads": bench_threads, "evaluation": bench_evaluation}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--L", type=int, default=1024, help="sequence length of the layer section (issue: 4096)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads outside the threads section")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall time, or process CPU time (less disturbed by other jobs; not for the threads section)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (30-70 s per shape on CPU)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.L < 1 or args.threads < 1:
        raise ValueError("--repeats, --L and --threads must be >= 1")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if device.type != "cpu":
            raise ValueError("--clock cpu measures CPU runs only")
        CLOCK["clock"] = time.process_time
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bench_rollout: {platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}, torch {torch.__version__}, "
          f"{args.device}, {args.dtype}, {args.threads} thread(s), {args.clock} clock")
    for name in args.sections:
        SECTIONS[name](args, device, dtype)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload at the end: {load:.1f}")


if __name__ == "__main__":
    main()
