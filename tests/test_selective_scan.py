"""Selective scan: the reference against closed forms, the chunked backend against the reference.

The Triton backend has its own module (tests/test_selective_scan_triton.py).
"""
from __future__ import annotations

from functools import partial

import pytest
import torch

from dynlab.models.ssm import selective_scan, selective_scan_chunked, selective_scan_ref
from dynlab.models.ssm.selective_scan import _resolve_backend

GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


def make_inputs(batch=2, length=23, channels=5, state=4, dtype=torch.float64, seed=0, options=True):
    """Random inputs with a stable A (< 0); all optional arguments when ``options``."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)
    args = dict(
        u=r(batch, length, channels),
        delta=0.5 * r(batch, length, channels),
        A=-torch.rand(channels, state, generator=g, dtype=torch.float64) * 2 - 0.1,
        B=r(batch, length, state),
        C=r(batch, length, state),
    )
    if options:
        args.update(D=r(channels), z=r(batch, length, channels), delta_bias=0.1 * r(channels),
                    initial_state=r(batch, channels, state))
    return {k: v.to(dtype) for k, v in args.items()}


def run(fn, args, seed=1, **kwargs):
    """Output, final state and the gradients of a random linear functional of both."""
    args = {k: v.detach().clone().requires_grad_(True) for k, v in args.items()}
    y, h = fn(**args, return_final_state=True, **kwargs)
    g = torch.Generator().manual_seed(seed)
    # explicit shapes, not randn_like: the cotangents must not depend on the outputs' strides
    y_bar = torch.randn(tuple(y.shape), generator=g, dtype=torch.float64).to(y.dtype)
    h_bar = torch.randn(tuple(h.shape), generator=g, dtype=torch.float64).to(h.dtype)
    loss = (y * y_bar).sum() + (h * h_bar).sum()
    grads = torch.autograd.grad(loss, list(args.values()), allow_unused=True)
    return y.detach(), h.detach(), {k: (gr if gr is not None else torch.zeros_like(args[k]))
                                    for k, gr in zip(args, grads)}


def assert_close_all(got, want, rtol, atol_scale):
    """Compare (y, h, grads) with atol = atol_scale · max|want| per tensor."""
    names = ["y", "final_state"] + [f"grad {k}" for k in want[2]]
    tensors_got = [got[0], got[1], *got[2].values()]
    tensors_want = [want[0], want[1], *want[2].values()]
    for name, a, b in zip(names, tensors_got, tensors_want):
        b = b.to(a.dtype)
        atol = atol_scale * max(b.abs().max().item(), 1e-30)
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


# --- the reference is right -------------------------------------------------------------------

def test_reference_matches_closed_form_convolution():
    """Constant Δ, B, C: h_t = Σ_{s≤t} e^{(t-s)ΔA} Δ B u_s + e^{(t+1)ΔA} h_{-1}, an explicit sum."""
    batch, length, H, N = 2, 17, 3, 4
    args = make_inputs(batch, length, H, N)
    dt = torch.rand(H, dtype=torch.float64) + 0.1
    B_const, C_const = torch.randn(batch, N, dtype=torch.float64), torch.randn(batch, N, dtype=torch.float64)
    delta = dt.expand(batch, length, H)
    B = B_const[:, None].expand(batch, length, N)
    C = C_const[:, None].expand(batch, length, N)
    u, A, h0, D = args["u"], args["A"], args["initial_state"], args["D"]
    y, h = selective_scan_ref(u, delta, A, B, C, D=D, initial_state=h0, return_final_state=True)

    t = torch.arange(length, dtype=torch.float64)
    lag = (t[:, None] - t[None, :]).clamp(min=0)  # (t, s)
    causal = (t[:, None] >= t[None, :]).double()
    decay = torch.exp(lag[..., None, None] * dt[:, None] * A) * causal[..., None, None]  # (t, s, H, N)
    states = torch.einsum("tshn,bsh,bn->bthn", decay, u * dt, B_const)
    states = states + torch.exp((t[:, None, None] + 1) * dt[:, None] * A) * h0[:, None]
    want = torch.einsum("bthn,bn->bth", states, C_const) + D * u
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, states[:, -1], rtol=1e-12, atol=1e-12)


def test_reference_options_match_their_definitions():
    """delta_bias, softplus, D and the z gate act as documented (against a hand-built call)."""
    args = make_inputs()
    y = selective_scan_ref(**args, delta_softplus=True)
    dt = torch.nn.functional.softplus(args["delta"] + args["delta_bias"])
    core = selective_scan_ref(args["u"], dt, args["A"], args["B"], args["C"], initial_state=args["initial_state"])
    want = (core + args["D"] * args["u"]) * torch.nn.functional.silu(args["z"])
    torch.testing.assert_close(y, want, rtol=1e-13, atol=1e-13)


def test_zero_length_returns_the_initial_state():
    args = make_inputs(length=0)
    for fn in (selective_scan_ref, selective_scan_chunked):
        y, h = fn(**args, return_final_state=True)
        assert y.shape == (2, 0, 5)
        torch.testing.assert_close(h, args["initial_state"])


# --- chunked backend against the reference ----------------------------------------------------

ALGORITHMS = ["doubling", "blocked"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("options", [True, False], ids=["all-options", "no-options"])
@pytest.mark.parametrize("chunk_size", [1, 4, 11, 64])
def test_chunked_matches_reference_float64(options, chunk_size, algorithm):
    args = make_inputs(length=29, options=options)
    want = run(selective_scan_ref, args, delta_softplus=options)
    got = run(selective_scan_chunked, args, delta_softplus=options, chunk_size=chunk_size, algorithm=algorithm)
    assert_close_all(got, want, rtol=1e-10, atol_scale=1e-10)
    if options:
        assert set(got[2]) == set(GRAD_NAMES)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chunked_matches_reference_float32(algorithm):
    args = make_inputs(batch=3, length=200, channels=8, state=16, dtype=torch.float32)
    want = run(selective_scan_ref, {k: v.double() for k, v in args.items()}, delta_softplus=True)
    got = run(selective_scan_chunked, args, delta_softplus=True, chunk_size=32, algorithm=algorithm)
    assert got[0].dtype == torch.float32
    assert_close_all(got, want, rtol=1e-4, atol_scale=1e-4)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chunked_gradcheck(algorithm):
    """Finite differences through the custom autograd function (float64)."""
    args = make_inputs(batch=1, length=13, channels=2, state=3)
    names = list(args)

    def f(*tensors):
        return selective_scan_chunked(**dict(zip(names, tensors)), delta_softplus=True,
                                      return_final_state=True, chunk_size=11, algorithm=algorithm)

    inputs = tuple(v.clone().requires_grad_(True) for v in args.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


def test_chunk_size_and_algorithm_invariance():
    args = make_inputs(length=37)
    base = run(selective_scan_chunked, args, delta_softplus=True, chunk_size=37, algorithm="doubling")
    for algorithm in ALGORITHMS:
        for chunk_size in (1, 2, 5, 8, 16, 100):
            got = run(selective_scan_chunked, args, delta_softplus=True, chunk_size=chunk_size, algorithm=algorithm)
            assert_close_all(got, base, rtol=1e-12, atol_scale=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_strong_decay_is_stable(algorithm):
    """Δ·A down to −500 per step: a log-space cumsum formulation would overflow; ours must not."""
    args = make_inputs(length=64, options=False, dtype=torch.float32)
    args["delta"] = args["delta"].abs() * 100  # |ΔA| up to several hundred
    want = run(selective_scan_ref, {k: v.double() for k, v in args.items()})
    got = run(selective_scan_chunked, args, chunk_size=64, algorithm=algorithm)
    assert all(torch.isfinite(t).all() for t in (got[0], got[1], *got[2].values()))
    assert_close_all(got, want, rtol=1e-4, atol_scale=1e-4)


@pytest.mark.parametrize("fn", [selective_scan_ref, selective_scan_chunked], ids=["ref", "chunked"])
def test_state_passing_equals_one_pass(fn):
    """Scanning the first half, then the second from its final state, equals one pass."""
    args = make_inputs(length=30)
    y, h = fn(**args, delta_softplus=True, return_final_state=True)
    cut = 13
    first = {k: (v[:, :cut] if v.dim() == 3 and k != "initial_state" else v) for k, v in args.items()}
    second = {k: (v[:, cut:] if v.dim() == 3 and k != "initial_state" else v) for k, v in args.items()}
    y1, h1 = fn(**first, delta_softplus=True, return_final_state=True)
    second["initial_state"] = h1
    y2, h2 = fn(**second, delta_softplus=True, return_final_state=True)
    torch.testing.assert_close(torch.cat([y1, y2], dim=1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h2, h, rtol=1e-12, atol=1e-12)


# --- variable lengths -------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [selective_scan_ref, partial(selective_scan_chunked, chunk_size=4)],
                         ids=["ref", "chunked"])
def test_padding_does_not_change_valid_outputs_or_gradients(fn):
    lengths = torch.tensor([11, 4, 0])
    args = make_inputs(batch=3, length=11)
    # garbage at padded positions must not leak into anything
    padded = torch.arange(11)[None, :] >= lengths[:, None]
    for name in ("u", "delta", "B", "C", "z"):
        args[name] = args[name].masked_fill(padded[..., None], 1e3)
    leaves = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    y, h = fn(**leaves, delta_softplus=True, return_final_state=True, lengths=lengths)
    assert torch.isfinite(y).all() and (y[padded] == 0).all()
    y_bar = torch.randn(y.shape, dtype=y.dtype) * ~padded[..., None]
    h_bar = torch.randn(h.shape, dtype=h.dtype)
    grads = torch.autograd.grad((y * y_bar).sum() + (h * h_bar).sum(), list(leaves.values()))
    grads = dict(zip(leaves, grads))

    param_grads = {k: torch.zeros_like(args[k]) for k in ("A", "D", "delta_bias")}
    for b, n in enumerate(lengths.tolist()):
        alone = {k: (v[b:b + 1, :n] if v.dim() == 3 and k != "initial_state" else
                     v[b:b + 1] if k == "initial_state" else v).clone().requires_grad_(True)
                 for k, v in args.items()}
        y_b, h_b = fn(**alone, delta_softplus=True, return_final_state=True)
        torch.testing.assert_close(y[b:b + 1, :n], y_b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h[b:b + 1], h_b, rtol=1e-12, atol=1e-12)
        g_b = torch.autograd.grad((y_b * y_bar[b:b + 1, :n]).sum() + (h_b * h_bar[b:b + 1]).sum(),
                                  list(alone.values()), allow_unused=True)
        g_b = {k: (g if g is not None else torch.zeros_like(alone[k])) for k, g in zip(alone, g_b)}
        for name in ("u", "delta", "B", "C", "z"):
            torch.testing.assert_close(grads[name][b, :n], g_b[name][0], rtol=1e-11, atol=1e-11)
            assert (grads[name][b, n:] == 0).all(), f"gradient leaks into padded {name}"
        torch.testing.assert_close(grads["initial_state"][b], g_b["initial_state"][0], rtol=1e-11, atol=1e-11)
        for name in param_grads:
            param_grads[name] += g_b[name]
    for name, want in param_grads.items():
        torch.testing.assert_close(grads[name], want, rtol=1e-11, atol=1e-11)


# --- precision --------------------------------------------------------------------------------

@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(low):
    args = make_inputs(batch=2, length=300, channels=8, state=16, dtype=low)
    args["initial_state"] = args["initial_state"].float()
    leaves = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    y, h = selective_scan_chunked(**leaves, delta_softplus=True, return_final_state=True, chunk_size=32)
    assert y.dtype == low and h.dtype == torch.float32
    (y.float().sum() + h.sum()).backward()
    for name, leaf in leaves.items():
        assert leaf.grad.dtype == leaf.dtype and torch.isfinite(leaf.grad).all(), name
    # the float32 reference on the same (rounded) inputs: only the output rounding differs
    y32, h32 = selective_scan_ref(**{k: v.float() for k, v in args.items()}, delta_softplus=True,
                                  return_final_state=True)
    scale = y32.abs().max().item()
    torch.testing.assert_close(y.float(), y32, rtol=1e-2, atol=1e-2 * scale)
    torch.testing.assert_close(h, h32, rtol=1e-4, atol=1e-4 * h32.abs().max().item())


# --- dispatch and validation ------------------------------------------------------------------

def test_auto_backend_is_chunked_on_cpu_and_agrees():
    args = make_inputs()
    assert _resolve_backend("auto", args["u"]) == "chunked"
    torch.testing.assert_close(selective_scan(**args), selective_scan_ref(**args), rtol=1e-12, atol=1e-12)
    assert callable(selective_scan)


@pytest.mark.parametrize("name, bad, match", [
    ("delta", torch.zeros(2, 23, 4), r"delta must have shape \(batch, length, channels\) = \(2, 23, 5\)"),
    ("A", torch.zeros(4, 4), r"A must have shape \(channels, state\)"),
    ("B", torch.zeros(2, 23, 3), r"B must have shape \(batch, length, state\) = \(2, 23, 4\), got \(2, 23, 3\)"),
    ("C", torch.zeros(2, 22, 4), r"C must have shape"),
    ("D", torch.zeros(4), r"D must have shape \(channels,\)"),
    ("z", torch.zeros(2, 23), r"z must have shape"),
    ("delta_bias", torch.zeros(5, 1), r"delta_bias must have shape"),
    ("initial_state", torch.zeros(2, 4, 5), r"initial_state must have shape \(batch, channels, state\)"),
    ("lengths", torch.tensor([1, 2, 3]), r"lengths must have shape \(batch,\)"),
    ("lengths", torch.tensor([1.0, 2.0]), r"lengths must be an integer tensor"),
    ("lengths", torch.tensor([1, 24]), r"lengths must lie in \[0, length = 23\]"),
    ("u", torch.zeros(2, 23), r"u must be a 3-D tensor"),
])
def test_invalid_inputs_raise_value_error_naming_the_argument(name, bad, match):
    args = make_inputs(dtype=torch.float32)
    args[name] = bad
    with pytest.raises(ValueError, match=match):
        selective_scan(**args)


def test_dtype_mismatch_and_bad_options_raise():
    args = make_inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"B must have the dtype of u"):
        selective_scan(**{**args, "B": args["B"].double()})
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'"):
        selective_scan(**args, backend="cuda")
    with pytest.raises(ValueError, match=r"chunk_size must be an integer >= 1"):
        selective_scan(**args, chunk_size=0)
    with pytest.raises(ValueError, match=r"unknown algorithm 'fft'"):
        selective_scan_chunked(**args, algorithm="fft")


def test_kernel_module_imports_without_triton(monkeypatch):
    """A CPU-only install without triton: the kernel module imports, says so, and refuses politely."""
    import importlib.util
    import sys
    from pathlib import Path

    import dynlab.kernels

    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    path = Path(dynlab.kernels.__file__).with_name("selective_scan_triton.py")
    spec = importlib.util.spec_from_file_location("_selective_scan_triton_without_triton", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HAS_TRITON is False
    args = make_inputs(options=False, dtype=torch.float32)
    h0 = torch.zeros(2, 5, 4)
    with pytest.raises(ImportError, match="needs triton"):
        module.selective_scan_triton_core(args["u"], args["delta"], args["A"], args["B"], args["C"], h0)
