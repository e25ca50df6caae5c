"""The tipping models the ``dynlab ews`` pipeline knows, keyed by system name.

Each entry says which output is the state, which the driver, which parameter is
the driver's start and which its ramp rate, where the fold is, and how a run's
transition is detected (:mod:`dynlab.ews.transitions`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .transitions import allee_threshold, may_threshold

__all__ = ["TippingModel", "TIPPING_MODELS"]


def _may_threshold(driver: np.ndarray, params: dict, method: str, fraction: float) -> np.ndarray:
    return may_threshold(driver, r=params.get("r", 1.0), K=params.get("K", 10.0), h=params.get("h", 1.0),
                         method=method, fraction=fraction)


def _may_fold(params: dict) -> float:
    from simulators.tipping import may_folds

    folds = may_folds(params.get("r", 1.0), params.get("K", 10.0), params.get("h", 1.0))
    return folds[-1].c if folds else float("nan")


def _allee_threshold(driver: np.ndarray, params: dict, method: str, fraction: float) -> np.ndarray:
    return allee_threshold(driver, N=params.get("N", 10), beta=params.get("beta", 4.0), A=params.get("A", 1.0),
                           nu=params.get("nu", 1.0), method=method, fraction=fraction)


def _allee_fold(params: dict) -> float:
    return (params.get("beta", 4.0) ** 0.5 - (params.get("nu", 1.0) * params.get("A", 1.0)) ** 0.5) ** 2


@dataclass(frozen=True)
class TippingModel:
    """``state``/``driver``: output names; ``start_key``/``rate_key``: the driver's parameters;
    ``threshold(driver, params, method, fraction)``: threshold of the state along the driver;
    ``fold(params)``: the driver's value at the fold; ``description``: one line for the report."""

    state: str
    driver: str
    start_key: str
    rate_key: str
    threshold: Callable[[np.ndarray, dict, str, float], np.ndarray]
    fold: Callable[[dict], float]
    description: str


TIPPING_MODELS: dict[str, TippingModel] = {
    "may_grazing": TippingModel("x", "c", "c", "c_rate", _may_threshold, _may_fold,
                                "May's grazing model, additive noise, Euler-Maruyama reflected at 0"),
    "allee": TippingModel("n", "mu", "mu", "mu_rate", _allee_threshold, _allee_fold,
                          "individual-based Allee population (exact SSA), death rate as the driver"),
}
