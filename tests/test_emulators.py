"""Emulators: the contract on every emulator, the reference reproduces stored data, the linear
baseline recovers a known map, the registry builds every learner config and restores checkpoints."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dynlab
from dynlab.config import compose, config_dir
from dynlab.emulators import (LEARNERS, HiPPOEmulator, LinearOneStep, Persistence, ReferenceEmulator, SSMEmulator,
                              StateCodec, build_emulator, is_trainable)
from dynlab.emulators.reference import codec_state_permutation
from dynlab.emulators.ssm import periodic_site_index
from dynlab.pipeline.simulate import simulate
from dynlab.testing import assert_emulator_contract
from simulators import make_integrator, make_system

K = 8


@pytest.fixture(scope="module")
def l96(tmp_path_factory):
    """A tiny float64 Lorenz96 dataset written by `dynlab simulate` (rk4, dt=0.01, saved every 0.05)."""
    out = tmp_path_factory.mktemp("emu") / "l96.zarr"
    simulate(compose("simulate", [f"out={out}", "system.K=8", "ensemble.members=4", "time.t_end=3",
                                  "time.spinup=2", "progress=false"]), log=lambda m: None)
    return dynlab.open_dataset(out)


@pytest.fixture(scope="module")
def l96_data(l96):
    codec = StateCodec.from_dataset(l96)
    return codec, torch.as_tensor(codec.encode(l96))  # (4, 61, 8) float64


class ToyBackbone(nn.Module):
    """A stand-in with the SSMBackbone interface: h_t = a ⊙ h_{t−1} + W x_t, y_t = tanh(h_t) + x_t.
    It mixes over time, so a wrong (batch, site, time) layout in the emulator breaks the agreement test."""

    def __init__(self, d_model, n_layers, block="s4d", **kwargs):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(0.2, 0.9, d_model))
        self.W = nn.Linear(d_model, d_model)

    def default_state(self, batch, device=None, dtype=None):
        return torch.zeros(batch, self.a.numel(), device=device, dtype=dtype or self.a.dtype)

    def step(self, x_t, state):
        h = self.a * state + self.W(x_t)
        return torch.tanh(h) + x_t, h

    def forward(self, x, state=None):
        h = self.default_state(x.shape[0], x.device, x.dtype) if state is None else state
        ys = []
        for t in range(x.shape[1]):
            y, h = self.step(x[:, t], h)
            ys.append(y)
        return torch.stack(ys, 1), h


@pytest.fixture
def toy_backbone(monkeypatch):
    import dynlab.models.ssm as ssm

    monkeypatch.setitem(vars(ssm), "SSMBackbone", ToyBackbone)  # (setattr would import the real one first)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


# --- the contract on every emulator -----------------------------------------------------------

def test_contract_persistence_linear_hippo(l96_data):
    codec, x = l96_data
    for em in (Persistence(K), LinearOneStep(K, ridge=1e-3).fit(x[:2]),
               HiPPOEmulator(K, dt=0.05, N=6, theta_steps=6), HiPPOEmulator(K, dt=0.05, measure="legs", N=4)):
        em = em.double()
        assert_emulator_contract(em, x[2:, :20], atol=1e-8)
        assert em.rollout(x[2:, :5], 7).dtype == torch.float64
    assert torch.equal(Persistence(K)(x), x)


def test_contract_reference(l96_data, l96):
    codec, x = l96_data
    assert_emulator_contract(ReferenceEmulator.from_dataset(l96), x[:, :12], atol=1e-12)


@pytest.mark.parametrize("encoder", [None, "periodic_conv"])
def test_contract_ssm_emulator_wiring(l96_data, toy_backbone, encoder):
    codec, x = l96_data
    em = SSMEmulator(codec, d_model=6, n_layers=1, spatial_encoder=encoder, kernel_size=3).double()
    em.fit_normalizers(x[:2])
    _randomise(em)
    assert_emulator_contract(em, x[2:, :15], atol=1e-10)
    # the increment is what the network predicts: with a zero decoder the model is x_t + mean increment
    with torch.no_grad():
        for p in em.decoder.parameters():
            p.zero_()
    y = em(x[2:, :5])
    torch.testing.assert_close(y, x[2:, :5] + em.increment_normalizer.mean.double(), rtol=0, atol=1e-12)


def test_periodic_encoder_is_translation_equivariant(l96_data, toy_backbone):
    """Rolling the sites of the input rolls the prediction: the same model at every site k."""
    codec, x = l96_data
    em = SSMEmulator(codec, d_model=5, n_layers=1, spatial_encoder="periodic_conv", kernel_size=3).double()
    em.fit_normalizers(x[:2])
    _randomise(em, seed=1)
    with torch.no_grad():
        y = em(x[2:, :10])
        y_rolled = em(torch.roll(x[2:, :10], 3, dims=-1))
    torch.testing.assert_close(y_rolled, torch.roll(y, 3, dims=-1), rtol=0, atol=1e-12)
    # pooled statistics: one mean/std for all sites
    assert torch.allclose(em.normalizer.mean, em.normalizer.mean[0].expand(K))


def test_periodic_site_index_two_fields():
    from dynlab.emulators.codec import FieldSpec

    codec = StateCodec((FieldSpec("X", ("k",), (3,)), FieldSpec("Y", ("k", "j"), (3, 2))))
    idx = periodic_site_index(codec)
    assert idx.tolist() == [[0, 3, 4], [1, 5, 6], [2, 7, 8]]  # site k: X[k], Y[k, 0], Y[k, 1]
    bad = StateCodec((FieldSpec("x", (), ()),))
    with pytest.raises(ValueError, match="'x'"):
        periodic_site_index(bad)


@pytest.mark.parametrize("block", ["s4d", "mamba"])
@pytest.mark.parametrize("encoder", [None, "periodic_conv"])
def test_contract_ssm_emulator_real_backbone(l96_data, block, encoder):
    """With the real SSM layers."""
    codec, x = l96_data
    torch.manual_seed(0)
    em = build_emulator({"name": block, "d_model": 8, "n_layers": 2, "spatial_encoder": encoder, "kernel_size": 3},
                        codec, x[:2]).double()
    with torch.no_grad():
        for p in em.decoder.parameters():
            p.mul_(10.0)  # undo the small decoder init so the check is not trivially tight
    assert_emulator_contract(em, x[2:, :12], atol=1e-8)


# --- the reference reproduces the stored data -----------------------------------------------

def test_reference_reproduces_stored_states(l96_data, l96):
    codec, x = l96_data
    ref = ReferenceEmulator.from_dataset(l96)
    assert (ref.dt, ref.steps_per_save, ref.save_interval) == (0.01, 5, pytest.approx(0.05))
    one_step = ref(x[:, :-1])
    assert float((one_step - x[:, 1:]).abs().max()) == 0.0  # same integrator from a stored state: bit for bit
    forecast = ref.rollout(x[:, :3], x.shape[1] - 3)
    assert float((forecast - x[:, 3:]).abs().max()) <= 1e-12
    assert not is_trainable(ref) and list(ref.parameters()) == []


def test_reference_codec_permutation_two_scale():
    system = make_system("lorenz96_two_scale", K=4, J=3)
    from dynlab.emulators.codec import FieldSpec

    # Y before X in the codec: the permutation must put the ring back in place
    codec = StateCodec((FieldSpec("Y", ("k", "j"), (4, 3)), FieldSpec("X", ("k",), (4,))))
    perm = codec_state_permutation(system, codec)
    assert perm.tolist() == list(range(4, 16)) + list(range(4))
    ref = ReferenceEmulator(system, "rk4", 0.005, 2, codec).double()
    state = torch.randn(2, 16, dtype=torch.float64)
    flat = ref.to_flat(state)
    assert torch.equal(ref.to_state(flat), state)
    expected = make_integrator("rk4").integrate(system, state, t0=0.0, dt=0.005, n_steps=2, save_every=2)[-1]
    torch.testing.assert_close(ref.step(flat, None)[0], ref.to_flat(expected), rtol=0, atol=0)
    with pytest.raises(ValueError, match="whole state"):
        ReferenceEmulator(system, "rk4", 0.005, 2, StateCodec((FieldSpec("X", ("k",), (4,)),)))


# --- the linear baseline ----------------------------------------------------------------------

def test_linear_recovers_known_affine_map():
    g = torch.Generator().manual_seed(0)
    D = 5
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    W = Q @ torch.diag(torch.linspace(0.5, 0.97, D, dtype=torch.float64)) @ Q.T
    b = torch.randn(D, generator=g, dtype=torch.float64)
    x = [torch.randn(6, D, generator=g, dtype=torch.float64) * 3]
    for _ in range(25):
        x.append(x[-1] @ W.T + b)
    x = torch.stack(x, dim=1)  # (6, 26, D)
    em = LinearOneStep(D).fit(x)
    torch.testing.assert_close(em.weight, W, rtol=0, atol=1e-9)
    torch.testing.assert_close(em.bias, b, rtol=0, atol=1e-9)
    torch.testing.assert_close(em(x[:, :-1]), x[:, 1:], rtol=0, atol=1e-9)


def test_linear_ridge_shrinks_toward_persistence(l96_data):
    codec, x = l96_data
    free = LinearOneStep(K).fit(x)
    heavy = LinearOneStep(K, ridge=1e6).fit(x)
    eye = torch.eye(K, dtype=torch.float64)
    assert float((heavy.weight - eye).abs().max()) < 1e-4 < float((free.weight - eye).abs().max())
    # on Lorenz96 the least-squares map beats persistence in-sample
    err = lambda em: float(((em(x[:, :-1]) - x[:, 1:]) ** 2).mean())  # noqa: E731
    assert err(free) < err(Persistence(K))


# --- bad inputs -------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors_naming_the_value(l96_data):
    codec, x = l96_data
    with pytest.raises(ValueError, match=r"\(B, L, 8\), got \(3, 8\)"):
        Persistence(K)(x[0, :3])
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 8\), got \(2, 7\)"):
        LinearOneStep(K).step(x[:2, 0, :7], None)
    with pytest.raises(ValueError, match="ridge must be .* got -1"):
        LinearOneStep(K, ridge=-1)
    with pytest.raises(ValueError, match=r"L >= 2"):
        LinearOneStep(K).fit(x[:, :1])
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        Persistence(K).rollout(x[:, :3], 0)
    with pytest.raises(ValueError, match="spatial_encoder must be one of .* got 'fft'"):
        SSMEmulator(codec, spatial_encoder="fft")
    with pytest.raises(ValueError, match="kernel_size must be an odd positive integer, got 4"):
        SSMEmulator(codec, kernel_size=4)
    with pytest.raises(ValueError, match="dt must be a finite number > 0 .* got 0"):
        HiPPOEmulator(K, dt=0)
    with pytest.raises(ValueError, match="steps_per_save must be a positive integer, got 0"):
        ReferenceEmulator(make_system("lorenz96", K=K), "rk4", 0.01, 0, codec)


# --- the registry -----------------------------------------------------------------------------

def test_registry_unknown_learner_and_options(l96_data):
    codec, x = l96_data
    with pytest.raises(ValueError, match="unknown learner 'transformer'; known learners: .*hippo.*linear.*persistence"):
        build_emulator({"name": "transformer"}, codec, None)
    with pytest.raises(ValueError, match="unknown option.*'?lr'?.* for learner 'linear'"):
        build_emulator({"name": "linear", "lr": 0.1}, codec, None)
    with pytest.raises(ValueError, match="needs dt"):
        build_emulator({"name": "hippo"}, codec, None)
    with pytest.raises(ValueError, match=r"train_data must have shape \(N, L >= 2, 8\), got \(4, 8\)"):
        build_emulator({"name": "linear"}, codec, x[:, 0])
    with pytest.raises(ValueError, match="trainable=True"):
        build_emulator({"name": "persistence", "trainable": True}, codec, None)


def test_registry_trainable_flags():
    assert {n: s.trainable for n, s in LEARNERS.items()} == {
        "persistence": False, "linear": False, "hippo": False, "reference": False, "s4d": True, "mamba": True,
        "climatology": False, "damped_persistence": False, "polynomial": False, "euler": False, "heun": False,
        "rk4": False, "imperfect": False, "energy_based": True, "neural_ode": True, "hnn": True}


@pytest.mark.parametrize("name", ["persistence", "linear", "hippo"])
def test_learner_configs_build_and_restore_from_state_dict(l96_data, name):
    """configs/learner/<name>.yaml builds; the checkpoint recipe (rebuild with train_data=None,
    load_state_dict) restores every fitted number."""
    from omegaconf import OmegaConf

    codec, x = l96_data
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "learner" / f"{name}.yaml"))
    em = build_emulator(cfg, codec, x[:2], dt=0.05)
    assert em.trainable is cfg["trainable"] and em.learner_name == name and em.codec is codec
    rebuilt = build_emulator(cfg, StateCodec.from_dict(codec.to_dict()), None, dt=0.05)
    rebuilt.load_state_dict(em.state_dict())
    torch.testing.assert_close(rebuilt(x[2:]), em(x[2:]), rtol=0, atol=0)


def test_ssm_state_dict_restores_normalisers(l96_data, toy_backbone):
    codec, x = l96_data
    cfg = {"name": "s4d", "d_model": 4, "n_layers": 1, "spatial_encoder": "periodic_conv", "kernel_size": 3}
    em = build_emulator(cfg, codec, x[:2]).double()
    assert em.trainable and float(em.increment_normalizer.std[0]) != 1.0
    rebuilt = build_emulator(cfg, codec, None).double()
    rebuilt.load_state_dict(em.state_dict())
    torch.testing.assert_close(rebuilt(x[2:]), em(x[2:]), rtol=0, atol=0)


def test_every_learner_config_is_known():
    names = sorted(p.stem for p in (config_dir() / "learner").glob("*.yaml"))
    assert set(names) >= {"s4d", "mamba", "hippo", "persistence", "linear"}
    assert set(names) <= set(LEARNERS)


def test_reference_learner_through_registry(l96_data, l96):
    codec, x = l96_data
    em = build_emulator({"name": "reference", "steps_per_save": 5}, codec, None, dt=0.05,
                        system=make_system("lorenz96", K=K))
    assert math.isclose(em.dt, 0.01) and not em.trainable
    assert float((em(x[:, :-1]) - x[:, 1:]).abs().max()) < 1e-13


def test_state_variables_leave_out_derived_outputs():
    from dynlab.emulators.reference import features_from_state, state_variables

    assert state_variables(make_system("lorenz96_two_scale", K=4, J=2)) == ["X", "Y"]
    pendulum = make_system("pendulum")
    names = state_variables(pendulum)
    assert "H" not in names and set(names) == {"q", "p"}
    from dynlab.emulators.codec import FieldSpec

    codec = StateCodec(tuple(FieldSpec(v.name, tuple(d for d in v.dims if d != "time"),
                                       tuple(pendulum.dim_sizes[d] for d in v.dims if d != "time"))
                             for v in pendulum.variables))
    state = torch.randn(3, *pendulum.state_shape, dtype=torch.float64)
    flat = features_from_state(pendulum, codec, state)
    assert flat.shape == (3, codec.n_features)
    torch.testing.assert_close(flat[:, -1], pendulum.energy(state).reshape(3))  # the derived H is computed
