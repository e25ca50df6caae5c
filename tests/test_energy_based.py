"""Energy-based predictor: descent on a known quadratic (rate and stability bound), best-of-N with a true
energy, training through the unrolled descent, the Emulator contract, and a tiny `dynlab train`."""
from __future__ import annotations

import math

import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.emulators import FieldSpec, StateCodec, build_emulator
from dynlab.emulators.energy import EnergyBasedEmulator, EnergyBasedOptions
from dynlab.models.energy import EnergyHead, ReplayBuffer, best_of_n, descend
from dynlab.pipeline.train import train
from dynlab.testing import assert_emulator_contract
from test_trainer_support import make_store

QUIET = {"log": lambda msg: None}


@pytest.fixture(scope="module")
def l96(tmp_path_factory):
    return make_store(tmp_path_factory.getbasetemp() / "stores")


@pytest.fixture(scope="module")
def l96_data(l96):
    ds = dynlab.open_dataset(l96)
    codec = StateCodec.from_dataset(ds)
    return codec, torch.as_tensor(codec.encode(ds))  # (10, T, 8) float64


def _quadratic(eigenvalues, seed=0):
    """E(u) = ½ (u − u*)ᵀ A (u − u*) with A = Q diag(λ) Qᵀ; returns (energy, A, u*, Q)."""
    g = torch.Generator().manual_seed(seed)
    D = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    A = Q @ torch.diag(lam) @ Q.T
    u_star = torch.randn(D, generator=g, dtype=torch.float64)

    def energy(u):
        d = u - u_star
        return 0.5 * ((d @ A) * d).sum(-1)

    return energy, lam, u_star, Q


def test_descent_on_a_quadratic_contracts_each_mode_by_one_minus_alpha_lambda():
    eig = [0.5, 1.0, 2.0, 4.0]  # L_max = 4: stable iff alpha < 0.5
    energy, lam, u_star, Q = _quadratic(eig)
    u0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    for alpha, K in ((0.1, 7), (0.3, 5)):
        uK = descend(energy, u0, K, alpha)
        # in the eigenbasis the error of mode i is multiplied by (1 − α λ_i) every step, exactly
        expected = ((u0 - u_star) @ Q) * (1 - alpha * lam) ** K
        torch.testing.assert_close((uK - u_star) @ Q, expected, rtol=1e-12, atol=1e-13)
    # the energy falls monotonically for alpha < 2/L_max ...
    _, path = descend(energy, u0, 30, 0.45, return_path=True)
    assert bool((path[1:] <= path[:-1] + 1e-15).all()) and float(path[-1].max()) < 1e-3 * float(path[0].min())
    # ... and past 2/L_max the stiffest mode grows by |1 − α L_max| per step: divergence
    err0 = (u0 - u_star).norm(dim=-1)
    err = (descend(energy, u0, 30, 0.55) - u_star).norm(dim=-1)
    assert bool((err > 10 * err0).all())
    stiff = ((descend(energy, u0, 30, 0.55) - u_star) @ Q)[:, -1]
    torch.testing.assert_close(stiff, ((u0 - u_star) @ Q)[:, -1] * (1 - 0.55 * 4.0) ** 30, rtol=1e-9, atol=0)


def test_descent_keeps_the_graph_when_training_and_validates_inputs():
    energy, *_ = _quadratic([1.0, 2.0])
    alpha = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    u0 = torch.zeros(2, 2, dtype=torch.float64)
    uK = descend(energy, u0, 3, alpha)
    (g,) = torch.autograd.grad(uK.sum(), alpha)  # d u_K / d alpha through the unrolled steps
    assert torch.isfinite(g) and float(g.abs()) > 0
    with torch.no_grad():
        assert not descend(energy, u0, 3, alpha).requires_grad
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -1"):
        descend(energy, u0, -1, 0.1)
    with pytest.raises(ValueError, match=r"u0 must have shape \(N, D\)"):
        descend(energy, u0[0], 1, 0.1)
    with pytest.raises(ValueError, match="step_size must be a finite number >= 0, got nan"):
        descend(energy, u0, 1, float("nan"))


