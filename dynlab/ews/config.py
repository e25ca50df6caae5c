"""Schema of ``configs/ews.yaml`` (``dynlab ews``): dataclasses whose fields carry ``help`` and bounds.

``EWSConfig.from_cfg(cfg)`` checks a composed config against it with the shared schema
checker (:mod:`dynlab.schema`: unknown keys, types, bounds, choices) and raises
:class:`~dynlab.errors.ConfigError` naming the key.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Mapping

from ..schema import check, option

__all__ = ["EWSConfig", "TimeConfig", "AnalysisConfig", "ReportConfig"]


@dataclass
class TimeConfig:
    dt: float = option(0.05, "integration step (model time; the Allee SSA uses it only for the grid)", gt=0)
    save_every: float = option(1.0, "saving interval: one point of the analysed series", gt=0)
    spinup: float = option(20.0, "discarded spin-up before time 0 (the ramp starts at 0)", ge=0)
    t_end: float = option(300.0, "last saved time", gt=0)


@dataclass
class AnalysisConfig:
    detrend: str = option("gaussian", "detrending method", choices=("gaussian", "lowess", "linear", "none"))
    bandwidth: float = option(0.2, "Gaussian bandwidth, fraction of each analysed series", gt=0)
    span: float = option(0.2, "LOWESS span, fraction of each analysed series", gt=0)
    window: float = option(0.25, "rolling window, fraction of each analysed series", gt=0)
    indicators: list = option(["variance", "std", "ac1", "skewness", "kurtosis", "cv"],
                              "indicators whose Kendall tau is scored")
    threshold: str = option("unstable", "transition: below the unstable equilibrium, or a fraction of capacity",
                            choices=("unstable", "fraction"))
    fraction: float = option(0.5, "threshold fraction of the carrying capacity (threshold=fraction)", gt=0, lt=1)
    lead: float = option(10.0, "statistics stop this long (model time) before the detected transition", ge=0)
    min_points: int = option(40, "series with fewer analysed points are left out (and counted)", ge=10)
    length_step: int = option(5, "analysed lengths are rounded down to multiples of this (batching)", ge=1)
    likelihood: bool = option(True, "fit OU and LSN and score the likelihood ratio")
    lr_input: str = option("detrended", "series the OU/LSN are fitted to: residuals plus the series mean, or raw",
                           choices=("detrended", "raw"))


@dataclass
class ReportConfig:
    alpha: float = option(0.05, "false-alarm rate at which detection is reported", gt=0, lt=1)
    n_boot: int = option(500, "bootstrap replicates of the AUC/detection intervals", ge=1)
    ci: float = option(0.95, "coverage of the bootstrap intervals", gt=0, lt=1)
    lr_replicates: int = option(200, "parametric-bootstrap replicates of delta on the example series", ge=2)
    lr_series: int = option(1, "ramped series given the full parametric bootstrap of delta", ge=0)
    sensitivity: bool = option(True, "tau sensitivity figure over bandwidth x window")
    plots: bool = option(True, "write figures/*.png")


@dataclass
class EWSConfig:
    name: str = option("may_tipping", "name of the experiment (the preset sets it)")
    system: dict = option({"name": "may_grazing"}, "system name and parameters of the ramped ensemble")
    ramp_rate: float = option(0.003, "ramp rate of the driver in the ramped ensemble (per model time)", gt=0)
    stationary_rate: float = option(0.0, "ramp rate of the control ensemble (0: stationary)", ge=0)
    members: int = option(200, "members of each ensemble (ramped and stationary)", ge=2)
    time: TimeConfig = option(TimeConfig(), "time grid of both ensembles")
    analysis: AnalysisConfig = option(AnalysisConfig(), "indicator and transition settings")
    report: ReportConfig = option(ReportConfig(), "error-rate reporting")
    seed: int = option(0, "seed of both ensembles (the control uses members offset by `members`)", ge=0)
    device: str = option("cpu", "where indicators are computed: cpu, cuda, cuda:N")
    out: str = option("ews_runs/may_tipping", "output folder (created by dynlab; never a foreign folder)")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> "EWSConfig":
        """Check ``cfg`` against the schema (:func:`dynlab.schema.check`; one-line
        :class:`~dynlab.errors.ConfigError` naming the key) and build the config."""
        checked = check(dict(cfg), cls)
        hints = typing.get_type_hints(cls)
        return cls(**{k: hints[k](**v) if k in ("time", "analysis", "report") else v for k, v in checked.items()})
