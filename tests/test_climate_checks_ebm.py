"""Climate checks on the seasonal 1-D EBM and the slab ocean with ReferenceEmulator rows (issue 14).

* the EBM's ReferenceEmulator (its state rebuilt by ``state_from_observables``, a clock for the
  seasons) reproduces a ``dynlab simulate`` store bit for bit; restarted at the wrong phase it
  does not;
* on a seasonal abrupt-4× store the physics table is finite for the reference row (annual
  means, control-climate base): its budget closes to the trapezoid's error, its Gregory
  sensitivity equals its own equilibrium warming; a leaky map fails the budget; a blow-up
  reports inf residuals and the time it stayed finite (it used to give NaN everywhere);
* the transient response to a 1 %/yr ramp of the slab matches the analytic ramp response;
* equilibrium warming at 2.5× and 8× on a store with per-member CO₂ in [1, 4].
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dynlab
from dynlab.config import compose
from dynlab.emulators.base import AbstractEmulator
from dynlab.emulators.reference import ReferenceEmulator
from dynlab.eval import physics as P
from dynlab.pipeline.simulate import simulate
from dynlab.testing import (assert_budget_closed, assert_climate_sensitivity_close,
                            assert_transient_response_close)

EBM = ["system=ebm_1d", "system.n_lat=18", "system.scenario=abrupt_4x", "time.dt=0.01", "time.save_every=0.05",
       "time.spinup=10", "time.t_end=12", "ensemble.members=2"]


class Scaled(AbstractEmulator):
    """A wrong emulator: the base's step (its clock passed along), then every feature × ``factor``."""

    trainable = False

    def __init__(self, base: AbstractEmulator, factor: float):
        super().__init__(base.n_features)
        self.base, self.factor = base, factor

    def forward(self, x, forcing=None):
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return self.base.initial_state(batch, device, dtype)

    def step(self, x_t, state, forcing_t=None):
        y, state = self.base.step(x_t, state)
        return y * self.factor, state


def _store(tmp_path_factory, name, overrides):
    out = tmp_path_factory.mktemp(name) / f"{name}.zarr"
    simulate(compose("simulate", [*overrides, f"out={out}", "progress=false"]), log=lambda _: None)
    return dynlab.open_dataset(out)


@pytest.fixture(scope="module")
def ebm(tmp_path_factory):
    return _store(tmp_path_factory, "ebm", EBM)


def test_reference_emulator_steps_the_seasonal_ebm(ebm):
    ref = ReferenceEmulator.from_dataset(ebm)
    assert ref.clocked and ref.hooked and ref.codec.names == ["T"]
    truth = torch.as_tensor(ref.codec.encode(ebm))
    with torch.no_grad():
        out = ref.rollout(truth[:, :1], 40)
        late = ReferenceEmulator.from_dataset(ebm, t0=0.25).rollout(truth[:, :1], 40)
    assert torch.equal(out, truth[:, 1:41])  # the store's own integrator, step and season
    assert (late - truth[:, 1:41]).abs().max() > 0.1  # a quarter-year phase error shows


def test_seasonal_ebm_physics_table_is_finite_and_separates_leaky_and_blown_up(ebm):
    ref = ReferenceEmulator.from_dataset(ebm)
    emulators = {"leaky": Scaled(ref, 0.999), "blowup": Scaled(ref, 50.0)}  # overflows within 200 steps
    table, reason = P.physics_checks(emulators, ebm, [0, 1], ref.codec)
    assert reason == "" and table.attrs["annual_means"] == 1
    r = table.sel(learner="reference:rk4")
    for k in ("budget_residual_flux", "ecs", "tau", "warming", "slope"):
        assert np.all(np.isfinite(r[k].values)), k
    # the reference settles within the 12 years: Gregory's zero-heating warming is its warming
    np.testing.assert_allclose(r["ecs"].values, r["warming"].values, rtol=0.02)
    assert np.all(r["slope"].values < 0) and np.all(r["ecs"].values > 2)
    assert np.all(np.abs(r["budget_residual_flux"].values) < 0.1)  # trapezoid over seasons and ice edges
    leak = table["budget_residual_flux"].sel(learner="leaky").values
    assert np.all(leak < -0.2) and np.all(np.abs(leak) > 3 * np.abs(r["budget_residual_flux"].values))
    bad = table.sel(learner="blowup")
    assert np.all(np.isinf(bad["budget_residual_flux"].values))
    assert np.all(bad["finite_years"].values < 12.0) and np.all(r["finite_years"].values == 12.0)
    # the asserts of dynlab.testing on the same rollouts
    context = torch.as_tensor(ref.codec.encode(ebm))[:, :1]
    base = P.control_temperature(ref, context[:, 0])
    assert_budget_closed(ref, ref.system, ref.codec, context, 240, 0.05, max_residual_flux=0.1)
    with pytest.raises(AssertionError, match="energy budget residual"):
        assert_budget_closed(emulators["leaky"], ref.system, ref.codec, context, 240, 0.05, max_residual_flux=0.1)
    assert_climate_sensitivity_close(ref, ref.system, ref.codec, context, 240, 0.05, reference=ref, rtol=1e-9,
                                     base=base)
    with pytest.raises(AssertionError, match="effective climate sensitivity"):
        assert_climate_sensitivity_close(emulators["leaky"], ref.system, ref.codec, context, 240, 0.05,
                                         reference=ref, rtol=0.02, base=base)
    with pytest.raises(ValueError, match="seasonal cycle"):
        P.climate_response(ref, ref.system, ref.codec, context, 240, 0.05)