def test_best_of_n_with_the_true_energy_finds_the_global_minimum_more_often_as_n_grows():
    """A tilted double well E(u) = (u² − 1)² + 0.3 u: the global minimum is near u = −1.04, a local one near
    +0.96. A single start lands in the left well only about half the time; the lowest-energy of N does better."""
    def energy(u):
        return ((u.square() - 1).square() + 0.3 * u).sum(-1)

    g = torch.Generator().manual_seed(0)
    B = 2000
    hits = {}
    for N in (1, 2, 4, 8):
        starts = 3.6 * torch.rand(N, B, 1, generator=g, dtype=torch.float64) - 1.8
        with torch.no_grad():
            chosen, e = best_of_n(energy, starts, 60, 0.05)
        hits[N] = float((chosen[:, 0] < 0).double().mean())
        assert torch.allclose(e, energy(chosen))
    assert hits[1] < hits[2] < hits[4] < hits[8]
    assert hits[1] < 0.7 and hits[8] > 0.97
    # with N independent starts the chance of no start in the left basin is (1 − p)^N
    p = hits[1]
    assert abs(hits[4] - (1 - (1 - p) ** 4)) < 0.04


def test_replay_buffer_ring_and_mix():
    buf = ReplayBuffer(4, 2)
    u0 = torch.zeros(6, 2)
    assert buf.mix(u0, 1.0) is u0  # empty: nothing to draw
    buf.push(torch.arange(12.0).reshape(6, 2))  # keeps the last 4 rows
    assert buf.count == 4 and sorted(buf.items[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0]
    mixed = buf.mix(u0, 1.0, torch.Generator().manual_seed(0))
    assert set(mixed[:, 0].tolist()) <= {4.0, 6.0, 8.0, 10.0}
    with pytest.raises(ValueError, match="fraction must be in"):
        buf.mix(u0, 1.5)


def _toy_sequences(n, L, seed):
    """x_{t+1} = R x_t + 0.1 sin(x_t) with a rotation R (a smooth nonlinear map in 3-D)."""
    g = torch.Generator().manual_seed(seed)
    th = 0.3
    R = torch.tensor([[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 0.9]],
                     dtype=torch.float64)
    x = [torch.randn(n, 3, generator=g, dtype=torch.float64)]
    for _ in range(L - 1):
        x.append(x[-1] @ R.T + 0.1 * torch.sin(x[-1]) + torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64))
    return torch.stack(x, 1)


def _one_step_error(em, x):
    with torch.no_grad():
        return float((em(x[:, :-1]) - x[:, 1:]).square().mean())


def test_training_through_the_unrolled_descent_lowers_held_out_error():
    torch.manual_seed(0)
    train_x, test_x = _toy_sequences(32, 12, 0), _toy_sequences(16, 12, 1)
    opts = EnergyBasedOptions(d_model=8, n_layers=1, energy_width=16, energy_depth=1, train_steps_min=1,
                              train_steps_max=3, langevin_noise=0.01, replay_capacity=64, replay_fraction=0.1)
    em = EnergyBasedEmulator(3, opts).double().fit_normalizers(train_x)
    before = _one_step_error(em.eval(), test_x)
    opt = torch.optim.Adam(em.parameters(), lr=1e-2)
    em.train()
    for _ in range(80):
        loss = (em(train_x[:, :-1]) - train_x[:, 1:]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    em.eval()
    after = _one_step_error(em, test_x)
    assert after < 0.1 * before, (before, after)
    # the prediction is made by the descent: without its steps the model is back to persistence
    no_descent = _one_step_error(em.set_inference(steps=0), test_x)
    assert no_descent > 5 * after
    assert em.replay.count == 64


def test_contract_and_inference_knobs(l96_data):
    codec, x = l96_data
    torch.manual_seed(0)
    cfg = {"name": "energy_based", "d_model": 8, "n_layers": 1, "energy_width": 16, "init": "learned",
           "candidates": 3, "infer_steps": 4}
    em = build_emulator(cfg, codec, x[:6]).double().eval()
    assert em.trainable and em.candidates == 3 and em.infer_steps == 4
    assert_emulator_contract(em, x[6:, :10], atol=1e-9)
    em.set_inference(steps=2, candidates=1)
    assert_emulator_contract(em, x[6:, :10], atol=1e-9)
    pred, energy = em.predict_with_energy(x[6:, :10])
    assert pred.shape == x[6:, :10].shape and energy.shape == (4, 10) and torch.isfinite(energy).all()
    # best-of-N never ends at a higher energy than the plain start (which is candidate 0)
    e1 = em.set_inference(candidates=1).predict_with_energy(x[6:, :10])[1]
    e5 = em.set_inference(candidates=5).predict_with_energy(x[6:, :10])[1]
    assert bool((e5 <= e1 + 1e-12).all())


def test_physics_term_pulls_toward_the_true_step(l96_data):
    """With a huge physics weight and no learned energy, the descent lands on the cheap integrator's step."""
    from simulators import make_system

    codec, x = l96_data
    cfg = {"name": "energy_based", "d_model": 4, "n_layers": 1, "energy_width": 4, "confine": 0.0,
           "physics_weight": 8.0 * 8, "physics_integrator": "rk4", "step_size": 0.125, "infer_steps": 1}
    em = build_emulator(cfg, codec, x[:6], dt=0.05, system=make_system("lorenz96", K=8)).double().eval()
    with torch.no_grad():
        for p in em.energy_head.net[-1].parameters():
            p.zero_()  # the learned energy is flat: only the physics term is left
        em.log_step_size.fill_(math.log(0.125))
    # E = (w/2D)|u − u_phys|² = 4|u − u_phys|²: one step of α = 1/8 lands exactly on u_phys
    pred = em(x[6:, :5])
    torch.testing.assert_close(pred, em.physics(x[6:, :5]), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="physics_weight > 0 needs the system and dt"):
        build_emulator(cfg, codec, x[:6])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="train_steps_min=4 must be <= train_steps_max=2"):
        EnergyBasedEmulator(3, EnergyBasedOptions(train_steps_min=4, train_steps_max=2))
    with pytest.raises(ValueError, match="init must be one of .* got 'zero'"):
        EnergyBasedEmulator(3, EnergyBasedOptions(init="zero"))
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        EnergyBasedEmulator(3, EnergyBasedOptions(step_size=0.0))
    with pytest.raises(ValueError, match="unknown option.*'?bogus'?.* for learner 'energy_based'"):
        build_emulator({"name": "energy_based", "bogus": 1}, StateCodec((FieldSpec("x", ("k",), (3,)),)), None)
    with pytest.raises(ValueError, match="candidates must be an integer >= 1, got 0"):
        EnergyBasedEmulator(3).set_inference(candidates=0)
    with pytest.raises(ValueError, match=r"h must be \(N, d_context\)"):
        EnergyHead(4, 3)(torch.zeros(2, 4), torch.zeros(2, 2))


