"""Physics checks per family (dynlab.eval.physics): Hamiltonian invariants and climate budgets/sensitivity.

Each check passes on the ReferenceEmulator and fails on a deliberately wrong emulator: a damped
map on a Hamiltonian system (p × 0.99 per step), a leaky climate map (T × 0.99 per step).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dynlab.emulators.base import AbstractEmulator
from dynlab.emulators.reference import ReferenceEmulator, features_from_state
from dynlab.eval import physics as P
from dynlab.testing import assert_budget_closed, assert_climate_sensitivity_close, assert_conserves
from simulators import make_integrator, make_system

H = 0.05      # Kepler save interval (model time)
STEPS = 400   # ~7 periods of the eccentric orbit


class Scaled(AbstractEmulator):
    """A wrong emulator: the base emulator's step, then the features ``index`` multiplied by ``factor``."""

    trainable = False

    def __init__(self, base: AbstractEmulator, index: torch.Tensor, factor: float = 0.99):
        super().__init__(base.n_features)
        self.base, self.index, self.factor = base, index, factor

    def forward(self, x, forcing=None):
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        y, _ = self.base.step(x_t, None)
        y = y.clone()
        y[..., self.index] *= self.factor
        return y, None


def _p_index(codec):
    return torch.tensor([i for i, n in enumerate(codec.feature_names()) if n.startswith("p[")])


@pytest.fixture(scope="module")
def kepler():
    """Kepler (G = m₁ = m₂ = 1): an eccentric orbit (0.8 × circular speed at r = 1) and a wider one;
    the truth is RK4 at H/20."""
    system = make_system("kepler")
    codec = P.system_codec(system)
    v = 0.8 * math.sqrt(2.0) / 2
    q = torch.tensor([[[0.5, 0.0], [-0.5, 0.0]], [[0.0, 0.6], [0.0, -0.6]]], dtype=torch.float64)
    p = torch.tensor([[[0.0, v], [0.0, -v]], [[-1.1 * v, 0.0], [1.1 * v, 0.0]]], dtype=torch.float64)
    start = features_from_state(system, codec, system.join(q, p))[:, None]
    with torch.no_grad():
        truth = torch.cat((start, ReferenceEmulator(system, "rk4", H / 20, 20, codec).rollout(start, STEPS)), dim=1)
    return system, codec, truth


def test_linear_drift_recovers_slope_and_amplitude():
    t = np.linspace(0.0, 10.0, 101)
    slope, amp = P.linear_drift(np.stack([3.0 + 0.25 * t, 1.0 - 2.0 * t]), t)
    np.testing.assert_allclose(slope, [0.25, -2.0], rtol=1e-12)
    np.testing.assert_allclose(amp, 0.0, atol=1e-12)
    # a bounded oscillation over whole periods: no slope, amplitude = its size (up to the fit's O(1/T) leakage)
    t = np.linspace(0.0, 20 * 2 * np.pi, 4001)
    slope, amp = P.linear_drift((0.1 * np.sin(t))[None], t)
    assert abs(slope[0]) < 1e-4 and abs(amp[0] - 0.1) < 5e-3
    with pytest.raises(ValueError, match="values must be"):
        P.linear_drift(np.zeros(5), t[:5])


def test_reference_emulator_conserves_and_damped_map_does_not(kepler):
    system, codec, truth = kepler
    ref = ReferenceEmulator(system, "rk4", H / 10, 10, codec)
    good = P.hamiltonian_metrics(ref, system, codec, truth, save_interval=H)
    assert set(P.conserved_invariants(system)) == {"energy", "momentum", "angular_momentum"}
    assert np.all(np.abs(good["energy_drift_slope_relative"]) < 1e-7)
    assert np.all(good["energy_oscillation_relative"] < 1e-7)
    assert np.all(np.abs(good["angular_momentum_drift_slope_relative"]) < 1e-7)
    assert np.all(good["energy_mse"] < 1e-14)  # RK4 at H/10 vs the truth's H/20: the same orbit

    damped = Scaled(ref, _p_index(codec))
    bad = P.hamiltonian_metrics(damped, system, codec, truth, save_interval=H)
    assert np.all(bad["energy_mse"] > 1.0)
    assert np.all(bad["angular_momentum_drift_slope"] < -1e-2)  # L = Σ q × p shrinks with p

    energy = P.invariant_of(system, codec, "energy")
    context = truth[:, :1]
    drift = assert_conserves(ref, context, STEPS, energy, rtol=1e-6, dt=H, max_drift_slope=1e-6,
                             max_oscillation=1e-6)
    assert np.all(drift < 1e-6)
    with pytest.raises(AssertionError, match="drifts by"):
        assert_conserves(damped, context, STEPS, energy, rtol=1e-2)
    with pytest.raises(AssertionError, match="drift slope"):
        assert_conserves(damped, context, STEPS, energy, rtol=None, dt=H, max_drift_slope=1e-3)
    angular = P.invariant_of(system, codec, "angular_momentum")
    assert_conserves(ref, context, STEPS, angular, rtol=1e-6, dt=H, max_drift_slope=1e-6)
    with pytest.raises(AssertionError, match="drift slope"):
        assert_conserves(damped, context, STEPS, angular, rtol=None, dt=H, max_drift_slope=1e-3)