def test_transient_response_of_the_slab_to_a_one_percent_ramp(tmp_path_factory):
    """C dT/dt = a t + λT with a = 5.35 ln(1.01) per year: T = (a/|λ|)(t − τ(1 − e^{−t/τ})), τ = C/|λ|;
    the TCR is its mean over the 20 years centred on the doubling time ln 2/ln 1.01 = 69.7 yr."""
    ds = _store(tmp_path_factory, "ramp", ["system=slab_ocean_0d", "system.scenario=ramp_1pct", "time.t_end=85",
                                           "ensemble.members=2"])
    ref = ReferenceEmulator.from_dataset(ds)
    table, reason = P.physics_checks({"leaky": Scaled(ref, 0.99)}, ds, [0, 1], ref.codec)
    p = ref.system.params
    a, tau = p.co2_forcing_scale * math.log(1.01), ref.system.relaxation_time
    t = np.arange(0.0, 86.0)
    T = a / -p.feedback * (t - tau * (1 - np.exp(-t / tau)))
    t2x = math.log(2) / math.log(1.01)
    want = T[(t >= t2x - 10) & (t <= t2x + 10)].mean()
    np.testing.assert_allclose(table["tcr"].sel(learner="reference:rk4").values, want, rtol=1e-4)
    assert np.all(table["tcr"].sel(learner="leaky").values < 0.97 * want)  # the leak adds ~0.07 W m-2 K-1
    assert "ecs" not in table.data_vars  # no step: no Gregory regression
    context = torch.as_tensor(ref.codec.encode(ds))[:, :1]
    got = assert_transient_response_close(ref, ref.system, ref.codec, context, 85, 1.0, reference=want, rtol=1e-4)
    np.testing.assert_allclose(got, table["tcr"].sel(learner="reference:rk4").values, rtol=1e-12)
    with pytest.raises(AssertionError, match="transient climate response"):
        assert_transient_response_close(Scaled(ref, 0.99), ref.system, ref.codec, context, 85, 1.0, reference=ref,
                                        rtol=0.02)
    with pytest.raises(ValueError, match="not under a compound CO2 ramp"):
        assert_transient_response_close(ref, P.with_co2_multiple(ref.system, 2.0), ref.codec, context, 85, 1.0,
                                        reference=2.0)


def test_equilibrium_warming_outside_the_training_range(tmp_path_factory):
    ds = _store(tmp_path_factory, "levels", ["system=slab_ocean_0d", "system.scenario=constant",
                                             "+system.randomize={co2_multiple:[1,4]}", "time.t_end=60",
                                             "ensemble.members=4"])
    ref = ReferenceEmulator.from_dataset(ds)
    truth = torch.as_tensor(ref.codec.encode(ds))
    with torch.no_grad():  # bound to the members' drawn levels it is the store; unbound it runs at 1x
        bound = ReferenceEmulator.from_dataset(ds, members=[0, 1, 2, 3]).rollout(truth[:, :1], 20)
        plain = ref.rollout(truth[:, :1], 20)
    assert torch.equal(bound, truth[:, 1:21]) and (plain - truth[:, 1:21]).abs().max() > 0.5
    table, reason = P.physics_checks({"leaky": Scaled(ref, 0.99)}, ds, [0, 1], ref.codec)
    assert reason == "" and table.attrs["outside"] == [8.0]
    lo, hi = table.attrs["training_range"]
    assert 1.0 <= lo < hi <= 4.0
    r = table.sel(learner="reference:rk4")
    p = ref.system.params
    for k in (2.5, 8.0):  # from any start the reference settles at −F_k/λ above its 1× equilibrium
        np.testing.assert_allclose(r[f"equilibrium_warming_{k:g}x"].values,
                                   p.co2_forcing_scale * math.log(k) / -p.feedback, rtol=1e-3)
        np.testing.assert_array_equal(r[f"equilibrium_error_{k:g}x"].values, 0.0)
    # the leaky map, told no level, misses at least one of them by far
    err = np.abs(np.stack([table[f"equilibrium_error_{k:g}x"].sel(learner="leaky").values for k in (2.5, 8.0)]))
    assert np.all(err.max(axis=0) > 2.0)


def test_climate_helpers_validate_and_average_whole_years():
    ebm = P.with_co2_multiple(__import__("simulators").make_system("ebm_1d", n_lat=6), 1.0)
    assert P.cycle_saves(ebm, 0.05) == 20 and P.cycle_saves(ebm, 1.0) == 1
    with pytest.raises(ValueError, match="does not divide a year"):
        P.cycle_saves(ebm, 0.3)
    x = np.arange(10.0)[None].repeat(2, 0)
    np.testing.assert_array_equal(P.annual_means(x, 4), [[1.5, 5.5], [1.5, 5.5]])  # the partial year dropped
    with pytest.raises(ValueError, match="n a positive integer"):
        P.annual_means(x, 0)
    t = np.arange(0.0, 70.0)
    with pytest.raises(ValueError, match="doubling time"):
        P.transient_response(t[None], t, [0.0])
    with pytest.raises(ValueError, match="states must have shape"):
        P.budget_from_states(ebm, torch.zeros(2, 5, 6), np.arange(5.0))
