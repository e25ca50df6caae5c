"""Neural ODE: recovers a known linear field, adjoint and direct gradients agree, the Emulator contract,
a tiny `dynlab train` on short rollouts."""
from __future__ import annotations

import math

import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.emulators import FieldSpec, StateCodec
from dynlab.emulators.neural_ode import NeuralODEEmulator, NeuralODEOptions
from dynlab.models.neural_ode import MLPVectorField, ODEFlow
from dynlab.pipeline.train import train
from dynlab.testing import assert_emulator_contract
from test_trainer_support import make_store

QUIET = {"log": lambda msg: None}
A = torch.tensor([[-0.1, 2.0, 0.0], [-2.0, -0.1, 0.5], [0.0, -0.5, -0.3]], dtype=torch.float64)


def _linear_data(n=24, L=8, dt=0.1, seed=0):
    """Exact samples x(t_k) = exp(t_k A) x0 of the linear ODE dx/dt = A x + b, b = (0.2, 0, 1)."""
    g = torch.Generator().manual_seed(seed)
    b = torch.tensor([0.2, 0.0, 1.0], dtype=torch.float64)
    x_eq = -torch.linalg.solve(A, b)  # the fixed point: dx/dt = A (x − x_eq)
    x0 = x_eq + 2 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    t = dt * torch.arange(L, dtype=torch.float64)
    prop = torch.linalg.matrix_exp(t[:, None, None] * A)  # (L, 3, 3)
    return x_eq + torch.einsum("lij,nj->nli", prop, x0 - x_eq), b


def test_recovers_a_known_linear_field():
    x, b = _linear_data()
    em = NeuralODEEmulator(3, NeuralODEOptions(hidden=[], method="rk4", substeps=4), save_interval=0.1).double()
    em.fit_normalizers(x)
    opt = torch.optim.LBFGS(em.parameters(), lr=1, max_iter=60, tolerance_grad=1e-14, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (em(x[:, :-1]) - x[:, 1:]).square().mean()
        loss.backward()
        return loss

    opt.step(closure)
    J = torch.autograd.functional.jacobian(lambda v: em.vector_field(v), x[0, 0])
    # rk4 with h = 0.025 on |λ| ≈ 2 matches the exact flow map to ~1e-7 per step, so the generator to ~1e-6
    torch.testing.assert_close(J, A, rtol=0, atol=1e-5)
    torch.testing.assert_close(em.vector_field(x[:, 0]), x[:, 0] @ A.T + b, rtol=0, atol=1e-5)


def test_adjoint_gradients_match_backpropagation_through_the_solver():
    torch.manual_seed(0)
    field = MLPVectorField(3, (8,), "tanh", out_scale=1.0).double()
    z0 = torch.randn(5, 3, dtype=torch.float64)
    grads = {}
    for adjoint in (False, True):
        flow = ODEFlow(field, "dopri5", rtol=1e-10, atol=1e-12, adjoint=adjoint)
        field.zero_grad()
        flow(z0, 1.5).square().sum().backward()
        grads[adjoint] = torch.cat([p.grad.reshape(-1) for p in field.parameters()])
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-6, atol=1e-8)
    # and the fixed-step rk4 flow converges to the adaptive one at order 4
    exact = ODEFlow(field, "dopri5", rtol=1e-12, atol=1e-14)(z0, 1.5).detach()
    errs = [float((ODEFlow(field, "rk4", substeps=n)(z0, 1.5).detach() - exact).abs().max()) for n in (4, 8)]
    assert 12 < errs[0] / errs[1] < 20  # 2^4 = 16


@pytest.mark.parametrize("options", [NeuralODEOptions(), NeuralODEOptions(method="euler", substeps=3, hidden=[6]),
                                     NeuralODEOptions(adjoint=True, activation="silu")])
def test_contract(options):
    torch.manual_seed(0)
    x, _ = _linear_data(n=3, L=9)
    em = NeuralODEEmulator(3, options, save_interval=0.1).double().fit_normalizers(x)
    assert_emulator_contract(em, x, atol=1e-12)
    assert em.initial_state(3) is None


def test_bad_options_raise():
    with pytest.raises(ValueError, match="method must be one of .* got 'rk45'"):
        NeuralODEEmulator(3, NeuralODEOptions(method="rk45"))
    with pytest.raises(ValueError, match="hidden widths must be positive integers"):
        NeuralODEEmulator(3, NeuralODEOptions(hidden=[0]))
    with pytest.raises(ValueError, match="activation must be one of .* got 'relu6'"):
        NeuralODEEmulator(3, NeuralODEOptions(activation="relu6"))
    with pytest.raises(ValueError, match="substeps must be a positive integer, got 0"):
        NeuralODEEmulator(3, NeuralODEOptions(substeps=0))
    with pytest.raises(ValueError, match="save_interval must be a finite number > 0"):
        NeuralODEEmulator(3, save_interval=0)


def test_tiny_dynlab_train_on_short_rollouts(tmp_path_factory, tmp_path):
    store = make_store(tmp_path_factory.getbasetemp() / "stores")
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={store}", f"run_dir={run_dir}", "learner=neural_ode", "loss=rollout",
                            "++learner.hidden=[16]", "loss.one_step_steps=1", "loss.horizon.start=2",
                            "loss.horizon.max=2", "data.context=2", "data.stride=8", "train.steps=3",
                            "train.batch_size=4", "train.val_every=3", "train.val_windows=4", "train.warmup=1",
                            "progress=false"])
    result = train(cfg, **QUIET)
    assert result.complete and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir)
    assert isinstance(em, NeuralODEEmulator) and math.isclose(em.save_interval, 0.05)


