r"""CO₂ forcing scenarios: a time series of concentration, passed into a climate system.

A scenario maps model time ``t`` (years; ``t = 0`` is the end of the spin-up)
to an atmospheric CO₂ concentration in ppm. The radiative forcing that a
system derives from it is the logarithmic fit of Myhre et al. (1998),

.. math::  F(t) = F_{\log} \ln\frac{C(t)}{C_0}, \qquad F_{\log} = 5.35\ \mathrm{W\,m^{-2}},

which gives 3.71 W m⁻² per doubling. Scenarios are data, not special cases of
a system (DESIGN.md): a system holds one and asks it for ``co2(t)``.

* :class:`ConstantCO2` — fixed concentration (equilibrium runs at any multiple);
* :class:`AbruptCO2` — ``C₀`` before ``onset``, ``multiple · C₀`` from it on
  (``abrupt_2x``, ``abrupt_4x``);
* :class:`CompoundRampCO2` — ``C₀ (1 + rate)^{t − onset}`` from ``onset`` on
  (``ramp_1pct``, ``ramp_2pct``: 1 %/yr and 2 %/yr, forcing linear in time);
* :class:`CO2Path` — a user-supplied path of (year, ppm) points, linearly
  interpolated and held constant beyond its ends; :meth:`CO2Path.from_csv`
  reads one from a two-column CSV file.

:func:`make_scenario` builds one by name (the config's ``system.scenario``).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["AbstractScenario", "ConstantCO2", "AbruptCO2", "CompoundRampCO2", "CO2Path", "SCENARIOS",
           "make_scenario", "co2_forcing", "PREINDUSTRIAL_CO2", "MYHRE_FORCING_SCALE"]

#: preindustrial CO₂ (ppm), the default reference concentration C₀
PREINDUSTRIAL_CO2 = 280.0
#: W m⁻² per e-folding of CO₂ (Myhre et al. 1998): 5.35 ln 2 = 3.71 W m⁻² per doubling
MYHRE_FORCING_SCALE = 5.35


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def co2_forcing(co2: float | torch.Tensor, reference: float = PREINDUSTRIAL_CO2,
                scale: float = MYHRE_FORCING_SCALE) -> float | torch.Tensor:
    r"""Radiative forcing :math:`F = s \ln(C / C_0)` in W m⁻² (Myhre et al. 1998)."""
    if isinstance(co2, torch.Tensor):
        return scale * torch.log(co2 / reference)
    return scale * math.log(co2 / reference)


class AbstractScenario(ABC):
    """A CO₂ concentration path ``co2(t)`` in ppm, ``t`` in model years."""

    @abstractmethod
    def co2(self, t: float) -> float:
        """Concentration (ppm) at model time ``t`` (years)."""

    def co2_series(self, times: torch.Tensor | Sequence[float]) -> torch.Tensor:
        """Concentration at each of ``times``: float64 tensor of the same length."""
        times = torch.as_tensor(times, dtype=torch.float64)
        return torch.tensor([self.co2(float(t)) for t in times.reshape(-1)], dtype=torch.float64).reshape(times.shape)


@dataclass(frozen=True)
class ConstantCO2(AbstractScenario):
    """A fixed concentration ``ppm`` at all times."""

    ppm: float

    def __post_init__(self):
        object.__setattr__(self, "ppm", _positive("co2 (ppm)", self.ppm))

    def co2(self, t: float) -> float:
        return self.ppm


@dataclass(frozen=True)
class AbruptCO2(AbstractScenario):
    """``reference`` ppm before ``onset``, ``multiple · reference`` from ``onset`` (inclusive) on."""

    multiple: float
    reference: float = PREINDUSTRIAL_CO2
    onset: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "multiple", _positive("co2_multiple", self.multiple))
        object.__setattr__(self, "reference", _positive("co2_reference", self.reference))
        object.__setattr__(self, "onset", _finite("onset", self.onset))

    def co2(self, t: float) -> float:
        return self.reference * (self.multiple if t >= self.onset else 1.0)


@dataclass(frozen=True)
class CompoundRampCO2(AbstractScenario):
    r"""``reference · (1 + rate)^{t − onset}`` from ``onset`` on, ``reference`` before.

    The forcing grows linearly, :math:`F = 5.35 \ln(1 + r)\,(t - t_0)`; at 1 %/yr
    CO₂ doubles after ln 2 / ln 1.01 ≈ 69.7 years.
    """

    rate: float
    reference: float = PREINDUSTRIAL_CO2
    onset: float = 0.0

    def __post_init__(self):
        rate = _finite("co2 growth rate", self.rate)
        if rate <= -1.0:
            raise ValueError(f"co2 growth rate must be > -1 (per year), got {self.rate!r}")
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "reference", _positive("co2_reference", self.reference))
        object.__setattr__(self, "onset", _finite("onset", self.onset))

    def co2(self, t: float) -> float:
        if t <= self.onset:
            return self.reference
        return self.reference * math.exp(math.log1p(self.rate) * (t - self.onset))


@dataclass(frozen=True)
class CO2Path(AbstractScenario):
    """A prescribed path: ``years`` (strictly increasing model years) and ``ppm``.

    Linear interpolation between the points; before the first and after the
    last point the end values hold.
    """

    years: tuple[float, ...]
    ppm: tuple[float, ...]

    def __post_init__(self):
        years = tuple(_finite("co2_path year", y) for y in self.years)
        ppm = tuple(_positive("co2_path ppm", c) for c in self.ppm)
        if len(years) != len(ppm):
            raise ValueError(f"co2_path needs as many years as ppm values, got {len(years)} and {len(ppm)}")
        if not years:
            raise ValueError("co2_path must hold at least one (year, ppm) point, got none")
        bad = [i for i in range(1, len(years)) if years[i] <= years[i - 1]]
        if bad:
            i = bad[0]
            raise ValueError(f"co2_path years must increase strictly, got {years[i - 1]!r} then {years[i]!r}")
        object.__setattr__(self, "years", years)
        object.__setattr__(self, "ppm", ppm)

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> "CO2Path":
        """From ``[(year, ppm), ...]``."""
        try:
            pairs = [tuple(p) for p in points]
        except TypeError:
            raise ValueError(f"co2_path must be a list of (year, ppm) pairs, got {points!r}") from None
        wrong = [p for p in pairs if len(p) != 2]
        if wrong:
            raise ValueError(f"co2_path must be a list of (year, ppm) pairs, got the entry {list(wrong[0])!r}")
        return cls(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    @classmethod
    def from_csv(cls, path: str | Path) -> "CO2Path":
        """Read a two-column CSV file (year, ppm); a header line and ``#`` comments are skipped."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ValueError(f"co2_csv={str(path)!r} is not a file")
        rows = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                fields = [f.strip() for f in text.replace(";", ",").split(",")]
                try:
                    values = [float(f) for f in fields if f]
                except ValueError:
                    if not rows:  # a header line
                        continue
                    raise ValueError(f"co2_csv={str(path)!r} line {number}: not two numbers: "
                                     f"{line.strip()!r}") from None
                if len(values) != 2:
                    raise ValueError(f"co2_csv={str(path)!r} line {number}: expected 2 columns (year, ppm), "
                                     f"got {len(values)}: {line.strip()!r}")
                rows.append(values)
        if not rows:
            raise ValueError(f"co2_csv={str(path)!r} holds no (year, ppm) rows")
        return cls.from_points(rows)

    def co2(self, t: float) -> float:
        return float(np.interp(t, self.years, self.ppm))


