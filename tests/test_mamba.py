"""MambaBlock and SSMBackbone: parallel and recurrent modes agree, states continue, inits hold."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from dynlab.models.ssm import MambaBlock, SSMBackbone
from dynlab.models.ssm.mamba import MambaState

F64 = torch.float64
HAS_S4D = importlib.util.find_spec("dynlab.models.ssm.s4d") is not None


def steps(module, x, state):
    """Run ``module.step`` over time: x (B, L, D) -> (B, L, D), final state."""
    ys = []
    for t in range(x.shape[1]):
        y_t, state = module.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, dim=1), state


def assert_states_close(a, b, tol):
    flat_a, flat_b = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    assert len(flat_a) == len(flat_b)
    for s, t in zip(flat_a, flat_b):
        torch.testing.assert_close(s, t, rtol=tol, atol=tol)


@pytest.fixture
def block():
    torch.manual_seed(0)
    return MambaBlock(6, d_state=5, d_conv=3, expand=2, dtype=F64)


# --- MambaBlock -------------------------------------------------------------------------------

def test_forward_and_step_agree(block):
    x = torch.randn(3, 19, 6, dtype=F64)
    y, state = block(x)
    assert y.shape == x.shape and isinstance(state, MambaState)
    assert state.conv.shape == (3, 2, 12) and state.ssm.shape == (3, 12, 5)
    y_rec, state_rec = steps(block, x, block.default_state(3))
    torch.testing.assert_close(y_rec, y, rtol=1e-10, atol=1e-10)
    assert_states_close(state_rec, state, 1e-10)


def test_forward_from_a_state_continues_the_recurrence(block):
    x = torch.randn(2, 17, 6, dtype=F64)
    y_all, state_all = block(x)
    _, mid = steps(block, x[:, :7], block.default_state(2))
    y_rest, state_rest = block(x[:, 7:], mid)
    torch.testing.assert_close(y_rest, y_all[:, 7:], rtol=1e-10, atol=1e-10)
    assert_states_close(state_rest, state_all, 1e-10)
    # and the other way round: steps from a forward state
    _, mid = block(x[:, :7])
    y_steps, _ = steps(block, x[:, 7:], mid)
    torch.testing.assert_close(y_steps, y_all[:, 7:], rtol=1e-10, atol=1e-10)


def test_causal(block):
    x = torch.randn(1, 12, 6, dtype=F64)
    x2 = x.clone()
    x2[:, 8:] += 1.0
    y, _ = block(x)
    y2, _ = block(x2)
    torch.testing.assert_close(y[:, :8], y2[:, :8], rtol=0, atol=0)
    assert not torch.allclose(y[:, 8:], y2[:, 8:])


def test_step_is_differentiable_and_matches_forward_gradients(block):
    x = torch.randn(2, 9, 6, dtype=F64, requires_grad=True)
    y, _ = block(x)
    g_forward = torch.autograd.grad(y.square().sum(), [x, block.A_log, block.dt_proj.bias, block.conv1d.weight])
    y_rec, _ = steps(block, x, block.default_state(2))
    g_step = torch.autograd.grad(y_rec.square().sum(), [x, block.A_log, block.dt_proj.bias, block.conv1d.weight])
    for a, b in zip(g_forward, g_step):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_backends_agree_inside_the_block():
    torch.manual_seed(1)
    x = torch.randn(2, 21, 4, dtype=F64)
    ref = MambaBlock(4, d_state=3, backend="ref", dtype=F64)
    chunked = MambaBlock(4, d_state=3, backend="chunked", chunk_size=5, dtype=F64)
    chunked.load_state_dict(ref.state_dict())
    torch.testing.assert_close(chunked(x)[0], ref(x)[0], rtol=1e-12, atol=1e-12)


def test_initialisation():
    torch.manual_seed(0)
    dt_min, dt_max = 0.002, 0.05
    block = MambaBlock(32, d_state=8, dt_min=dt_min, dt_max=dt_max, dt_init_floor=1e-4)
    assert block.d_inner == 64 and block.dt_rank == math.ceil(32 / 16)
    # S4D-Real: A_{d,n} = -(n + 1) for every channel
    torch.testing.assert_close(block.A, -torch.arange(1, 9.0).expand(64, 8))
    # the Δ bias starts Δ inside [dt_min, dt_max] (softplus of the bias, zero input)
    dt = F.softplus(block.dt_proj.bias)
    assert (dt >= dt_min * (1 - 1e-5)).all() and (dt <= dt_max * (1 + 1e-5)).all()
    assert dt.max() / dt.min() > 3  # log-uniform spread, not a constant
    torch.testing.assert_close(block.D, torch.ones(64))
    assert block.A_log._optim == {"weight_decay": 0.0}
    assert block.dt_proj.bias._optim == {"weight_decay": 0.0}
    assert not hasattr(block.dt_proj.weight, "_optim") and not hasattr(block.in_proj.weight, "_optim")


def test_float32_block_on_bf16_autocast_inputs_runs():
    torch.manual_seed(0)
    block = MambaBlock(8, d_state=4)
    x = torch.randn(2, 10, 8)
    y, state = block(x.to(torch.bfloat16).float())
    assert y.dtype == torch.float32 and state.ssm.dtype == torch.float32
    default = MambaBlock(8, dtype=torch.bfloat16).default_state(2)
    assert default.conv.dtype == torch.bfloat16 and default.ssm.dtype == torch.float32


def test_invalid_arguments_raise(block):
    with pytest.raises(ValueError, match=r"x must be \(B, L, d_model\) with d_model = 6"):
        block(torch.randn(2, 5, 7, dtype=F64))
    with pytest.raises(ValueError, match=r"state must be a MambaState"):
        block(torch.randn(2, 5, 6, dtype=F64), block.default_state(3))
    with pytest.raises(ValueError, match=r"x_t must be \(B, d_model\)"):
        block.step(torch.randn(2, 5, 6, dtype=F64), block.default_state(2))
    with pytest.raises(ValueError, match=r"dt_min must be <= dt_max"):
        MambaBlock(4, dt_min=0.5, dt_max=0.1)
    with pytest.raises(ValueError, match=r"unknown backend"):
        MambaBlock(4, backend="fast")
    with pytest.raises(ValueError, match=r"d_state must be an integer >= 1"):
        MambaBlock(4, d_state=0)


# --- SSMBackbone ------------------------------------------------------------------------------

BLOCK_CASES = [
    pytest.param("mamba", dict(d_state=4, d_conv=3), id="mamba"),
    pytest.param("s4d", dict(d_state=4), id="s4d",
                 marks=pytest.mark.skipif(not HAS_S4D, reason="dynlab.models.ssm.s4d not available yet")),
]


@pytest.mark.parametrize("norm", ["rms", "layer"])
@pytest.mark.parametrize("block_name, kwargs", BLOCK_CASES)
def test_backbone_forward_and_step_agree(block_name, kwargs, norm):
    torch.manual_seed(0)
    model = SSMBackbone(6, 3, block=block_name, norm=norm, dtype=F64, **kwargs)
    x = torch.randn(2, 13, 6, dtype=F64)
    y, state = model(x)
    assert y.shape == x.shape and len(state) == 3
    y_rec, state_rec = steps(model, x, model.default_state(2))
    torch.testing.assert_close(y_rec, y, rtol=1e-10, atol=1e-10)
    assert_states_close(state_rec, state, 1e-10)
    # forward from a state equals continuing
    _, mid = model(x[:, :5])
    y_rest, _ = model(x[:, 5:], mid)
    torch.testing.assert_close(y_rest, y[:, 5:], rtol=1e-10, atol=1e-10)


def test_backbone_is_a_pre_norm_residual_stack():
    """y = norm_f(x + Σ-stack) checked by hand for one layer."""
    torch.manual_seed(0)
    model = SSMBackbone(6, 1, block="mamba", norm="layer", dtype=F64, d_state=3)
    x = torch.randn(2, 7, 6, dtype=F64)
    inner, _ = model.blocks[0](model.norms[0](x))
    torch.testing.assert_close(model(x)[0], model.final_norm(x + inner), rtol=1e-13, atol=1e-13)
    assert isinstance(model.norms[0], torch.nn.LayerNorm)
    assert isinstance(SSMBackbone(6, 1, norm="rms").norms[0], torch.nn.RMSNorm)


def test_backbone_trains():
    torch.manual_seed(0)
    model = SSMBackbone(4, 1, block="mamba", d_state=4)
    x = torch.randn(2, 12, 4)
    target = torch.roll(x, 1, dims=1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(15):
        loss = F.mse_loss(model(x)[0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses[-1] < 0.7 * losses[0]


def test_backbone_invalid_arguments():
    with pytest.raises(ValueError, match=r"unknown block 'lstm'"):
        SSMBackbone(4, 2, block="lstm")
    with pytest.raises(ValueError, match=r"unknown norm 'batch'"):
        SSMBackbone(4, 2, norm="batch")
    with pytest.raises(ValueError, match=r"n_layers must be an integer >= 1"):
        SSMBackbone(4, 0)
    model = SSMBackbone(4, 2, d_state=3)
    with pytest.raises(ValueError, match=r"state must be a sequence of 2 block states"):
        model(torch.randn(1, 3, 4), model.default_state(1)[:1])
