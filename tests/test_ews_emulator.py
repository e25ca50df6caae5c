"""Emulator-side early warnings: the ReferenceEmulator as the emulator reproduces the truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dynlab.emulators.base import AbstractEmulator
from dynlab.emulators.codec import FieldSpec, StateCodec
from dynlab.emulators.reference import ReferenceEmulator
from dynlab.ews.emulator import (MayTruth, emulator_ews, emulator_ews_summary, plot_emulator_ews, recovery_rates,
                                 stochastic_rollouts)
from simulators.tipping import MayGrazing

DT, STEPS = 0.05, 20


class _DeterministicMay(MayGrazing):
    """May's drift without noise, so the ReferenceEmulator (deterministic systems only) can wrap it."""

    @property
    def is_stochastic(self) -> bool:
        return False

    def diffusion(self, t, x):
        return None


class _ReferenceWithForcing(AbstractEmulator):
    """c as a forcing input: one ReferenceEmulator of the constant-c model per distinct c."""

    def __init__(self):
        super().__init__(1, 1)
        self.codec = StateCodec((FieldSpec("x", (), ()),))
        self.register_buffer("anchor", torch.zeros(1, dtype=torch.float64))
        self._cache: dict[float, ReferenceEmulator] = {}

    def _reference(self, c: float) -> ReferenceEmulator:
        if c not in self._cache:
            system = _DeterministicMay(MayGrazing.Params(c=c, sigma=0.0))
            self._cache[c] = ReferenceEmulator(system, "euler_maruyama", DT, STEPS, self.codec)
        return self._cache[c]

    def forward(self, x, forcing=None):  # pragma: no cover - not used here
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        out = torch.empty_like(x_t)
        for c in torch.unique(forcing_t[:, 0]).tolist():
            rows = forcing_t[:, 0] == c
            out[rows] = self._reference(c).step(x_t[rows], None)[0]
        return out, None


class _ConstantRelaxation(AbstractEmulator):
    """An emulator with no critical slowing down: x -> x* + 0.5 (x - x*) with x* following c."""

    def __init__(self):
        super().__init__(1, 1)
        self.register_buffer("anchor", torch.zeros(1, dtype=torch.float64))

    def forward(self, x, forcing=None):  # pragma: no cover
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return None

    def step(self, x_t, state, forcing_t=None):
        target = 8.0 - 3.0 * (forcing_t - 2.0)
        return target + 0.5 * (x_t - target), None


TRUTH = MayTruth(sigma=0.15, dt=DT, steps_per_save=STEPS)


def test_reference_emulator_has_the_truth_recovery_rate_and_reaches_one_at_the_fold():
    c = np.linspace(2.0, 2.62, 32)
    rec = recovery_rates(_ReferenceWithForcing(), TRUTH, c)
    ok = np.isfinite(rec["truth"].values)
    np.testing.assert_allclose(rec["emulator"].values[ok], rec["truth"].values[ok], rtol=1e-9)
    assert np.isnan(rec["emulator"].values[~ok]).all() and rec["c"].values[~ok].min() > 2.604
    # critical slowing down: the eigenvalue rises towards 1 as c approaches the fold
    assert np.all(np.diff(rec["truth"].values[ok]) > 0)
    assert rec["truth"].values[ok][-1] > 0.9 > 0.7 > rec["truth"].values[0]
    assert rec.attrs["emulator_c_at_level"] == pytest.approx(rec.attrs["truth_c_at_level"], rel=1e-9)
    assert 2.5 < rec.attrs["truth_c_at_level"] < 2.604
    # the continuous-time linearisation agrees to O(dt)
    np.testing.assert_allclose(rec["truth_continuous"].values[ok], rec["truth"].values[ok], atol=0.02)
    assert rec.attrs["fold_c"] == pytest.approx(2.604, abs=1e-3)


def test_an_emulator_without_slowing_down_is_told_apart():
    rec = recovery_rates(_ConstantRelaxation(), TRUTH, np.linspace(2.0, 2.6, 7))
    np.testing.assert_allclose(rec["emulator"].values, 0.5)
    assert math.isnan(rec.attrs["emulator_c_at_level"])


def test_stochastic_rollouts_of_the_reference_equal_the_truth_and_indicators_match(tmp_path):
    c = 2.3 + 0.004 * np.arange(90)
    x = stochastic_rollouts(_ReferenceWithForcing(), TRUTH, c, members=6, seed=1)
    np.testing.assert_allclose(x.sel(source="emulator").values, x.sel(source="truth").values, rtol=1e-12)
    ds = emulator_ews(_ReferenceWithForcing(), TRUTH, c0=2.3, c_rate=0.01, t_end=60.0, members=6, lead=3.0)
    np.testing.assert_allclose(ds["tau_variance"].sel(source="emulator"), ds["tau_variance"].sel(source="truth"))
    assert np.isfinite(ds["tau_variance"].values).all()
    summary = emulator_ews_summary(ds)
    assert summary["ews_eigenvalue_max_abs_error"] < 1e-9
    assert summary["ews_tau_variance_median_truth"] == summary["ews_tau_variance_median_emulator"]
    plot_emulator_ews(ds, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 1000
    bad = emulator_ews(_ConstantRelaxation(), TRUTH, c0=2.3, c_rate=0.01, t_end=60.0, members=6, lead=3.0)
    assert np.isnan(bad["transition_time"].sel(source="emulator")).all()   # never tips


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="c_values"):
        recovery_rates(_ConstantRelaxation(), TRUTH, [])
    with pytest.raises(ValueError, match="steps_per_save"):
        MayTruth(steps_per_save=0)
    with pytest.raises(ValueError, match="past the fold"):
        stochastic_rollouts(_ConstantRelaxation(), TRUTH, [2.9, 3.0])
