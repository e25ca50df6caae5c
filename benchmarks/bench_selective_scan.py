"""Benchmark the selective-scan backends against a baseline measured in the same run.

CPU (default): chunked torch scan vs the sequential reference, forward and
forward + backward, batch 8, channels 64, state 16, float32, L in {256, 1024, 4096}.
Also prints the rate of one pass over a (8, L, 64, 16) float32 tensor at the chunked
backend's forward time, a yardstick for how far it is from the memory limit.

CUDA (--device cuda): Triton vs chunked torch at batch 8, L 4096, channels 1024,
state 16, float32, forward and forward + backward, timed with CUDA events; the
fraction of peak memory bandwidth (bytes the kernels must move ÷ time ÷ --peak-bw);
and the max abs error of Triton against the float64 reference at that size.

    python benchmarks/bench_selective_scan.py [--quick]
    python benchmarks/bench_selective_scan.py --device cuda [--quick] [--peak-bw 3.35e12]

Needs only torch (+ triton for the CUDA path) and this repository.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dynlab.models.ssm.selective_scan import selective_scan  # noqa: E402

FLOAT32 = 4  # bytes


def make_inputs(batch, length, H, N, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    args = dict(u=r(batch, length, H), delta=r(batch, length, H) - 1.0,
                A=-torch.rand(H, N, generator=g) * N - 0.5,
                B=r(batch, length, N), C=r(batch, length, N), D=r(H), delta_bias=0.1 * r(H))
    return {k: v.to(device, dtype) for k, v in args.items()}


def scan(args, backend, grad, y_bar=None):
    """One forward (and backward when ``grad``) pass of the full public function."""
    if grad:
        leaves = {k: v.detach().requires_grad_(True) for k, v in args.items()}
        y = selective_scan(**leaves, delta_softplus=True, backend=backend)
        y.backward(y_bar)
    else:
        with torch.no_grad():
            selective_scan(**args, delta_softplus=True, backend=backend)


# --- CPU ------------------------------------------------------------------------------------

def time_cpu(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)  # the least disturbed run on a shared machine


def bench_cpu(quick: bool, repeats: int) -> None:
    batch, H, N = 8, 64, 16
    lengths = (64, 256) if quick else (256, 1024, 4096)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, load average {load:.2f} (other processes skew timings)")
    print(f"batch {batch}, channels {H}, state {N}, float32; best of {repeats} runs (wall clock)\n")
    header = (f"{'L':>6} | {'ref fwd':>9} {'chunk fwd':>9} {'ratio':>6} | {'ref f+b':>9} {'chunk f+b':>9} "
              f"{'ratio':>6} | {'pass GB/s':>9}")
    print(header)
    print("-" * len(header))
    for length in lengths:
        args = make_inputs(batch, length, H, N, "cpu")
        y_bar = torch.randn(batch, length, H)
        res = {}
        for backend in ("ref", "chunked"):
            res[backend, False] = time_cpu(lambda: scan(args, backend, False), repeats)
            res[backend, True] = time_cpu(lambda: scan(args, backend, True, y_bar), repeats)
        one_pass = batch * length * H * N * FLOAT32  # bytes of one (B, L, H, N) float32 tensor
        print(f"{length:>6} | {res['ref', False]:>8.3f}s {res['chunked', False]:>8.3f}s "
              f"{res['ref', False] / res['chunked', False]:>5.1f}x | {res['ref', True]:>8.3f}s "
              f"{res['chunked', True]:>8.3f}s {res['ref', True] / res['chunked', True]:>5.1f}x | "
              f"{one_pass / res['chunked', False] / 1e9:>9.2f}")
    print("\npass GB/s: bytes of one pass over a (B, L, H, N) float32 tensor / chunked forward time."
          "\nThe chunked forward makes ~10-15 such passes (exp, input term, log2(T) scan levels, C·h),"
          "\nso the bandwidth it actually moves is roughly ten times this figure.")


# --- CUDA -----------------------------------------------------------------------------------

def time_cuda(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def section(title, fn):
    """Run one measurement; a failure is reported and the benchmark goes on."""
    try:
        fn()
    except Exception:  # noqa: BLE001 - a benchmark should report, not stop
        print(f"[{title}] FAILED:\n{traceback.format_exc()}")


def bench_cuda(quick: bool, repeats: int, peak_bw: float, device: str = "cuda",
               sweep_configs: bool = False) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device visible to torch")
    try:
        import triton
        from dynlab.kernels.selective_scan_triton import selective_scan_triton_core
    except ImportError as err:
        sys.exit(f"--device cuda needs triton: {err}")
    batch, length, H, N = (2, 512, 256, 16) if quick else (8, 4096, 1024, 16)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    print(f"batch {batch}, L {length}, channels {H}, state {N}, float32; median of {repeats} runs "
          f"(CUDA events); peak bandwidth {peak_bw:.3g} B/s\n")
    args = make_inputs(batch, length, H, N, device)
    y_bar = torch.randn(batch, length, H, device=device)
    BLH, BLN = batch * length * H, batch * length * N
    # Bytes the core kernels must move at least (float32):
    # forward reads u, Δ, B, C and writes y; backward reads u, Δ, B, C, ȳ and writes ∂u, ∂Δ, ∂B, ∂C.
    fwd_bytes = FLOAT32 * (3 * BLH + 2 * BLN)
    bwd_bytes = FLOAT32 * (5 * BLH + 4 * BLN)

    def full_function():
        res = {}
        for backend in ("triton", "chunked"):
            res[backend, False] = time_cuda(lambda: scan(args, backend, False), repeats)
            res[backend, True] = time_cuda(lambda: scan(args, backend, True, y_bar), repeats)
        print("selective_scan(...) end to end (softplus(Δ + bias), scan, D skip, in torch around the kernel):")
        for grad, name in ((False, "forward"), (True, "forward+backward")):
            t_tr, t_ch = res["triton", grad], res["chunked", grad]
            print(f"  {name:<17} triton {t_tr * 1e3:8.2f} ms   chunked torch {t_ch * 1e3:8.2f} ms   "
                  f"ratio {t_ch / t_tr:6.1f}x")

    def kernels_only():
        u, dt = args["u"], torch.nn.functional.softplus(args["delta"] + args["delta_bias"])
        A, B, C = args["A"], args["B"], args["C"]
        h0 = torch.zeros(batch, H, N, device=device)
        t_fwd = time_cuda(lambda: selective_scan_triton_core(u, dt, A, B, C, h0), repeats)
        leaves = [x.detach().requires_grad_(True) for x in (u, dt, A, B, C)]

        def fwd_bwd():
            y, _ = selective_scan_triton_core(*leaves, h0)
            y.backward(y_bar)

        t_both = time_cuda(fwd_bwd, repeats)
        t_bwd = t_both - t_fwd
        print("\nTriton core kernels alone (no pre/post-processing):")
        print(f"  forward           {t_fwd * 1e3:8.2f} ms   {fwd_bytes / t_fwd / 1e9:8.1f} GB/s   "
              f"{fwd_bytes / t_fwd / peak_bw:6.1%} of peak")
        print(f"  backward (approx) {t_bwd * 1e3:8.2f} ms   {bwd_bytes / t_bwd / 1e9:8.1f} GB/s   "
              f"{bwd_bytes / t_bwd / peak_bw:6.1%} of peak")
        print(f"  forward+backward  {t_both * 1e3:8.2f} ms   "
              f"{(fwd_bytes + bwd_bytes) / t_both / peak_bw:6.1%} of peak")

    def accuracy():
        leaves = {k: v.detach().requires_grad_(True) for k, v in args.items()}
        y, h = selective_scan(**leaves, delta_softplus=True, backend="triton", return_final_state=True)
        y.backward(y_bar)
        grads = {k: v.grad for k, v in leaves.items()}
        ref = {k: v.detach().double().requires_grad_(True) for k, v in args.items()}
        y_ref, h_ref = selective_scan(**ref, delta_softplus=True, backend="ref", return_final_state=True)
        y_ref.backward(y_bar.double())
        print("\nTriton (float32) vs the float64 reference at this size: max abs error (max |reference|)")
        print(f"  y               {(y.double() - y_ref).abs().max().item():.3e}  ({y_ref.abs().max().item():.3e})")
        print(f"  final state     {(h.double() - h_ref).abs().max().item():.3e}  ({h_ref.abs().max().item():.3e})")
        for k, leaf in ref.items():
            err = (grads[k].double() - leaf.grad).abs().max().item()
            print(f"  grad {k:<10} {err:.3e}  ({leaf.grad.abs().max().item():.3e})")

    def sweep():
        u, dt = args["u"], torch.nn.functional.softplus(args["delta"] + args["delta_bias"])
        leaves = [x.detach().requires_grad_(True) for x in (u, dt, args["A"], args["B"], args["C"])]
        h0 = torch.zeros(batch, H, N, device=device)
        print("\nTriton core forward+backward by launch configuration (block_h, num_warps, checkpoint K):")
        configs = [(8, 1, 64), (16, 1, 64), (32, 1, 64), (16, 2, 64), (32, 2, 64), (64, 4, 64),
                   (16, 1, 32), (16, 1, 128)]
        for block_h, num_warps, K in configs:
            def fwd_bwd():
                y, _ = selective_scan_triton_core(*leaves, h0, checkpoint_every=K,
                                                  block_h=block_h, num_warps=num_warps)
                y.backward(y_bar)
            t = time_cuda(fwd_bwd, max(2, repeats // 3), warmup=1)
            print(f"  block_h {block_h:>3}  warps {num_warps}  K {K:>3}  {t * 1e3:8.2f} ms", flush=True)

    section("end to end", full_function)
    section("kernels only", kernels_only)
    section("accuracy", accuracy)
    if sweep_configs:
        section("sweep", sweep)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="cpu: torch intra-op threads (default: torch's choice); 1 is steadier on a shared machine")
    parser.add_argument("--sweep", action="store_true",
                        help="cuda: also time the Triton kernels over block sizes, warps and checkpoint intervals")
    parser.add_argument("--peak-bw", type=float, default=3.35e12,
                        help="peak memory bandwidth in B/s (default: H100 SXM, 3.35e12)")
    opts = parser.parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.device == "cpu":
        bench_cpu(opts.quick, opts.repeats or (1 if opts.quick else 3))
    else:
        bench_cuda(opts.quick, opts.repeats or (3 if opts.quick else 10), opts.peak_bw, sweep_configs=opts.sweep)


if __name__ == "__main__":
    main()
