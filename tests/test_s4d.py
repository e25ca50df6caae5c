"""S4D: convolution, recurrence and initial-state modes agree; discretisations are exact."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.func import functional_call

from dynlab.models.ssm import S4D, S4DBlock
from dynlab.models.ssm.hippo import hippo_nplr

F64 = torch.float64
INITS = ["legs", "lin", "inv", "real"]
DISCRETIZATIONS = ["zoh", "bilinear"]
H, N, L, BATCH = 3, 8, 24, 2


def make_layer(init="legs", discretization="zoh", seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = dict(dt_min=0.05, dt_max=0.5) | kwargs  # coarse steps: Ā far from 1
    return S4D(H, N, init=init, discretization=discretization, dtype=F64, **kwargs)


def random_inputs(seed=1, batch=BATCH, length=L):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, H, dtype=F64, generator=g)
    x0 = torch.randn(batch, H, N // 2, 2, dtype=F64, generator=g)
    return u, torch.view_as_complex(x0)


def run_steps(module, u, state, dt=None):
    ys = []
    for t in range(u.shape[1]):
        y_t, state = module.step(u[:, t], state, dt=dt)
        ys.append(y_t)
    return torch.stack(ys, dim=1), state


def scalar_loss(y, state, seed=2):
    g = torch.Generator().manual_seed(seed)
    w_y = torch.randn(y.shape, dtype=F64, generator=g)
    w_x = torch.randn(torch.view_as_real(state).shape, dtype=F64, generator=g)
    return (w_y * y).sum() + (w_x * torch.view_as_real(state)).sum()


@pytest.mark.parametrize("discretization", DISCRETIZATIONS)
@pytest.mark.parametrize("init", INITS)
def test_convolution_and_recurrence_agree_with_initial_state(init, discretization):
    layer = make_layer(init, discretization)
    u, x0 = random_inputs()
    u_conv, u_step = u.clone().requires_grad_(), u.clone().requires_grad_()

    y_conv, final_conv = layer(u_conv, x0)
    y_step, final_step = run_steps(layer, u_step, x0)
    torch.testing.assert_close(y_conv, y_step, atol=1e-10, rtol=0)
    torch.testing.assert_close(final_conv, final_step, atol=1e-10, rtol=0)

    grads_conv = torch.autograd.grad(scalar_loss(y_conv, final_conv), [u_conv, *layer.parameters()])
    grads_step = torch.autograd.grad(scalar_loss(y_step, final_step), [u_step, *layer.parameters()])
    for g_conv, g_step in zip(grads_conv, grads_step):
        torch.testing.assert_close(g_conv, g_step, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("discretization", DISCRETIZATIONS)
@pytest.mark.parametrize("init", INITS)
def test_kernel_is_sum_of_powers(init, discretization):
    layer = make_layer(init, discretization)
    A_bar, B_bar, _ = layer.discretize()
    C = torch.view_as_complex(layer.C)
    power = torch.ones_like(A_bar)
    expected = []
    for _ in range(L):  # K_l = 2 Re(C Ā^l B̄) by repeated multiplication
        expected.append(2 * (C * power * B_bar).sum(-1).real)
        power = power * A_bar
    torch.testing.assert_close(layer.kernel(L), torch.stack(expected, -1), atol=1e-12, rtol=1e-12)


def test_zoh_matches_matrix_exponential_of_the_real_system():
    """Ā, B̄ from exp([[A, B], [0, 0]] Δ) of the real 2x2 block of each conjugate pair."""
    layer = make_layer("lin", "zoh")
    A_bar, B_bar, _ = layer.discretize()
    dt = torch.exp(layer.log_dt)
    A, B = layer.A, torch.view_as_complex(layer.B)
    for h in range(H):
        for n in range(N // 2):
            a, b = A[h, n].item(), B[h, n].item()
            # complex scalar a acting on R^2 (real, imag) plus the complex input column b
            block = [[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0, 0, 0]]
            exact = scipy.linalg.expm(dt[h].item() * np.array(block))
            assert complex(exact[0, 0], exact[1, 0]) == pytest.approx(A_bar[h, n].item(), abs=1e-12)
            assert complex(exact[0, 2], exact[1, 2]) == pytest.approx(B_bar[h, n].item(), abs=1e-12)


def test_bilinear_discretisation_is_the_trapezoid_rule():
    """(1 - ΔA/2) Ā = 1 + ΔA/2 and (1 - ΔA/2) B̄ = Δ B."""
    layer = make_layer("inv", "bilinear")
    A_bar, B_bar, _ = layer.discretize()
    dtA = torch.exp(layer.log_dt)[:, None] * layer.A
    torch.testing.assert_close((1 - dtA / 2) * A_bar, 1 + dtA / 2)
    torch.testing.assert_close((1 - dtA / 2) * B_bar,
                               torch.exp(layer.log_dt)[:, None] * torch.view_as_complex(layer.B))


@pytest.mark.parametrize("init, real_param, discretization",
                         [("legs", "exp", "zoh"), ("lin", "softplus", "bilinear"), ("inv", "stablessm", "zoh")])
def test_gradcheck_all_parameters_and_input(init, real_param, discretization):
    torch.manual_seed(0)
    layer = S4D(2, 4, init=init, real_param=real_param, discretization=discretization,
                dt_min=0.1, dt_max=0.5, dtype=F64)
    names = [name for name, _ in layer.named_parameters()]
    u = torch.randn(1, 5, 2, dtype=F64, requires_grad=True)
    x0 = torch.randn(1, 2, 2, dtype=torch.complex128)

    def outputs(u, *params):
        y, final = functional_call(layer, dict(zip(names, params)), (u, x0))
        return y, torch.view_as_real(final)

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(outputs, (u, *params))


def test_rate_is_a_scaled_step_and_matches_step_dt():
    layer = make_layer("legs", "bilinear")
    u, x0 = random_inputs()
    y_rate, final_rate = layer(u, x0, rate=2.5)
    y_step, final_step = run_steps(layer, u, x0, dt=2.5)
    torch.testing.assert_close(y_rate, y_step, atol=1e-10, rtol=0)
    torch.testing.assert_close(final_rate, final_step, atol=1e-10, rtol=0)
    # rate scales Δ: same as a layer whose log Δ is shifted by log 2.5
    shifted = make_layer("legs", "bilinear")
    with torch.no_grad():
        shifted.log_dt += math.log(2.5)
    torch.testing.assert_close(shifted(u, x0)[0], y_rate, atol=1e-12, rtol=0)
    assert (y_rate - layer(u, x0)[0]).abs().max() > 1e-3


def test_zoh_step_with_double_gap_equals_two_unit_steps():
    """ZOH is exact for input held constant: one step of 2Δ = two steps of Δ."""
    layer = make_layer("lin", "zoh")
    u, x0 = random_inputs()
    _, state_two = run_steps(layer, u[:, :1].expand(-1, 2, -1), x0, dt=1.0)
    _, state_one = layer.step(u[:, 0], x0, dt=2.0)
    torch.testing.assert_close(state_one, state_two, atol=1e-12, rtol=0)
    _, state_wrong = layer.step(u[:, 0], x0, dt=1.0)
    assert (state_wrong - state_two).abs().max() > 1e-3


def test_per_sample_dt_steps_each_row_with_its_own_gap():
    layer = make_layer("inv", "zoh")
    u, x0 = random_inputs()
    gaps = torch.tensor([0.5, 3.0], dtype=F64)
    y, state = layer.step(u[:, 0], x0, dt=gaps)
    for b in range(BATCH):
        y_b, state_b = layer.step(u[b:b + 1, 0], x0[b:b + 1], dt=gaps[b].item())
        torch.testing.assert_close(y[b:b + 1], y_b, atol=1e-14, rtol=0)
        torch.testing.assert_close(state[b:b + 1], state_b, atol=1e-14, rtol=0)
    # differentiable in the gaps too (e.g. learned time warps)
    gaps.requires_grad_()
    torch.autograd.grad(layer.step(u[:, 0], x0, dt=gaps)[0].sum(), gaps)


def test_initialisations_give_the_paper_eigenvalues():
    n = torch.arange(N // 2, dtype=F64)
    expected = {
        "lin": torch.complex(torch.full_like(n, -0.5), math.pi * n),
        "inv": torch.complex(torch.full_like(n, -0.5), N / math.pi * (N / (2 * n + 1) - 1)),
        "real": torch.complex(-(n + 1), torch.zeros_like(n)),
    }
    nplr = hippo_nplr("legs", N)
    expected["legs"] = nplr.eigenvalues[nplr.eigenvalues.imag > 0]
    for init, eigenvalues in expected.items():
        for real_param in ("exp", "softplus", "stablessm"):
            if init == "real" and real_param == "stablessm":
                continue
            A = make_layer(init, real_param=real_param).A
            torch.testing.assert_close(A, eigenvalues.expand(H, -1), atol=1e-12, rtol=1e-12)
    assert torch.all(expected["legs"].real.abs() - 0.5 < 1e-12)


@pytest.mark.parametrize("real_param", ["exp", "softplus", "stablessm"])
def test_reparameterisations_keep_the_layer_stable(real_param):
    layer = make_layer("lin", real_param=real_param)
    with torch.no_grad():
        layer.A_real_weight.copy_(10 * torch.randn_like(layer.A_real_weight))
    A_bar, _, _ = layer.discretize()
    assert torch.all(layer.A.real < 0) and torch.all(A_bar.abs() < 1)


def test_optimizer_hints_on_a_and_dt():
    layer = S4D(4, 8, lr=1e-3)
    for param in (layer.log_dt, layer.A_real_weight, layer.A_imag):
        assert param._optim == {"weight_decay": 0.0, "lr": 1e-3}
    assert not hasattr(layer.C, "_optim") and not hasattr(layer.D, "_optim")
    assert S4D(4, 8).log_dt._optim == {"weight_decay": 0.0}


def test_dt_is_log_uniform_in_range():
    layer = S4D(2000, 4, dt_min=1e-3, dt_max=1e-1)
    dt = torch.exp(layer.log_dt)
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    assert abs(layer.log_dt.mean().item() - math.log(1e-2)) < 0.1  # log-uniform: centred in log


@pytest.mark.parametrize("discretization", DISCRETIZATIONS)
def test_block_forward_and_step_agree(discretization):
    torch.manual_seed(0)
    block = S4DBlock(H, N, init="inv", discretization=discretization, dt_min=0.05, dt_max=0.5, dtype=F64)
    u, _ = random_inputs()
    state = block.default_state(BATCH)
    assert state.shape == (BATCH, H, N // 2) and state.dtype == torch.complex128
    y_conv, final_conv = block(u, state)
    y_step, final_step = run_steps(block, u, state)
    assert y_conv.shape == u.shape
    torch.testing.assert_close(y_conv, y_step, atol=1e-10, rtol=0)
    torch.testing.assert_close(final_conv, final_step, atol=1e-10, rtol=0)
    # a chunked forward carries the state across chunks
    y_a, state_a = block(u[:, :10])
    y_b, _ = block(u[:, 10:], state_a)
    torch.testing.assert_close(torch.cat([y_a, y_b], 1), block(u)[0], atol=1e-10, rtol=0)


def test_float32_default_state_and_forward():
    layer = S4D(4, 8)
    state = layer.default_state(3)
    assert state.dtype == torch.complex64
    y, final = layer(torch.randn(3, 16, 4), state)
    assert y.dtype == torch.float32 and final.shape == (3, 4, 4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_model=0), "d_model.*0"),
    (dict(d_model=4, d_state=7), "d_state.*7"),
    (dict(d_model=4, d_state=0), "d_state.*0"),
    (dict(d_model=4, init="hippo"), "hippo"),
    (dict(d_model=4, discretization="euler"), "euler"),
    (dict(d_model=4, real_param="square"), "square"),
    (dict(d_model=4, dt_min=0.2, dt_max=0.1), "0.2"),
    (dict(d_model=4, dt_min=-1.0), "-1.0"),
    (dict(d_model=4, init="real", real_param="stablessm", d_state=64), "-32"),
])
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S4D(**kwargs)


def test_bad_shapes_raise_clear_errors():
    layer = S4D(4, 8)
    with pytest.raises(ValueError, match=r"\(B, L, H\).*d_model = 4.*\(2, 5, 3\)"):
        layer(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"\(B, H\)"):
        layer.step(torch.randn(2, 5, 4), layer.default_state(2))
    with pytest.raises(ValueError, match=r"state.*\(2, 4, 4\).*\(3, 4, 4\)"):
        layer(torch.randn(2, 5, 4), layer.default_state(3))
    with pytest.raises(ValueError, match="dt"):
        layer.step(torch.randn(2, 4), layer.default_state(2), dt=torch.ones(3))
    with pytest.raises(ValueError, match="rate.*-1"):
        layer(torch.randn(2, 5, 4), rate=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        S4DBlock(4, dropout=1.5)


def test_half_precision_and_autocast_run_the_convolution_in_float32():
    """AMP: the FFT convolution runs in float32 under autocast (half-precision FFTs are
    limited to powers of two and lose the kernel's range); outputs keep the input dtype."""
    torch.manual_seed(0)
    layer = S4D(8, d_state=16)
    u = torch.randn(2, 100, 8)  # L = 100: not a power of two
    y, _ = layer(u)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_auto, _ = layer(u)
    y_half, _ = layer(u.bfloat16())
    assert y_auto.dtype == torch.float32 and torch.equal(y_auto, y)
    assert y_half.dtype == torch.bfloat16
    assert torch.allclose(y_half.float(), y, atol=0.05 * float(y.abs().max()))