def test_damped_map_loses_energy_on_the_oscillator():
    system = make_system("mass_spring")
    codec = P.system_codec(system)
    start = features_from_state(system, codec, torch.tensor([[1.0, 0.0]], dtype=torch.float64))[:, None]
    ref = ReferenceEmulator(system, "rk4", 0.01, 10, codec)
    with torch.no_grad():
        truth = torch.cat((start, ref.rollout(start, 200)), dim=1)
    bad = P.hamiltonian_metrics(Scaled(ref, _p_index(codec)), system, codec, truth, save_interval=0.1)
    assert bad["energy_drift_slope"][0] < 0 and bad["energy_mse"][0] > 0
    assert "angular_momentum_drift_slope" not in bad  # not declared by the oscillator


def test_symplectic_reference_row_bounds_energy_where_rk4_drifts(kepler):
    """Yoshida-4 at the save interval: energy error bounded (drift over the run ≪ its oscillation),
    angular momentum exact to round-off (a quadratic invariant of a central force); RK4 at the same
    step: a secular energy drift larger than its oscillation."""
    system, codec, truth = kepler
    duration = H * STEPS
    sym = P.hamiltonian_metrics(P.symplectic_reference(system, codec, H), system, codec, truth, save_interval=H)
    rk4 = P.hamiltonian_metrics(ReferenceEmulator(system, "rk4", H, 1, codec), system, codec, truth,
                                save_interval=H)
    e = 0  # the eccentric orbit
    assert abs(sym["energy_drift_slope"][e]) * duration < 0.1 * sym["energy_oscillation"][e]
    assert sym["energy_oscillation_relative"][e] < 1e-3
    assert np.all(np.abs(sym["angular_momentum_drift_slope_relative"]) < 1e-12)
    assert abs(rk4["energy_drift_slope"][e]) * duration > rk4["energy_oscillation"][e]
    assert rk4["energy_drift_slope"][e] < 0  # RK4 dissipates
    table = P.hamiltonian_report({"rk4": ReferenceEmulator(system, "rk4", H, 1, codec)}, system, codec, truth,
                                 save_interval=H)
    assert list(table.learner.values) == ["reference:yoshida4", "rk4"]
    np.testing.assert_array_equal(table["energy_drift_slope"].values, np.stack([sym["energy_drift_slope"],
                                                                                  rk4["energy_drift_slope"]]))
    leap = P.symplectic_reference(system, codec, H, "leapfrog")
    assert leap.integrator.name == "leapfrog"
    with pytest.raises(ValueError, match="integrator must be one of"):
        P.symplectic_reference(system, codec, H, "rk4")


