"""Hamiltonian neural networks: the learned field is divergence-free, its energy stays bounded along its own
symplectic rollout (and drifts under a non-symplectic one), the mass-spring H is learned from derivatives,
the Emulator contract on a Hamiltonian dataset (derived H recomputed), a tiny `dynlab train`."""
from __future__ import annotations

import math

import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.emulators import StateCodec, build_emulator
from dynlab.emulators.hnn import HNNEmulator, HNNOptions
from dynlab.models.hnn import GeneralHamiltonian, LearnedHamiltonianSystem, SeparableHamiltonian, fit_derivatives
from dynlab.models.neural_ode import MLPVectorField
from dynlab.pipeline.simulate import simulate
from dynlab.pipeline.train import train
from dynlab.testing import assert_emulator_contract
from simulators import make_integrator, make_system

QUIET = {"log": lambda msg: None}


@pytest.fixture(scope="module")
def spring_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("hnn") / "spring.zarr"
    simulate(compose("simulate", ["system=mass_spring", "ensemble.members=8", "time.t_end=4", f"out={out}",
                                  "progress=false"]), log=lambda m: None)
    return out


def _divergence(f, x):
    """∇·f at points x (N, D) by autograd (trace of the Jacobian)."""
    x = x.detach().requires_grad_(True)
    y = f(x)
    div = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        div = div + torch.autograd.grad(y[:, i].sum(), x, create_graph=True)[0][:, i]
    return div


@pytest.mark.parametrize("kind", [SeparableHamiltonian, GeneralHamiltonian])
def test_learned_field_is_divergence_free(kind):
    torch.manual_seed(0)
    H = kind(2, (16, 16)).double()
    x = 2 * torch.randn(64, 4, dtype=torch.float64)
    div = _divergence(H.vector_field, x)
    assert float(div.detach().abs().max()) < 1e-13
    # an unconstrained MLP field of the same size is not: the check can fail
    mlp = MLPVectorField(4, (16, 16), out_scale=1.0).double()
    assert float(_divergence(lambda v: mlp(None, v), x).detach().abs().mean()) > 1e-2


def _spring_derivative_data(n=256, seed=0):
    """States on the disc of radius 1.2 and the exact field of H = q² + p²: (q̇, ṗ) = (2p, −2q)."""
    g = torch.Generator().manual_seed(seed)
    x = 2.4 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 1.2
    return x, torch.stack((2 * x[:, 1], -2 * x[:, 0]), dim=-1)


@pytest.fixture(scope="module")
def trained_spring_hnn():
    torch.manual_seed(0)
    H = SeparableHamiltonian(1, (32,)).double()
    x, dxdt = _spring_derivative_data()
    losses = fit_derivatives(H, x, dxdt, steps=400, lr=1e-2)
    return H, losses


def test_hnn_learns_the_mass_spring_field_from_derivatives(trained_spring_hnn):
    H, losses = trained_spring_hnn
    assert losses[-1] < 1e-3 * losses[0]
    x, dxdt = _spring_derivative_data(seed=1)  # held-out states
    assert float((H.vector_field(x) - dxdt).detach().square().mean()) < 1e-3
    # the learned energy is q² + p² up to a constant
    with torch.no_grad():
        e = H.hamiltonian(x[:, :1], x[:, 1:])
    true = x.square().sum(-1)
    assert float(((e - e.mean()) - (true - true.mean())).abs().max()) < 0.05


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4", "implicit_midpoint"])
def test_energy_along_its_own_symplectic_rollout_stays_bounded(trained_spring_hnn, integrator):
    H, _ = trained_spring_hnn
    system = LearnedHamiltonianSystem(H)
    method = make_integrator(integrator)
    method.check_system(system)
    x = torch.tensor([[0.8, 0.0], [0.0, 0.4]], dtype=torch.float64)
    energies = [system.energy(x).detach()]
    with torch.no_grad():
        for _ in range(200):  # h = 0.1: about 6 periods of ω ≈ 2
            x = method.step(system, 0.0, x, 0.1)
            energies.append(system.energy(x))
    e = torch.stack(energies)  # (T, 2)
    dev = (e - e[0]).abs()
    first, second = dev[:100].max(0).values, dev[100:].max(0).values
    assert float(dev.max()) < 5e-3 * float(e[0].abs().max() + 1)  # bounded and small (O(h²) for leapfrog)
    assert bool((second < 1.5 * first + 1e-9).all())  # no secular growth
    # the same field under explicit Euler (not symplectic) gains energy every period
    x = torch.tensor([[0.8, 0.0], [0.0, 0.4]], dtype=torch.float64)
    with torch.no_grad():
        for _ in range(200):
            x = x + 0.1 * H.vector_field(x)
    assert float((system.energy(x).detach() - e[0]).abs().min()) > 10 * float(dev.max())