def test_tiny_dynlab_train_and_restore(l96, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={l96}", f"run_dir={run_dir}", "learner=energy_based",
                            "++learner.d_model=8", "++learner.n_layers=1", "++learner.energy_width=16",
                            "data.context=4", "data.stride=8", "train.steps=4", "train.batch_size=4",
                            "train.val_every=2", "train.val_windows=4", "train.warmup=1", "progress=false",
                            "train.dtype=float64"])
    result = train(cfg, **QUIET)
    assert result.complete and len(result.losses) == 4 and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir)
    assert isinstance(em, EnergyBasedEmulator) and not em.training
    x = torch.randn(2, 5, 8, dtype=torch.float64) * 3 + 2
    assert torch.isfinite(em(x)).all()


# -- the lattice option: spatial_encoder=periodic_conv ------------------------------------------------------------
def _roll_sites(x, shift):
    """Roll Lorenz96 states ``(..., K)`` by ``shift`` sites."""
    return x.roll(shift, dims=-1)


def grad_at(head, h, u):
    """∇_u E(h, u) per row."""
    u = u.detach().requires_grad_(True)
    return torch.autograd.grad(head(h, u).sum(), u)[0]


def test_periodic_energy_is_a_sum_of_local_per_site_terms():
    """Rolling h and u over the sites leaves E unchanged and rolls ∇_u E; with kernel 3 (r = 1) the gradient at
    site k depends on u only within 2r = 2 sites, so perturbing one site moves the gradient at 5 of 8 sites."""
    from dynlab.models.energy import PeriodicEnergyHead

    torch.manual_seed(0)
    head = PeriodicEnergyHead(4, 2, width=8, depth=2, confine=0.0, kernel_size=3).double()
    h = torch.randn(3, 4, 8, dtype=torch.float64)
    u = torch.randn(3, 2, 8, dtype=torch.float64)
    for shift in (1, 3):
        h_r, u_r = h.roll(shift, -1), u.roll(shift, -1)
        torch.testing.assert_close(head(h_r, u_r), head(h, u), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_at(head, h_r, u_r), grad_at(head, h, u).roll(shift, -1), rtol=1e-10,
                                   atol=1e-12)
    bump = u.clone()
    bump[:, 1, 0] += 0.5  # channel 1 of site 0
    moved = (grad_at(head, h, bump) - grad_at(head, h, u)).abs().amax(dim=(0, 1))  # (K,)
    near = torch.tensor([1, 1, 1, 0, 0, 0, 1, 1], dtype=torch.bool)  # sites 6, 7, 0, 1, 2
    assert float(moved[~near].max()) == 0.0 and float(moved[near].min()) > 0
    with pytest.raises(ValueError, match=r"h must be \(N, 4, K\) and u \(N, 2, K\)"):
        head(h, u[:, :1])