def test_metrics_from_a_simulated_store(tmp_path):
    """The dataset path: a Kepler store from `dynlab simulate`, its codec and its ReferenceEmulator."""
    import dynlab
    from dynlab.config import compose
    from dynlab.pipeline.simulate import simulate

    out = tmp_path / "k.zarr"
    simulate(compose("simulate", ["system=kepler", "ensemble.members=2", f"out={out}", "progress=false",
                                  "time.dt=0.01", "time.save_every=0.05", "time.t_end=2.0"]), log=lambda _: None)
    ds = dynlab.open_dataset(out)
    ref = ReferenceEmulator.from_dataset(ds)
    truth = torch.as_tensor(ref.codec.encode(ds))
    m = P.hamiltonian_metrics(ref, ref.system, ref.codec, truth, save_interval=ref.save_interval)
    assert np.all(m["energy_mse"] < 1e-20)  # bit-for-bit the stored states
    assert ref.integrator.name in P.SYMPLECTIC_INTEGRATORS  # Kepler's default (leapfrog): a symplectic store
    assert np.all(np.abs(m["energy_drift_slope_relative"]) < 1e-3)
    assert np.all(np.abs(m["angular_momentum_drift_slope_relative"]) < 1e-10)
    table, reason = P.physics_checks({"reference": ref}, ds, [0, 1], ref.codec)
    # a learner's codec with the derived H beside q, p decodes to the same states
    from dynlab.emulators.codec import StateCodec

    full = StateCodec.from_dataset(ds, ["q", "p", "H"])
    states = P.states_from_features(ref.system, full, torch.as_tensor(full.encode(ds)))
    torch.testing.assert_close(states, P.states_from_features(ref.system, ref.codec, truth))
    assert reason == "" and list(table.learner.values) == ["reference:yoshida4", "reference"]
    np.testing.assert_array_equal(table["energy_mse"].sel(learner="reference").values, m["energy_mse"])


def test_hamiltonian_inputs_are_validated(kepler):
    system, codec, truth = kepler
    ref = ReferenceEmulator(system, "rk4", H, 1, codec)
    with pytest.raises(ValueError, match="save_interval"):
        P.hamiltonian_metrics(ref, system, codec, truth, save_interval=0.0)
    with pytest.raises(ValueError, match="truth must have shape"):
        P.hamiltonian_metrics(ref, system, codec, truth[..., :3], save_interval=H)
    with pytest.raises(ValueError, match="context"):
        P.hamiltonian_metrics(ref, system, codec, truth, save_interval=H, context=STEPS + 1)
    with pytest.raises(ValueError, match="declares no invariant"):
        P.invariant_of(system, codec, "enstrophy")
    with pytest.raises(ValueError, match="dt must be"):
        assert_conserves(ref, truth[:, :1], 3, P.invariant_of(system, codec), dt=-1.0, max_drift_slope=1.0)


# --- climate --------------------------------------------------------------------------------

YEARS = 100  # ~19 relaxation times of the 50 m slab (5.34 yr)


@pytest.fixture(scope="module")
def slab():
    base = make_system("slab_ocean_0d")  # λ = −1.24 W m⁻² K⁻¹, 50 m mixed layer
    abrupt = P.with_co2_multiple(base, 4.0, "abrupt")
    codec = P.system_codec(abrupt)
    ref = ReferenceEmulator(abrupt, "rk4", 0.1, 10, codec)
    return base, abrupt, codec, ref, Scaled(ref, torch.tensor([0]))


def test_budget_closes_for_reference_and_not_for_leaky_map(slab):
    base, abrupt, codec, ref, leaky = slab
    context = torch.tensor([[[0.0]], [[0.5]]], dtype=torch.float64)
    budget = assert_budget_closed(ref, abrupt, codec, context, YEARS, 1.0, max_residual_flux=0.005)
    # the only error is the trapezoid rule's on exp(-t/τ) at Δt = 1 yr: ≈ Δt²/(12τ²) of the integral
    assert np.all(np.abs(budget["residual_relative"]) < 1.0 / (12 * 5.3 ** 2) * 1.1)
    with pytest.raises(AssertionError, match="energy budget residual"):
        assert_budget_closed(leaky, abrupt, codec, context, YEARS, 1.0, max_residual_flux=0.05)
    bad = P.energy_budget(leaky, abrupt, codec, context, YEARS, 1.0)
    assert np.all(bad["residual_flux"] < -0.3)  # the leak removes ~0.4 W m-2
    table = P.climate_report({"reference": ref, "leaky": leaky}, abrupt, codec, context, YEARS, 1.0)
    np.testing.assert_array_equal(table["budget_residual_flux"].sel(learner="leaky").values, bad["residual_flux"])
    assert float(table["ecs"].sel(learner="leaky")[0]) < float(table["ecs"].sel(learner="reference")[0])