def test_separable_integrators_refuse_a_general_hamiltonian():
    with pytest.raises(ValueError, match="hamiltonian='general' rolls out with \\['implicit_midpoint'\\]"):
        HNNEmulator(2, HNNOptions(hamiltonian="general", integrator="leapfrog"))
    with pytest.raises(ValueError, match="separable"):
        make_integrator("yoshida4").check_system(LearnedHamiltonianSystem(GeneralHamiltonian(1)))
    with pytest.raises(ValueError, match="even number of features"):
        HNNEmulator(3)


@pytest.mark.parametrize("options", [{}, {"integrator": "yoshida4", "substeps": 1},
                                     {"hamiltonian": "general", "hidden": [8]}])
def test_contract_on_a_hamiltonian_dataset(spring_store, options):
    ds = dynlab.open_dataset(spring_store)
    codec = StateCodec.from_dataset(ds)
    assert sorted(codec.names) == ["H", "p", "q"]  # in the store's order
    x = torch.as_tensor(codec.encode(ds))  # (8, T, 3)
    iq, ip, iH = (codec.names.index(n) for n in ("q", "p", "H"))
    system = make_system("mass_spring")
    torch.manual_seed(0)
    em = build_emulator({"name": "hnn", "hidden": [16], **options}, codec, x[:4], dt=0.1, system=system).double()
    assert_emulator_contract(em, x[4:, :10], atol=1e-10)
    y = em(x[4:, :10])
    # the derived feature is the true energy of the predicted (q, p)
    torch.testing.assert_close(y[..., iH], system.energy(y[..., [iq, ip]]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"also holds \['H'\], which need the true system"):
        build_emulator({"name": "hnn"}, codec, x[:4], dt=0.1)
    with pytest.raises(ValueError, match="needs a codec variable 'x'"):
        build_emulator({"name": "hnn", "q_variable": "x"}, codec, x[:4], dt=0.1, system=system)


def test_emulator_energy_is_in_physical_units(spring_store):
    """Scaling (q, p) by (s_q, s_p) and time by Δ multiplies H by Δ/(s_q s_p); energy() undoes it, so
    the physical field equals (∂E/∂p, −∂E/∂q) of the physical energy."""
    ds = dynlab.open_dataset(spring_store)
    codec = StateCodec.from_dataset(ds, ["q", "p"])
    x = torch.as_tensor(codec.encode(ds))
    torch.manual_seed(0)
    em = HNNEmulator(codec, HNNOptions(hidden=[8]), save_interval=0.1).double().fit_normalizers(x)
    pts = x[:, :5].reshape(-1, 2).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(em.energy(pts).sum(), pts)
    torch.testing.assert_close(em.vector_field(pts), torch.stack((grad[:, 1], -grad[:, 0]), -1), rtol=1e-10,
                               atol=1e-12)


def test_tiny_dynlab_train(spring_store, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={spring_store}", f"run_dir={run_dir}", "learner=hnn",
                            "learner.hidden=[16]", "data.context=2", "data.stride=4", "train.steps=3",
                            "train.batch_size=4", "train.val_every=3", "train.val_windows=4", "train.warmup=1",
                            "progress=false", "train.dtype=float64"])
    result = train(cfg, **QUIET)
    assert result.complete and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir)
    # role-aware training: H is a diagnostic of the store, so by default only q and p are learned
    assert isinstance(em, HNNEmulator) and em.extra == []


@pytest.mark.gpu
def test_trains_on_cuda_with_amp(spring_store, tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose("train", [f"data.store={spring_store}", f"run_dir={run_dir}", "learner=hnn", "device=cuda",
                            "train.amp=true", "data.context=2", "data.stride=4", "train.steps=4",
                            "train.batch_size=4", "train.val_every=2", "train.val_windows=4", "train.warmup=1",
                            "progress=false"])
    result = train(cfg, **QUIET)
    assert result.complete and all(math.isfinite(v) for v in result.losses)
    em = dynlab.load_emulator(run_dir, device="cuda")
    assert next(em.parameters()).is_cuda
