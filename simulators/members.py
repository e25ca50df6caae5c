r"""Parameters drawn per member: ``randomize={name: [low, high]}``.

A system whose parameter ``name`` is listed in ``randomize`` draws it for every
member uniformly on ``(low, high]`` from the member's own counter-based stream
(``STREAM_PARAMS``): parameter ``randomizable[i]`` is element ``i`` of one
uniform draw of that stream, so a member's value depends only on
``(seed, member index)`` and adding another drawn parameter does not change it.
The driver (:func:`simulators.run_members`) binds the drawn values to the
system (``bind``) and stores them as variables on ``member``. Used by the
Hamiltonian systems (masses, lengths, friction) and the climate models (the
CO₂ level ``co2_multiple``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .random import STREAM_PARAMS

if TYPE_CHECKING:
    from .random import CounterRNG

__all__ = ["check_range", "check_randomize", "draw_member_parameters", "check_member_values"]


def check_range(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                strict_low: bool = True) -> tuple[float, float]:
    """Validate a ``[a, b]`` pair of finite reals with ``a <= b`` (and within
    ``low``/``high`` if given); return it as a tuple of floats."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"parameter {name} must be a pair [low, high], got {value!r}")
    a, b = value
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"parameter {name} must hold two finite numbers, got {value!r}")
    a, b = float(a), float(b)
    if a > b:
        raise ValueError(f"parameter {name} must satisfy low <= high, got {value!r}")
    if low is not None and (a <= low if strict_low else a < low):
        raise ValueError(f"parameter {name} must lie above {low}, got {value!r}")
    if high is not None and b >= high:
        raise ValueError(f"parameter {name} must lie below {high}, got {value!r}")
    return a, b


def check_randomize(params: Any, randomize: Any, randomizable: Sequence[str]) -> dict[str, tuple[float, float]] | None:
    """Validate ``randomize`` of the frozen dataclass ``params``: a mapping of names in
    ``randomizable`` to ``[low, high]`` whose ends are each valid values of the
    parameter (checked by rebuilding ``params`` with that value). Returns the
    ranges in ``randomizable`` order, or ``None`` when there are none."""
    if randomize is None:
        return None
    if not isinstance(randomize, Mapping):
        raise ValueError(f"parameter randomize must map parameter names to [low, high], got {randomize!r}")
    unknown = sorted(set(randomize) - set(randomizable))
    if unknown:
        raise ValueError(f"parameter randomize names {', '.join(map(repr, unknown))}, which cannot be drawn "
                         f"per member; allowed: {', '.join(randomizable) or 'none'}")
    ranges = {}
    for name in randomizable:  # a fixed order: the draw of a parameter never depends on the others
        if name not in randomize:
            continue
        low, high = check_range(f"randomize.{name}", randomize[name])
        for end in (low, high):
            try:
                dataclasses.replace(params, randomize=None, **{name: end})
            except ValueError as err:
                raise ValueError(f"parameter randomize.{name}={[low, high]!r} allows an invalid value: "
                                 f"{err}") from None
        ranges[name] = (low, high)
    return ranges or None


def draw_member_parameters(rng: "CounterRNG", randomizable: Sequence[str],
                           ranges: Mapping[str, tuple[float, float]] | None, dtype: torch.dtype = torch.float64,
                           device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Draw the ``ranges`` parameters: ``name -> (M,)``, uniform on ``(low, high]``, element
    ``randomizable.index(name)`` of one uniform draw of each member's ``STREAM_PARAMS`` stream."""
    if not ranges:
        return {}
    u = rng.uniform((len(randomizable),), stream=STREAM_PARAMS, dtype=torch.float64)
    out = {}
    for i, name in enumerate(randomizable):
        if name in ranges:
            low, high = ranges[name]
            out[name] = (low + (high - low) * u[:, i]).to(dtype=dtype, device=device)
    return out


def check_member_values(params: Any, system_name: str, values: Mapping[str, Any],
                        randomizable: Sequence[str]) -> dict[str, torch.Tensor]:
    """Validate per-member values ``name -> (M,)`` against ``params`` (every value must be
    a valid value of the parameter, all of one length M ≥ 1); return them as tensors."""
    out, sizes = {}, set()
    for name, value in values.items():
        if name not in randomizable:
            raise ValueError(f"{system_name} cannot bind per-member values of {name!r}; "
                             f"allowed: {', '.join(randomizable) or 'none'}")
        value = torch.as_tensor(value)
        if value.ndim != 1 or value.numel() == 0:
            raise ValueError(f"per-member values of {name} must have shape (M,), got {tuple(value.shape)}")
        for end in (float(value.min()), float(value.max())):  # the constraints are intervals
            try:
                dataclasses.replace(params, randomize=None, **{name: end})
            except ValueError as err:
                raise ValueError(f"per-member values of {name}: {err}") from None
        sizes.add(value.shape[0])
        out[name] = value
    if len(sizes) > 1:
        raise ValueError(f"per-member values must all have the same length, got {sorted(sizes)}")
    return out
