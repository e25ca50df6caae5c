"""Benchmark: S4D convolution mode against stepping the recurrence, forward + backward.

Both modes compute the same outputs (tests/test_s4d.py); this times them in one process
(kernel construction included) and prints the ratio. Target: convolution ≥ 10× faster.

    python benchmarks/bench_s4d.py                  # B=32, H=64, N=64, L=4096, float32, CPU
    python benchmarks/bench_s4d.py --quick          # tiny sizes, a smoke run
    python benchmarks/bench_s4d.py --device cuda --L 16384
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from dynlab.models.ssm import S4D


def convolution_pass(layer: S4D, u: torch.Tensor) -> None:
    y, _ = layer(u)  # (B, L, H)
    y.square().mean().backward()


def recurrent_pass(layer: S4D, u: torch.Tensor) -> None:
    state = layer.default_state(u.shape[0], device=u.device)
    outputs = []
    for t in range(u.shape[1]):
        y_t, state = layer.step(u[:, t], state)
        outputs.append(y_t)
    torch.stack(outputs, dim=1).square().mean().backward()


def median_seconds(run, layer: S4D, u: torch.Tensor, repeats: int,
                   warmup_input: torch.Tensor) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``run`` after one warm-up call. CPU time is
    reported too because on a shared machine wall time mostly measures the neighbours."""
    def timed(x: torch.Tensor) -> tuple[float, float]:
        layer.zero_grad(set_to_none=True)
        if x.is_cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        run(layer, x)
        if x.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu

    timed(warmup_input)
    walls, cpus = zip(*(timed(u) for _ in range(repeats)))
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=4096, help="sequence length")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64, help="H = d_model")
    parser.add_argument("--state", type=int, default=64, help="N = d_state")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.L, args.batch, args.channels, args.state, args.repeats = 256, 4, 8, 16, 1
    for name in ("L", "batch", "channels", "state", "threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    layer = S4D(args.channels, args.state, dtype=torch.float32, device=device)
    u = torch.randn(args.batch, args.L, args.channels, device=device)
    warmup = u[:, : min(args.L, 64)]  # warm-up pass on a short prefix: same code paths

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"S4D forward+backward, float32: batch={args.batch} channels={args.channels} "
          f"state={args.state} L={args.L}, median of {args.repeats}")
    conv_wall, conv_cpu = median_seconds(convolution_pass, layer, u, args.repeats, warmup_input=u)
    print(f"  convolution (FFT, kernel included): {conv_wall * 1e3:10.1f} ms wall {conv_cpu * 1e3:10.1f} ms CPU")
    step_wall, step_cpu = median_seconds(recurrent_pass, layer, u, args.repeats, warmup_input=warmup)
    print(f"  recurrence ({args.L} steps):{' ' * max(0, 9 - len(str(args.L)))}"
          f"{step_wall * 1e3:10.1f} ms wall {step_cpu * 1e3:10.1f} ms CPU")
    print(f"  ratio recurrence / convolution:     {step_wall / conv_wall:10.1f}x wall "
          f"{step_cpu / conv_cpu:7.1f}x CPU  (target >= 10x)")
    return {"convolution_s": conv_wall, "recurrence_s": step_wall, "ratio": step_wall / conv_wall,
            "ratio_cpu": step_cpu / conv_cpu}


if __name__ == "__main__":
    main()
