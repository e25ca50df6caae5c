"""Insolation from orbital geometry against exact identities: the global mean is S0/(4ρ²),
the pole in polar day gets S0 sin δ/ρ², equinox insolation is S0 cos φ/(πρ²), the annual
mean is hemispherically symmetric with global mean S0/(4√(1−e²)), and its P2 coefficient is
North's s2 ≈ −0.48."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.climate import (EARTH_ORBIT_1950, annual_mean_insolation, daily_insolation, declination,
                                legendre_p2, p2_insolation, solar_longitude)

S0 = 1365.2
E = EARTH_ORBIT_1950["eccentricity"]
VARPI = EARTH_ORBIT_1950["perihelion_longitude"]
EDGES = np.linspace(-90, 90, 721)
LAT = 0.5 * (EDGES[1:] + EDGES[:-1])
AREA = 0.5 * np.diff(np.sin(np.radians(EDGES)))


def inverse_distance_squared(lam):
    return ((1 + E * np.cos(lam - math.radians(VARPI))) / (1 - E * E)) ** 2


def test_solar_longitude_calendar():
    lam = np.degrees(solar_longitude(np.array([80.0, 80.0 + 365.2422]), eccentricity=E, perihelion_longitude=VARPI))
    np.testing.assert_allclose(np.mod(lam + 180, 360) - 180, [0.0, 0.0], atol=1e-9)  # vernal equinox on day 80
    # perihelion (λ = ϖ) falls in early January; aphelion half a year later
    days = np.linspace(0, 365.2422, 36525, endpoint=False)
    lam = solar_longitude(days, eccentricity=E, perihelion_longitude=VARPI)
    rho2 = inverse_distance_squared(lam)
    assert 0 <= days[np.argmax(rho2)] < 6 and 181 < days[np.argmin(rho2)] < 189
    # Kepler's second law: the Sun moves faster near perihelion
    rate = np.gradient(np.unwrap(lam), days)
    assert rate[np.argmax(rho2)] > rate[np.argmin(rho2)]
    np.testing.assert_allclose(rate / rate.mean(), rho2 / rho2.mean(), rtol=1e-4)  # dλ/dt ∝ 1/r²


@pytest.mark.parametrize("day", [0.0, 45.3, 172.0, 266.0, 300.7])
def test_daily_global_mean_is_s0_over_four_rho2(day):
    q = daily_insolation(LAT, day)
    lam = solar_longitude(day, eccentricity=E, perihelion_longitude=VARPI)
    assert (q * AREA).sum() == pytest.approx(S0 / 4 * inverse_distance_squared(lam), rel=1e-5)
    assert (q >= 0).all()


def test_polar_day_and_equinox():
    day = 172.0  # near the June solstice
    lam = solar_longitude(day, eccentricity=E, perihelion_longitude=VARPI)
    delta = declination(lam, EARTH_ORBIT_1950["obliquity"])
    q = daily_insolation(np.array([-90.0, 89.9999, 90.0]), day)
    assert q[0] == 0.0  # polar night in the south
    assert q[2] == pytest.approx(S0 * math.sin(delta) * inverse_distance_squared(lam), rel=1e-12)
    # equinox: δ = 0, Q = S0 cos φ / (π ρ²)
    q = daily_insolation(LAT, 80.0)
    lam0 = solar_longitude(80.0, eccentricity=E, perihelion_longitude=VARPI)
    np.testing.assert_allclose(q, S0 / math.pi * np.cos(np.radians(LAT)) * inverse_distance_squared(lam0),
                               rtol=1e-9, atol=1e-9)


def test_seasons_have_the_right_sign():
    jan, jul = daily_insolation(np.array([-60.0, 60.0]), 15.0), daily_insolation(np.array([-60.0, 60.0]), 196.0)
    assert jul[1] > jan[1] and jan[0] > jul[0]  # northern summer in July
    assert jan[0] > jul[1]  # southern summer is nearer perihelion: stronger


def test_annual_mean_symmetric_with_known_global_mean_and_p2():
    ann = annual_mean_insolation(LAT, n_days=1460)
    np.testing.assert_allclose(ann, ann[::-1], rtol=2e-4)
    assert (ann * AREA).sum() == pytest.approx(S0 / (4 * math.sqrt(1 - E * E)), rel=1e-6)
    assert ann[LAT.size // 2] == pytest.approx(417, abs=2) and ann[-1] == pytest.approx(173, abs=2)
    p2 = legendre_p2(np.sin(np.radians(LAT)))
    s2 = (ann * p2 * AREA).sum() / (p2 * p2 * AREA).sum() / (ann * AREA).sum()
    assert s2 == pytest.approx(-0.482, abs=0.01)
    p2_fit = p2_insolation(LAT, s2=-0.482)
    assert (p2_fit * AREA).sum() == pytest.approx(S0 / 4, rel=1e-6)
    assert np.abs(p2_fit - ann).max() < 15.0  # the P2 fit is good to a few per cent


def test_each_day_is_computed_the_same_alone_or_in_a_batch():
    # the EBM tabulates a year of insolation at once and looks it up: the bits must not
    # depend on which other days were computed alongside
    days = np.linspace(0.0, 365.0, 257)
    batch = daily_insolation(LAT[::8], days)
    alone = np.stack([daily_insolation(LAT[::8], d) for d in days])
    assert np.array_equal(batch, alone)