@pytest.mark.parametrize("init", ["persistence", "learned"])
def test_periodic_conv_contract_and_translation_equivariance(l96_data, init):
    codec, x = l96_data
    torch.manual_seed(0)
    cfg = {"name": "energy_based", "d_model": 8, "n_layers": 1, "energy_width": 16, "init": init,
           "infer_steps": 3, "spatial_encoder": "periodic_conv", "kernel_size": 3}
    em = build_emulator(cfg, codec, x[:6]).double().eval()
    assert em.layout.n_sites == 8 and em.layout.n_channels == 1
    # pooled statistics: every site alike
    assert torch.equal(em.normalizer.mean.roll(1), em.normalizer.mean)
    assert torch.equal(em.increment_normalizer.std.roll(1), em.increment_normalizer.std)
    windows = x[6:, :10]
    assert_emulator_contract(em, windows, atol=1e-9)
    em.set_inference(candidates=3)
    assert_emulator_contract(em, windows, atol=1e-9)
    em.set_inference(candidates=1)
    with torch.no_grad():
        pred, energy = em.predict_with_energy(windows)
        for shift in (1, 4):
            pred_r, energy_r = em.predict_with_energy(_roll_sites(windows, shift))
            torch.testing.assert_close(pred_r, _roll_sites(pred, shift), rtol=0, atol=1e-10)
            torch.testing.assert_close(energy_r, energy, rtol=1e-10, atol=1e-10)
        assert float((pred - windows).abs().max()) > 1e-3  # the descent moved the candidates
    # training mode (K drawn, jitter, noise, replay) runs and back-propagates through the per-site descent
    em.train()
    em(windows).square().mean().backward()
    assert em.encoder.conv.weight.grad is not None and torch.isfinite(em.energy_head.window.conv.weight.grad).all()


def test_periodic_conv_bad_options_and_dynlab_train(l96, tmp_path):
    with pytest.raises(ValueError, match="spatial_encoder must be one of .* got 'conv'"):
        EnergyBasedEmulator(StateCodec((FieldSpec("X", ("k",), (8,)),)), EnergyBasedOptions(spatial_encoder="conv"))
    with pytest.raises(ValueError, match="kernel_size must be an odd positive integer, got 2"):
        EnergyBasedEmulator(StateCodec((FieldSpec("X", ("k",), (8,)),)),
                            EnergyBasedOptions(spatial_encoder="periodic_conv", kernel_size=2))
    with pytest.raises(ValueError, match="needs a StateCodec"):
        EnergyBasedEmulator(8, EnergyBasedOptions(spatial_encoder="periodic_conv"))
    with pytest.raises(ValueError, match="variable 'X' has dims"):
        EnergyBasedEmulator(StateCodec((FieldSpec("X", ("j",), (8,)),)),
                            EnergyBasedOptions(spatial_encoder="periodic_conv"))
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={l96}", f"run_dir={run_dir}", "learner=energy_based",
                            "++learner.d_model=8", "++learner.n_layers=1", "++learner.energy_width=16",
                            "learner.spatial_encoder=periodic_conv", "learner.kernel_size=3",
                            "data.context=4", "data.stride=8", "train.steps=3", "train.batch_size=4",
                            "train.val_every=3", "train.val_windows=4", "train.warmup=1", "progress=false",
                            "train.dtype=float64"])
    result = train(cfg, **QUIET)
    assert result.complete and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir)
    assert isinstance(em, EnergyBasedEmulator) and em.options.spatial_encoder == "periodic_conv"
    x = torch.randn(2, 5, 8, dtype=torch.float64) * 3 + 2
    torch.testing.assert_close(em(_roll_sites(x, 2)), _roll_sites(em(x), 2), rtol=0, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("learner", ["energy_based", "neural_ode"])
def test_trains_on_cuda_with_amp(l96, tmp_path, learner):
    """`dynlab train device=cuda train.amp=true`: the backbone runs in bfloat16, the descent / ODE solve in
    float32 (no_autocast); losses stay finite and the restored model predicts on the GPU."""
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={l96}", f"run_dir={run_dir}", f"learner={learner}", "device=cuda",
                            "train.amp=true", "train.amp_dtype=bfloat16", "data.context=4", "data.stride=8",
                            "train.steps=6", "train.batch_size=4", "train.val_every=3", "train.val_windows=4",
                            "train.warmup=1", "progress=false"])
    result = train(cfg, **QUIET)
    assert result.complete and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir, device="cuda")
    x = torch.randn(2, 5, 8, device="cuda") * 3 + 2
    assert torch.isfinite(em.rollout(x, 4)).all()
