r"""Top-of-atmosphere insolation: daily means from orbital geometry, annual means, the P2 fit.

Daily-mean insolation at latitude φ (Berger 1978; Hartmann, *Global Physical
Climatology*, ch. 2):

.. math::
    \bar Q = \frac{S_0}{\pi}\,\Big(\frac{1 + e\cos(λ - ϖ)}{1 - e^2}\Big)^2
             \big(h_0 \sin φ \sin δ + \cos φ \cos δ \sin h_0\big),

    \sin δ = \sin ε \sin λ, \qquad \cos h_0 = -\tan φ \tan δ \ \ (h_0 = π
    \text{ in polar day}, 0 \text{ in polar night}),

with solar constant :math:`S_0`, eccentricity :math:`e`, obliquity :math:`ε`,
the Sun's true longitude :math:`λ` counted from the vernal equinox, and the
longitude of perihelion :math:`ϖ` in the same (geocentric) convention: the
Earth–Sun distance is smallest when :math:`λ = ϖ` (≈ 283° today, early
January). The squared factor is :math:`(a/r)^2` from the orbit
:math:`r = a(1 - e^2)/(1 + e\cos(λ - ϖ))`.

The true longitude on a given day follows from Kepler's equation solved
exactly (Newton iterations) instead of Berger's series in :math:`e`: the mean
anomaly grows uniformly, :math:`M = M_{eq} + 2π (d - d_{eq})/Y`, from its value
:math:`M_{eq}` at the vernal equinox (day :math:`d_{eq}`, where λ = 0), then
:math:`E - e \sin E = M`, :math:`\tan(v/2) = \sqrt{(1+e)/(1-e)}\tan(E/2)`,
:math:`λ = v + ϖ`.

Calendar: day 0 is 1 January 0h; a year is :data:`DAYS_PER_YEAR` days; the
vernal equinox is on day 80 (21 March) unless told otherwise.

The annual mean is :math:`\bar Q_{ann}(φ) = \frac{1}{Y}\int_0^Y \bar Q\,dd`,
symmetric between hemispheres whatever ϖ; its global mean is
:math:`S_0 / (4\sqrt{1 - e^2})`. The P2 approximation is
:math:`S(φ) = \frac{S_0}{4}\big(1 + s_2 P_2(\sin φ)\big)` with
:math:`P_2(x) = (3x^2 - 1)/2` and :math:`s_2 ≈ -0.482` (North 1975).

All functions take and return float64 NumPy arrays (latitudes in degrees).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["DAYS_PER_YEAR", "legendre_p2", "solar_longitude", "declination", "daily_insolation",
           "annual_mean_insolation", "p2_insolation", "EARTH_ORBIT_1950"]

#: days in a (tropical) year; a model year is this long
DAYS_PER_YEAR = 365.2422
#: present-day orbit (Berger 1978, epoch 1950): eccentricity, obliquity (deg), longitude of perihelion (deg)
EARTH_ORBIT_1950 = {"eccentricity": 0.017236, "obliquity": 23.446, "perihelion_longitude": 281.37}
_KEPLER_ITERATIONS = 16


def legendre_p2(x: np.ndarray | float) -> np.ndarray | float:
    """Second Legendre polynomial :math:`P_2(x) = (3x^2 - 1)/2`."""
    return 1.5 * np.asarray(x) ** 2 - 0.5 if isinstance(x, np.ndarray) else 1.5 * x * x - 0.5


def _eccentric_anomaly(mean_anomaly: np.ndarray, eccentricity: float) -> np.ndarray:
    """Solve Kepler's equation :math:`E - e\\sin E = M` by Newton's method.

    A fixed number of iterations (round-off is reached in a handful for Earth-like
    orbits, and in ~10 even at e = 0.9) rather than a test on the whole array, so each
    element's result does not depend on the other days computed with it.
    """
    E = mean_anomaly + eccentricity * np.sin(mean_anomaly)
    for _ in range(_KEPLER_ITERATIONS):
        E = E - (E - eccentricity * np.sin(E) - mean_anomaly) / (1.0 - eccentricity * np.cos(E))
    return E


def solar_longitude(day: np.ndarray | float, *, eccentricity: float, perihelion_longitude: float,
                    day_of_vernal_equinox: float = 80.0, days_per_year: float = DAYS_PER_YEAR) -> np.ndarray:
    """True solar longitude λ (radians, in [0, 2π)) on calendar ``day`` (days since 1 January 0h).

    ``perihelion_longitude`` ϖ is in degrees (geocentric: λ = ϖ at perihelion).
    Shape: that of ``day``.
    """
    e = eccentricity
    varpi = math.radians(perihelion_longitude)
    # mean anomaly at the vernal equinox, where the true anomaly is v = λ − ϖ = −ϖ
    v_eq = -varpi
    E_eq = 2.0 * math.atan2(math.sqrt(1.0 - e) * math.sin(v_eq / 2), math.sqrt(1.0 + e) * math.cos(v_eq / 2))
    M_eq = E_eq - e * math.sin(E_eq)
    M = M_eq + 2.0 * math.pi * (np.asarray(day, dtype=np.float64) - day_of_vernal_equinox) / days_per_year
    E = _eccentric_anomaly(M, e)
    v = 2.0 * np.arctan2(math.sqrt(1.0 + e) * np.sin(E / 2), math.sqrt(1.0 - e) * np.cos(E / 2))
    return np.mod(v + varpi, 2.0 * math.pi)


def declination(longitude: np.ndarray, obliquity: float) -> np.ndarray:
    """Solar declination δ (radians): :math:`\\sin δ = \\sin ε \\sin λ`; ε in degrees."""
    return np.arcsin(math.sin(math.radians(obliquity)) * np.sin(longitude))


def daily_insolation(lat: np.ndarray, day: np.ndarray | float, *, solar_constant: float = 1365.2,
                     eccentricity: float = EARTH_ORBIT_1950["eccentricity"],
                     obliquity: float = EARTH_ORBIT_1950["obliquity"],
                     perihelion_longitude: float = EARTH_ORBIT_1950["perihelion_longitude"],
                     day_of_vernal_equinox: float = 80.0, days_per_year: float = DAYS_PER_YEAR) -> np.ndarray:
    """Daily-mean TOA insolation (W m⁻²) at latitudes ``lat`` (degrees) on ``day``.

    Shapes: ``lat`` ``(n_lat,)`` and ``day`` scalar → ``(n_lat,)``; ``day``
    ``(n_day,)`` → ``(n_day, n_lat)``.
    """
    lat = np.asarray(lat, dtype=np.float64)
    day_arr = np.asarray(day, dtype=np.float64)
    lam = solar_longitude(day_arr, eccentricity=eccentricity, perihelion_longitude=perihelion_longitude,
                          day_of_vernal_equinox=day_of_vernal_equinox, days_per_year=days_per_year)
    delta = declination(lam, obliquity)[..., None]  # (..., 1)
    distance_factor = ((1.0 + eccentricity * np.cos(lam - math.radians(perihelion_longitude)))
                       / (1.0 - eccentricity ** 2)) ** 2
    phi = np.radians(lat)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    sin_d, cos_d = np.sin(delta), np.cos(delta)
    # cos h0 = −tan φ tan δ, written without tan so the poles need no special case
    num, den = -sin_phi * sin_d, cos_phi * cos_d
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_h0 = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.sign(num))
    h0 = np.arccos(np.clip(cos_h0, -1.0, 1.0))  # π: polar day, 0: polar night
    q = (solar_constant / math.pi) * distance_factor[..., None] * (h0 * sin_phi * sin_d + cos_phi * cos_d * np.sin(h0))
    return np.maximum(q, 0.0)


def annual_mean_insolation(lat: np.ndarray, *, n_days: int = 3650, **orbit) -> np.ndarray:
    """Annual mean of :func:`daily_insolation` (midpoint rule over ``n_days`` equal
    intervals of the year), shape ``(n_lat,)``. ``orbit``: the keywords of
    :func:`daily_insolation`."""
    days_per_year = orbit.get("days_per_year", DAYS_PER_YEAR)
    days = (np.arange(n_days) + 0.5) * (days_per_year / n_days)
    return daily_insolation(lat, days, **orbit).mean(axis=0)


def p2_insolation(lat: np.ndarray, *, solar_constant: float = 1365.2, s2: float = -0.482) -> np.ndarray:
    """Annual-mean insolation in the P2 approximation, :math:`\\frac{S_0}{4}(1 + s_2 P_2(\\sin φ))`."""
    return solar_constant / 4.0 * (1.0 + s2 * legendre_p2(np.sin(np.radians(np.asarray(lat, dtype=np.float64)))))