# -- the lattice option: spatial_encoder=periodic_conv ------------------------------------------------------------
L96 = StateCodec((FieldSpec("X", ("k",), (8,)),))
TWO_SCALE = StateCodec((FieldSpec("X", ("k",), (6,)), FieldSpec("Y", ("k", "j"), (6, 2))))  # C = 3 per site


def _roll_sites(x, shift, codec):
    """Roll flat states ``(..., D)`` by ``shift`` sites along k (every field is on k first)."""
    parts, offset = [], 0
    for f in codec.fields:
        block = x[..., offset:offset + f.size].reshape(*x.shape[:-1], *f.shape)
        parts.append(block.roll(shift, dims=x.ndim - 1).reshape(*x.shape[:-1], f.size))
        offset += f.size
    return torch.cat(parts, -1)


@pytest.mark.parametrize("codec", [L96, TWO_SCALE], ids=["lorenz96", "two_scale"])
def test_periodic_conv_field_is_translation_equivariant_and_local(codec):
    torch.manual_seed(0)
    D = codec.n_features
    x = 2 + 3 * torch.randn(6, 4, D, dtype=torch.float64)
    opts = NeuralODEOptions(hidden=[8, 8], spatial_encoder="periodic_conv", kernel_size=3, out_scale=1.0)
    em = NeuralODEEmulator(codec, opts, save_interval=0.05).double().fit_normalizers(x)
    # pooled statistics: every site of a variable is normalised alike
    assert torch.equal(_roll_sites(em.normalizer.mean, 1, codec), em.normalizer.mean)
    x0 = x[:, 0]
    with torch.no_grad():
        for shift in (1, 2):
            torch.testing.assert_close(em.vector_field(_roll_sites(x0, shift, codec)),
                                       _roll_sites(em.vector_field(x0), shift, codec), rtol=0, atol=1e-12)
            torch.testing.assert_close(em.advance(_roll_sites(x0, shift, codec)),
                                       _roll_sites(em.advance(x0), shift, codec), rtol=0, atol=1e-12)
        assert float((em.advance(x0) - x0).abs().max()) > 1e-2  # not trivially the identity
    # kernel 3: site k of the field depends on sites k-1, k, k+1 only (all channels of each)
    J = torch.autograd.functional.jacobian(em.vector_field, x0[0])  # (D, D)
    K = codec.fields[0].shape[0]
    site = torch.cat([torch.arange(f.size) // (f.size // K) for f in codec.fields])  # C order: site first
    dist = (site[:, None] - site[None, :]).abs()
    dist = torch.minimum(dist, K - dist)
    assert float(J[dist > 1].abs().max()) == 0.0 and float(J[dist <= 1].abs().min()) > 0


def test_periodic_conv_field_learns_lorenz96_from_fewer_samples_than_the_dense_field():
    """The true Lorenz96 field −x_{k−1}(x_{k−2} − x_{k+1}) − x_k + F is the same function of a 4-site window
    at every k, so it lies in the periodic_conv class (kernel 5): from 64 states and equal optimiser steps the
    lattice field generalises far better than the dense MLP (which sees each site's stencil only 64 times)."""
    from simulators import make_system

    f = make_system("lorenz96", K=8).vector_field
    g = torch.Generator().manual_seed(0)
    x_train = 2.3 + 3.6 * torch.randn(64, 8, generator=g, dtype=torch.float64)
    x_test = 2.3 + 3.6 * torch.randn(512, 8, generator=g, dtype=torch.float64)
    errors = {}
    for encoder in (None, "periodic_conv"):
        torch.manual_seed(0)
        em = NeuralODEEmulator(L96, NeuralODEOptions(hidden=[32, 32], spatial_encoder=encoder), 0.05).double()
        em.fit_normalizers(x_train[:, None])
        opt = torch.optim.Adam(em.parameters(), lr=3e-3)
        for _ in range(200):
            loss = (0.05 * (em.vector_field(x_train) - f(None, x_train))).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors[encoder] = float((em.vector_field(x_test) - f(None, x_test)).square().mean()
                                    / f(None, x_test).square().mean())
    assert errors["periodic_conv"] < 0.1 and errors["periodic_conv"] < 0.2 * errors[None], errors


def test_periodic_conv_contract_and_bad_options():
    torch.manual_seed(0)
    x = 2 + 3 * torch.randn(3, 7, TWO_SCALE.n_features, dtype=torch.float64)
    opts = NeuralODEOptions(hidden=[6], spatial_encoder="periodic_conv", method="euler", substeps=2)
    em = NeuralODEEmulator(TWO_SCALE, opts, save_interval=0.1).double().fit_normalizers(x)
    assert_emulator_contract(em, x, atol=1e-12)
    affine = NeuralODEEmulator(L96, NeuralODEOptions(hidden=[], spatial_encoder="periodic_conv", kernel_size=5))
    assert sum(p.numel() for p in affine.parameters()) == 5 + 1  # one kernel over 5 sites and a bias
    with pytest.raises(ValueError, match="spatial_encoder must be one of .* got 'conv'"):
        NeuralODEEmulator(L96, NeuralODEOptions(spatial_encoder="conv"))
    with pytest.raises(ValueError, match="kernel_size must be an odd positive integer, got 4"):
        NeuralODEEmulator(L96, NeuralODEOptions(spatial_encoder="periodic_conv", kernel_size=4))
    with pytest.raises(ValueError, match="needs a StateCodec"):
        NeuralODEEmulator(8, NeuralODEOptions(spatial_encoder="periodic_conv"))
    off_lattice = StateCodec((FieldSpec("X", ("k",), (4,)), FieldSpec("s", ("j",), (2,))))
    with pytest.raises(ValueError, match="variable 's' has dims"):
        NeuralODEEmulator(off_lattice, NeuralODEOptions(spatial_encoder="periodic_conv"))