def test_gregory_recovers_analytic_sensitivity(slab):
    """ECS per doubling of the slab: −F₂ₓ/λ = 5.35 ln 2 / 1.24 = 2.9906 K; the abrupt-4× estimate
    (ΔT where the heating vanishes, ×ln2/ln4) recovers it within 1e-6 K: implied heating and
    warming are both affine in the same decaying exponential, so the regression is exact."""
    base, abrupt, codec, ref, leaky = slab
    p = abrupt.params
    analytic_2x = -p.co2_forcing_scale * math.log(2.0) / p.feedback
    context = torch.zeros(1, 1, 1, dtype=torch.float64)
    got = assert_climate_sensitivity_close(ref, abrupt, codec, context, YEARS, 1.0,
                                           reference=2 * analytic_2x, rtol=1e-6)
    assert abs(got["ecs_2x"][0] - analytic_2x) < 1e-6
    assert abs(got["ecs"][0] - abrupt.equilibrium_response(p.co2_forcing_scale * math.log(4.0))) < 1e-6
    # the adjustment time is the relaxation time C/|λ| (to RK4's error at Δt = 0.1 yr)
    assert abs(got["tau"][0] - abrupt.relaxation_time) < 1e-4 * abrupt.relaxation_time
    with pytest.raises(AssertionError, match="effective climate sensitivity"):
        assert_climate_sensitivity_close(leaky, abrupt, codec, context, YEARS, 1.0, reference=ref, rtol=0.02)
    with pytest.raises(AssertionError, match="adjustment e-folding time"):
        assert_climate_sensitivity_close(leaky, abrupt, codec, context, YEARS, 1.0, reference=ref, rtol=0.1,
                                         tau_rtol=0.02)
    with pytest.raises(ValueError, match="tau_rtol needs a reference emulator"):
        assert_climate_sensitivity_close(ref, abrupt, codec, context, YEARS, 1.0, reference=6.0, tau_rtol=0.1)


def test_equilibrium_warming_inside_and_outside_training_range(slab):
    base, abrupt, codec, ref, leaky = slab
    at = lambda k: ReferenceEmulator(P.with_co2_multiple(base, k), "rk4", 0.1, 10, codec)  # noqa: E731
    start = torch.zeros(1, 1, dtype=torch.float64)
    good = P.equilibrium_warming(at, base, codec, [2.5, 8.0], start, YEARS, 1.0)
    analytic = [base.equilibrium_response(base.params.co2_forcing_scale * math.log(k)) for k in (2.5, 8.0)]
    np.testing.assert_allclose(good["reference"][:, 0], analytic, atol=1e-5)  # tail mean after 80 yr
    np.testing.assert_allclose(good["error"], 0.0, atol=1e-5)
    bad = P.equilibrium_warming(lambda k: Scaled(at(k), torch.tensor([0])), base, codec, [2.5, 8.0], start,
                                YEARS, 1.0)
    assert np.all(bad["error"] / bad["reference"] < -0.03)  # the leak settles ~5.5 % low


def test_climate_inputs_are_validated(slab):
    base, abrupt, codec, ref, leaky = slab
    context = torch.zeros(1, 1, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="no climate checks"):
        P.global_temperature(make_system("lorenz63"), torch.zeros(3))
    with pytest.raises(ValueError, match="co2_multiple must differ"):
        P.gregory_regression(np.zeros((1, 5)), np.zeros((1, 5)), np.arange(5.0), co2_multiple=1.0)
    with pytest.raises(ValueError, match="max_residual_flux"):
        assert_budget_closed(ref, abrupt, codec, context, 10, 1.0, max_residual_flux=-1)
    with pytest.raises(ValueError, match="scenario must be"):
        P.with_co2_multiple(base, 2.0, "ramp_1pct")
    with pytest.raises(ValueError, match="steps must be"):
        P.energy_budget(ref, abrupt, codec, context, 0, 1.0)


class EBMReference(AbstractEmulator):
    """The 1-D EBM over one save interval on its temperatures (accumulated heating restarted at 0):
    ReferenceEmulator needs the whole state, and the EBM's holds an accumulator besides T."""

    trainable = False

    def __init__(self, system, dt: float, substeps: int):
        super().__init__(system.params.n_lat)
        self.system, self.dt, self.substeps = system, dt, substeps
        self.integrator = make_integrator("rk4")

    def forward(self, x, forcing=None):
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        x = torch.cat((x_t, torch.zeros_like(x_t[:, :1])), dim=-1)
        out = self.integrator.integrate(self.system, x, t0=0.0, dt=self.dt, n_steps=self.substeps,
                                        save_every=self.substeps)[-1]
        return out[:, :-1], None