def _constant(reference, multiple, path, csv):
    return ConstantCO2(multiple * reference)


def _abrupt(multiple_override):
    def build(reference, multiple, path, csv):
        return AbruptCO2(multiple if multiple_override is None else multiple_override, reference)
    return build


def _ramp(rate):
    def build(reference, multiple, path, csv):
        return CompoundRampCO2(rate, reference)
    return build


def _path(reference, multiple, path, csv):
    if path is None:
        raise ValueError("scenario=path needs co2_path, a list of [year, ppm] pairs")
    return CO2Path.from_points(path)


def _csv(reference, multiple, path, csv):
    if not csv:
        raise ValueError("scenario=csv needs co2_csv, the path of a two-column CSV file (year, ppm)")
    return CO2Path.from_csv(csv)


#: scenario name -> builder(reference, multiple, path, csv)
SCENARIOS: dict[str, Callable[..., AbstractScenario]] = {
    "constant": _constant,
    "abrupt": _abrupt(None),
    "abrupt_2x": _abrupt(2.0),
    "abrupt_4x": _abrupt(4.0),
    "ramp_1pct": _ramp(0.01),
    "ramp_2pct": _ramp(0.02),
    "path": _path,
    "csv": _csv,
}

# the options each scenario reads (others must stay at their defaults)
_USES = {"constant": {"co2_multiple"}, "abrupt": {"co2_multiple"}, "path": {"co2_path"}, "csv": {"co2_csv"}}


def make_scenario(name: str | AbstractScenario, *, co2_reference: float = PREINDUSTRIAL_CO2,
                  co2_multiple: float = 1.0, co2_path: Sequence[Sequence[float]] | None = None,
                  co2_csv: str | None = None) -> AbstractScenario:
    """Build a scenario by name (or pass an :class:`AbstractScenario` through).

    ``constant`` holds ``co2_multiple · co2_reference``; ``abrupt`` jumps to
    ``co2_multiple · co2_reference`` at t = 0; ``abrupt_2x``/``abrupt_4x`` are
    fixed multiples; ``ramp_1pct``/``ramp_2pct`` grow 1 or 2 % per year from
    t = 0; ``path`` interpolates ``co2_path`` ([[year, ppm], ...]); ``csv``
    reads the same from the file ``co2_csv``. Options a scenario does not use
    must be left at their defaults (a misplaced option is an error, not ignored).
    """
    _positive("co2_reference", co2_reference)
    _positive("co2_multiple", co2_multiple)
    if isinstance(name, AbstractScenario):
        return name
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(SCENARIOS)}")
    given = {"co2_multiple": co2_multiple != 1.0, "co2_path": co2_path is not None, "co2_csv": bool(co2_csv)}
    stray = sorted(k for k, v in given.items() if v and k not in _USES.get(name, set()))
    if stray:
        raise ValueError(f"scenario={name!r} does not use {', '.join(stray)}; "
                         f"remove it or choose a scenario that reads it")
    return SCENARIOS[name](float(co2_reference), float(co2_multiple), co2_path, co2_csv)
