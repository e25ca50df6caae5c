"""The evaluation options: one dataclass, the schema of the ``eval:`` section of ``configs/evaluate.yaml``.

Each field carries ``metadata``: ``help`` (one line) and, where they apply, the numeric
bounds ``ge``/``gt``/``le``/``lt`` and ``choices`` (COMMON.md, config keys). The YAML holds
only values that differ from these defaults. :meth:`EvalOptions.from_dict` checks names,
types and bounds and raises :class:`~dynlab.errors.ConfigError` with a one-line message.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from numbers import Real
from typing import Any, Mapping

from ..errors import ConfigError
from ..schema import check, check_value, option

__all__ = ["EvalOptions", "DEFAULT_BASELINES"]

#: the baselines scored beside every emulator (those that do not apply to a dataset are
#: skipped with a note: the numerical models need a deterministic system and the whole state)
DEFAULT_BASELINES = ("persistence", "damped_persistence", "climatology", "linear", "euler", "heun", "rk4",
                     "imperfect")


@dataclass
class EvalOptions:
    """How an emulator is evaluated (see :mod:`dynlab.eval.forecast` for what each score is)."""

    context: int | None = option(None, "warm-up steps before each forecast (None: the run's data.context)", ge=1)
    horizon: int = option(100, "forecast steps H (leads 1..H, in saved steps)", ge=1)
    starts_per_member: int = option(32, "forecasts per test member, start times spread evenly", ge=1)
    long_rollout: int = option(1000, "steps of the free rollouts for the climate scores and blow-up (0: skip)", ge=0)
    threshold: float = option(0.4, "epsilon of the primary VPT (variable vpt) and of the integrator agreement",
                              gt=0)
    thresholds: list = option([0.4, 0.5], "epsilons at which the VPT is reported (variable vpt_eps)")
    vpt_interpolate: bool = option(False, "place the VPT at the interpolated crossing instead of the last valid save")
    batch_size: int = option(256, "forecasts per batch", ge=1)
    baselines: list = option(list(DEFAULT_BASELINES), "learners scored beside the emulator (LEARNERS names)")
    baseline_options: dict = option({}, "per-baseline learner options, e.g. {polynomial: {points: 4}}")
    linear_ridge: float = option(1e-6, "ridge of the linear baseline (normalised increments)", ge=0)
    imperfect_error: float = option(0.01, "relative error of the imperfect model's parameter (docs/baselines.md)",
                                    gt=-1)
    baseline_members: int = option(64, "training members read for the climatology, sigma_clim and baseline fits",
                                   ge=1)
    lyapunov: Any = option("auto", "VPT in Lyapunov times: auto (not for two-scale systems), true, false",
                           choices=("auto", True, False))
    lyapunov_time: float = option(50.0, "averaging time of the lambda_1 estimate (cached)", gt=0)
    lyapunov_transient: float = option(5.0, "alignment time before the lambda_1 average", ge=0)
    lyapunov_members: int = option(8, "training members whose trajectories give lambda_1 and its standard error",
                                   ge=1)
    lyapunov_sigmas: float = option(3.0, "lambda_1 is used only when it exceeds this many standard errors", ge=0)
    lambda1: float | None = option(None, "give lambda_1 instead of computing it (taken as exact)")
    agreement: bool = option(True, "cap VPT where RK4 and Dormand-Prince part ways")
    agreement_rtol: float = option(1e-9, "Dormand-Prince rtol of the agreement run", gt=0)
    agreement_atol: float = option(1e-11, "Dormand-Prince atol of the agreement run", gt=0)
    acc_level: float = option(0.6, "report the first lead at which the ACC falls below this", gt=-1, le=1)
    ensemble_size: int = option(16, "rollouts per forecast for CRPS and spread-error (systems with noise)", ge=2)
    blowup_bound: float = option(10.0, "a rollout blows up when |x - climatology| > bound * sigma_clim", gt=0)
    n_boot: int = option(1000, "bootstrap replicates (resampling test members)", ge=1)
    ci: float = option(0.95, "coverage of the bootstrap intervals", gt=0, lt=1)
    seed: int = option(0, "seed of the bootstrap draws", ge=0)
    spectrum_nperseg: int = option(256, "Welch segment length of the power spectra", ge=4)
    spectrum_tail: float = option(0.5, "spectral divergence over f >= tail * Nyquist", ge=0, lt=1)
    bins: int = option(50, "histogram bins of the marginals", ge=2)
    climate_floor: bool = option(True, "climate scores of the emulator's long rollouts against the truth-vs-truth "
                                       "floor (needs 2x the test members among the training members)")
    climate_transient: int = option(100, "saves of each long rollout dropped before the climate scores", ge=0)
    lyapunov_exponents: int = option(0, "leading Lyapunov exponents of the emulator's one-step map, beside the "
                                        "reference system's by the same code (0: skip)", ge=0)
    lyapunov_steps: int = option(400, "steps of the emulator's Lyapunov estimate (a tenth more are transient)",
                                 ge=10)
    plots: bool = option(True, "write figures/*.png")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_value(getattr(self, f.name), hints[f.name], f.metadata, f"eval.{f.name}"))
        if not self.thresholds or any(isinstance(t, bool) or not isinstance(t, Real) or not t > 0
                                      for t in self.thresholds):
            raise ConfigError(f"eval.thresholds must be a non-empty list of numbers > 0, got {self.thresholds!r}")
        self.thresholds = sorted({float(t) for t in self.thresholds})
        if isinstance(self.baselines, str):
            self.baselines = [self.baselines]
        if not all(isinstance(b, str) for b in self.baselines):
            raise ConfigError(f"eval.baselines must be a list of learner names, got {self.baselines!r}")
        if not isinstance(self.baseline_options, Mapping):
            raise ConfigError(f"eval.baseline_options must be a mapping name -> options, got {self.baseline_options!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "EvalOptions":
        """Options from a mapping (an ``eval:`` section); unknown keys raise ConfigError naming them."""
        return cls(**check(dict(values or {}), cls, "eval"))

    def replace(self, **changes: Any) -> "EvalOptions":
        """A copy with ``changes`` (checked like :meth:`from_dict`)."""
        return EvalOptions.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def non_defaults(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what a YAML file needs to hold)."""
        default = EvalOptions()
        return {k: v for k, v in self.to_dict().items() if v != getattr(default, k)}