def test_ebm_budget_and_sensitivity():
    """1-D EBM, annual insolation, fixed albedo: the global mean obeys C dT_g/dt = F − B T_g + const
    (diffusion moves heat between bands, the q-flux has zero mean), so the Gregory estimate after
    abrupt 4× is F₄ₓ/B = 5.35 ln 4 / 2 = 3.708 K and the adjustment time C/B (3.31 yr at 50 m;
    the rollout: 100 half-year steps ≈ 15 C/B)."""
    from dynlab.emulators.codec import FieldSpec, StateCodec

    kw = dict(n_lat=12, insolation="annual", ice_albedo_feedback=False, mixed_layer_depth=50.0)
    base = make_system("ebm_1d", **kw)
    abrupt = P.with_co2_multiple(base, 4.0, "abrupt")
    codec = StateCodec((FieldSpec("T", ("lat",), (12,)),))
    with torch.no_grad():  # the 1× equilibrium (50 yr ≈ 15 C/B)
        start = EBMReference(base, 0.1, 5).rollout(torch.full((1, 1, 12), 10.0, dtype=torch.float64), 100)[:, -1:]
    ref = EBMReference(abrupt, 0.1, 5)
    leaky = Scaled(ref, torch.arange(12), 0.99)
    budget = assert_budget_closed(ref, abrupt, codec, start, YEARS, 0.5, max_residual_flux=0.01)
    assert abs(budget["residual_relative"][0]) < 0.5 ** 2 / (12 * 3.3 ** 2) * 1.2  # the trapezoid's error
    with pytest.raises(AssertionError, match="energy budget residual"):
        assert_budget_closed(leaky, abrupt, codec, start, YEARS, 0.5, max_residual_flux=0.05)
    p = abrupt.params
    ecs = p.co2_forcing_scale * math.log(4.0) / p.B
    got = assert_climate_sensitivity_close(ref, abrupt, codec, start, YEARS, 0.5, reference=ecs, rtol=1e-5)
    assert abs(got["tau"][0] - abrupt.heat_capacity_years / p.B) < 1e-3 * got["tau"][0]
    with pytest.raises(AssertionError, match="effective climate sensitivity"):
        assert_climate_sensitivity_close(leaky, abrupt, codec, start, YEARS, 0.5, reference=ref, rtol=0.02)


def test_friction_drops_energy_from_the_invariants_but_keeps_energy_mse():
    system = make_system("mass_spring", friction=0.1)
    codec = P.system_codec(system)
    assert "energy" not in P.conserved_invariants(system)
    start = features_from_state(system, codec, torch.tensor([[1.0, 0.0]], dtype=torch.float64))[:, None]
    ref = ReferenceEmulator(system, "rk4", 0.01, 10, codec)
    with torch.no_grad():
        truth = torch.cat((start, ref.rollout(start, 50)), dim=1)
    m = P.hamiltonian_metrics(ref, system, codec, truth, save_interval=0.1)
    assert "energy_drift_slope" not in m and m["energy_mse"][0] < 1e-20


def test_physics_checks_on_a_slab_store(tmp_path):
    """`dynlab simulate` abrupt 4× store → physics_checks: the store's reference emulator closes the
    budget and its Gregory estimate is the analytic 5.35 ln 4 / 1.24 = 5.981 K."""
    import dynlab
    from dynlab.config import compose
    from dynlab.pipeline.simulate import simulate

    out = tmp_path / "slab.zarr"
    simulate(compose("simulate", ["system=slab_ocean_0d", "system.scenario=abrupt_4x", "ensemble.members=2",
                                  "time.t_end=80", f"out={out}", "progress=false"]), log=lambda _: None)
    ds = dynlab.open_dataset(out)
    ref = ReferenceEmulator.from_dataset(ds)
    leaky = Scaled(ref, torch.tensor([0]))
    table, reason = P.physics_checks({"reference": ref, "leaky": leaky}, ds, [0, 1], ref.codec)
    assert reason == "" and table.attrs["co2_multiple"] == 4.0
    ecs = 5.35 * math.log(4.0) / 1.24
    np.testing.assert_allclose(table["ecs"].sel(learner="reference").values, ecs, rtol=1e-6)
    assert np.all(np.abs(table["budget_residual_flux"].sel(learner="reference").values) < 0.01)
    assert np.all(table["budget_residual_flux"].sel(learner="leaky").values < -0.1)
    assert np.all(table["ecs"].sel(learner="leaky").values < 0.97 * ecs)
