"""CO₂ scenarios as data: values, the Myhre forcing, user paths from lists and CSV, and
errors that name the bad value."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulators.climate import (AbruptCO2, CO2Path, CompoundRampCO2, ConstantCO2, co2_forcing, make_scenario)


def test_forcing_per_doubling_is_371_and_signed():
    assert co2_forcing(560.0, 280.0) == pytest.approx(3.7083, abs=1e-4)
    assert co2_forcing(140.0, 280.0) == pytest.approx(-3.7083, abs=1e-4)  # halving cools
    assert co2_forcing(280.0, 280.0) == 0.0
    assert torch.allclose(co2_forcing(torch.tensor([280.0, 1120.0], dtype=torch.float64), 280.0),
                          torch.tensor([0.0, 2 * 5.35 * math.log(2)], dtype=torch.float64))


def test_constant_and_abrupt():
    assert make_scenario("constant").co2(-5.0) == 280.0
    assert make_scenario("constant", co2_multiple=3.0).co2(100.0) == 840.0
    s = make_scenario("abrupt_4x", co2_reference=285.0)
    assert isinstance(s, AbruptCO2)
    assert s.co2(-1e-9) == 285.0 and s.co2(0.0) == 4 * 285.0 and s.co2(50.0) == 4 * 285.0
    assert make_scenario("abrupt_2x").co2(0.0) == 560.0
    assert make_scenario("abrupt", co2_multiple=0.5).co2(1.0) == 140.0


@pytest.mark.parametrize("name, rate", [("ramp_1pct", 0.01), ("ramp_2pct", 0.02)])
def test_compound_ramps(name, rate):
    s = make_scenario(name)
    assert isinstance(s, CompoundRampCO2)
    assert s.co2(-3.0) == 280.0 and s.co2(0.0) == 280.0
    assert s.co2(1.0) == pytest.approx(280.0 * (1 + rate))
    assert s.co2(70.0) == pytest.approx(280.0 * (1 + rate) ** 70)
    # the forcing grows linearly in time
    t = np.linspace(0, 140, 8)
    F = np.array([co2_forcing(s.co2(x)) for x in t])
    np.testing.assert_allclose(F, 5.35 * math.log1p(rate) * t, rtol=1e-12, atol=1e-12)
    # 1 %/yr doubles after ln 2 / ln 1.01 = 69.66 years
    doubling = math.log(2) / math.log1p(rate)
    assert s.co2(doubling) == pytest.approx(560.0)


def test_path_interpolates_and_holds_its_ends():
    s = make_scenario("path", co2_path=[[0, 280], [10, 380], [20, 400]])
    assert isinstance(s, CO2Path)
    assert s.co2(-5) == 280.0 and s.co2(5) == pytest.approx(330.0) and s.co2(15) == pytest.approx(390.0)
    assert s.co2(100) == 400.0
    np.testing.assert_allclose(s.co2_series(torch.tensor([0.0, 5.0, 10.0])).numpy(), [280.0, 330.0, 380.0])


def test_csv_path(tmp_path):
    f = tmp_path / "co2.csv"
    f.write_text("year,ppm\n# a comment\n0, 280\n50, 420 # observed-ish\n100,560\n")
    s = make_scenario("csv", co2_csv=str(f))
    assert s.co2(25) == pytest.approx(350.0) and s.co2(75) == pytest.approx(490.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("year,ppm\n0,280\n1,2,3\n")
    with pytest.raises(ValueError, match="line 3.*2 columns"):
        make_scenario("csv", co2_csv=str(bad))


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="abrupt_3x"), "unknown scenario 'abrupt_3x'"),
    (dict(name="constant", co2_multiple=-2.0), "co2_multiple must be a finite number > 0, got -2.0"),
    (dict(name="constant", co2_reference=0.0), "co2_reference must be a finite number > 0, got 0.0"),
    (dict(name="path"), "scenario=path needs co2_path"),
    (dict(name="csv"), "scenario=csv needs co2_csv"),
    (dict(name="csv", co2_csv="/nonexistent/co2.csv"), "co2_csv='/nonexistent/co2.csv' is not a file"),
    (dict(name="ramp_1pct", co2_multiple=2.0), "does not use co2_multiple"),
    (dict(name="path", co2_path=[[0, 280], [0, 300]]), "increase strictly, got 0.0 then 0.0"),
    (dict(name="path", co2_path=[[0, 280], [1, -3]]), "co2_path ppm must be a finite number > 0, got -3"),
    (dict(name="path", co2_path=[[0, 280, 1]]), r"\(year, ppm\) pairs, got the entry \[0, 280, 1\]"),
])
def test_bad_scenarios_are_named(kwargs, message):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=message):
        make_scenario(kwargs.pop("name"), **kwargs)


def test_scenario_objects_pass_through_and_validate():
    s = ConstantCO2(400.0)
    assert make_scenario(s) is s
    with pytest.raises(ValueError, match="rate must be > -1"):
        CompoundRampCO2(-1.5)
