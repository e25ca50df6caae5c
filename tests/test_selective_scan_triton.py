"""The Triton selective-scan kernels against the reference.

On CPU the kernels run under ``TRITON_INTERPRET=1``, which must be set before triton is
imported, so those checks run in a fresh interpreter (subprocess) at tiny sizes: the
interpreter executes program instances one by one in numpy. The ``gpu`` tests run the
compiled kernels on CUDA (deselected by default; ``pytest -m gpu``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from dynlab.models.ssm import selective_scan, selective_scan_ref  # noqa: E402
from dynlab.models.ssm.selective_scan import _resolve_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Runs in a subprocess with TRITON_INTERPRET=1. Prints one JSON line: case -> {quantity: rel. error}.
INTERPRETER_SCRIPT = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import torch
    import triton.runtime.interpreter as interpreter

    # triton <= 3.6's interpreter calls int() on 1-element arrays (loop bounds from
    # scalar arguments); numpy >= 2.4 refuses that (triton-lang/triton#9171). Patch
    # only that conversion, only in this process.
    _patch = interpreter._patch_lang_tensor
    def _patch_lang_tensor(tensor, scope):
        _patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))
    interpreter._patch_lang_tensor = _patch_lang_tensor

    from dynlab.models.ssm import selective_scan

    def inputs(batch, length, H, N, dtype, seed):
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
        args = dict(u=r(batch, length, H), delta=0.5 * r(batch, length, H),
                    A=-torch.rand(H, N, generator=g, dtype=torch.float64) * 2 - 0.1,
                    B=r(batch, length, N), C=r(batch, length, N), D=r(H), z=r(batch, length, H),
                    delta_bias=0.1 * r(H), initial_state=r(batch, H, N))
        return {k: v.to(dtype) for k, v in args.items()}, g

    def run(backend, args, g_seed, **kw):
        leaves = {k: v.clone().requires_grad_(True) for k, v in args.items()}
        y, h = selective_scan(**leaves, delta_softplus=True, return_final_state=True, backend=backend, **kw)
        g = torch.Generator().manual_seed(g_seed)
        y_bar = torch.randn(tuple(y.shape), generator=g, dtype=torch.float64).to(y.dtype)
        h_bar = torch.randn(tuple(h.shape), generator=g, dtype=torch.float64).to(h.dtype)
        grads = torch.autograd.grad((y * y_bar).sum() + (h * h_bar).sum(), list(leaves.values()))
        return {"y": y, "final_state": h, **{"grad " + k: v for k, v in zip(leaves, grads)}}

    def errors(got, want):
        # max |got - want| / max |want|, per quantity
        return {k: ((got[k].double() - want[k].double()).abs().max()
                    / want[k].double().abs().max().clamp_min(1e-300)).item() for k in want}

    cases = {
        # single channel block (H < BLOCK_H), partial last checkpoint segment (13 = 3*4 + 1)
        "float64": dict(size=(2, 13, 5, 3), dtype=torch.float64, kw=dict(chunk_size=4)),
        "float32": dict(size=(2, 13, 5, 3), dtype=torch.float32, kw=dict(chunk_size=4)),
        # two channel blocks (H = 20 > 16): the per-block partial sums of dB, dC must add up;
        # right padding; one segment longer than the sequence
        "float64-blocks-lengths": dict(size=(2, 9, 20, 4), dtype=torch.float64,
                                       kw=dict(chunk_size=64, lengths=torch.tensor([9, 5]))),
    }
    out = {}
    for name, case in cases.items():
        args, _ = inputs(*case["size"], case["dtype"], seed=len(out))
        want = run("ref", {k: v.double() for k, v in args.items()}, 7, **case["kw"])
        got = run("triton", args, 7, **case["kw"])
        out[name] = errors(got, want)
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def interpreter_errors():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"interpreter run failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("case, tol", [("float64", 1e-10), ("float32", 1e-5),
                                       ("float64-blocks-lengths", 1e-10)])
def test_triton_kernel_under_interpreter_matches_reference(interpreter_errors, case, tol):
    errors = interpreter_errors[case]
    expected = {"y", "final_state", "grad u", "grad delta", "grad A", "grad B", "grad C", "grad D",
                "grad z", "grad delta_bias", "grad initial_state"}
    assert set(errors) == expected
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"relative errors above {tol}: {bad}"


# --- compiled kernels on CUDA -----------------------------------------------------------------

def _cuda_inputs(batch, length, H, N, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    args = dict(u=r(batch, length, H), delta=0.5 * r(batch, length, H),
                A=-torch.rand(H, N, generator=g, dtype=torch.float64) * 2 - 0.1,
                B=r(batch, length, N), C=r(batch, length, N), D=r(H), z=r(batch, length, H),
                delta_bias=0.1 * r(H), initial_state=r(batch, H, N))
    return {k: v.to("cuda", dtype) for k, v in args.items()}


def _run(backend, args, **kw):
    leaves = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    y, h = selective_scan(**leaves, delta_softplus=True, return_final_state=True, backend=backend, **kw)
    g = torch.Generator().manual_seed(1)
    y_bar = torch.randn(tuple(y.shape), generator=g, dtype=torch.float64).to(y)
    h_bar = torch.randn(tuple(h.shape), generator=g, dtype=torch.float64).to(h)
    grads = torch.autograd.grad((y * y_bar).sum() + (h * h_bar).sum(), list(leaves.values()))
    return {"y": y, "final_state": h, **{"grad " + k: v for k, v in zip(leaves, grads)}}


def _assert_close(got, want, tol):
    for k in want:
        scale = want[k].double().abs().max().clamp_min(1e-300)
        err = ((got[k].double() - want[k].double()).abs().max() / scale).item()
        assert err <= tol, f"{k}: relative error {err:.3g} > {tol}"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_triton_cuda_matches_reference(dtype, tol):
    lengths = torch.tensor([300, 1, 0, 217], device="cuda")
    args = _cuda_inputs(4, 300, 70, 16, dtype)  # 70 channels: 5 blocks, the last one partial
    want = _run("ref", {k: v.double() for k, v in args.items()}, lengths=lengths)
    for chunk_size in (1, 64):
        got = _run("triton", args, lengths=lengths, chunk_size=chunk_size)
        _assert_close(got, want, tol)


@pytest.mark.gpu
def test_triton_cuda_matches_chunked_at_scale():
    args = _cuda_inputs(2, 2048, 256, 16, torch.float32, seed=3)
    _assert_close(_run("triton", args), _run("chunked", args), 1e-4)


@pytest.mark.gpu
def test_triton_cuda_bf16_accumulates_in_float32():
    args = _cuda_inputs(2, 512, 64, 16, torch.bfloat16, seed=4)
    args["initial_state"] = args["initial_state"].float()
    y, h = selective_scan(**args, delta_softplus=True, return_final_state=True, backend="triton")
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    y32, h32 = selective_scan_ref(**{k: v.float() for k, v in args.items()}, delta_softplus=True,
                                  return_final_state=True)
    torch.testing.assert_close(y.float(), y32, rtol=1e-2, atol=1e-2 * y32.abs().max().item())
    torch.testing.assert_close(h, h32, rtol=1e-4, atol=1e-4 * h32.abs().max().item())


@pytest.mark.gpu
def test_auto_backend_is_triton_on_cuda():
    assert _resolve_backend("auto", torch.zeros(1, device="cuda")) == "triton"
