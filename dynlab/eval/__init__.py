"""Evaluation against the reference physics: forecast skill, climate, spectra, reports.

Metric functions (:mod:`.metrics`, :mod:`.spectra`) take numpy/torch/xarray
arrays; :func:`evaluate_emulator` scores any Emulator on held-out members with the options of
:class:`~dynlab.eval.options.EvalOptions`; :func:`write_results` writes ``metrics.zarr``,
``summary.json`` (with bootstrap intervals from :func:`~dynlab.eval.stats.bootstrap`, paired
differences and the ranking), ``report.md`` and figures. ``dynlab evaluate``
(:func:`dynlab.pipeline.evaluate.evaluate`) does it for a training run, beside the baselines of
docs/baselines.md.
"""
from .forecast import EvalSetup, evaluate_emulator, prepare_evaluation, score_emulator
from .metrics import (VPT_THRESHOLD, VPT_THRESHOLDS, anomaly_correlation, anomaly_correlation_by_variable,
                      blowup_fraction, centred_anomaly_correlation, climate_scale, conservation_drift, crps_ensemble,
                      first_exceedance_time, last_valid_time, lead_below, normalized_error, rmse, rmse_by_lead,
                      rmse_by_lead_and_variable, spread_error_ratio, valid_prediction_time, variable_groups,
                      wasserstein_by_variable)
from .options import DEFAULT_BASELINES, EvalOptions
from .reference import LyapunovEstimate, leading_lyapunov_exponent, lyapunov_estimate, reference_agreement_time
from .report import summary, write_results
from .spectra import mean_power_spectrum, spectral_divergence, spectral_residual
from .stats import Interval, bootstrap

__all__ = [
    "EvalSetup", "prepare_evaluation", "score_emulator", "evaluate_emulator", "write_results", "summary",
    "rmse", "rmse_by_lead", "rmse_by_lead_and_variable", "anomaly_correlation", "anomaly_correlation_by_variable",
    "climate_scale", "normalized_error", "first_exceedance_time", "valid_prediction_time", "VPT_THRESHOLD",
    "wasserstein_by_variable", "conservation_drift", "variable_groups", "mean_power_spectrum",
    "spectral_divergence", "spectral_residual", "leading_lyapunov_exponent", "reference_agreement_time",
    "last_valid_time", "VPT_THRESHOLDS", "centred_anomaly_correlation", "lead_below", "crps_ensemble",
    "spread_error_ratio", "blowup_fraction", "EvalOptions", "DEFAULT_BASELINES", "LyapunovEstimate",
    "lyapunov_estimate", "bootstrap", "Interval",
]
