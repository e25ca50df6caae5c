"""Evaluation against the reference physics: forecast skill, climate, spectra, reports.

Metric functions (:mod:`.metrics`, :mod:`.spectra`) take numpy/torch/xarray
arrays; :func:`evaluate_emulator` scores any Emulator on held-out members;
:func:`write_results` writes ``metrics.zarr``, ``summary.json``, ``report.md``
and figures. ``dynlab evaluate`` (:func:`dynlab.pipeline.evaluate.evaluate`)
does it for a training run, with the persistence and linear baselines.
"""
from .forecast import EvalSetup, evaluate_emulator, prepare_evaluation, score_emulator
from .metrics import (VPT_THRESHOLD, anomaly_correlation, anomaly_correlation_by_variable, climate_scale,
                      conservation_drift, first_exceedance_time, normalized_error, rmse, rmse_by_lead,
                      rmse_by_lead_and_variable, valid_prediction_time, variable_groups, wasserstein_by_variable)
from .reference import leading_lyapunov_exponent, reference_agreement_time
from .report import summary, write_results
from .spectra import mean_power_spectrum, spectral_divergence, spectral_residual

__all__ = [
    "EvalSetup", "prepare_evaluation", "score_emulator", "evaluate_emulator", "write_results", "summary",
    "rmse", "rmse_by_lead", "rmse_by_lead_and_variable", "anomaly_correlation", "anomaly_correlation_by_variable",
    "climate_scale", "normalized_error", "first_exceedance_time", "valid_prediction_time", "VPT_THRESHOLD",
    "wasserstein_by_variable", "conservation_drift", "variable_groups", "mean_power_spectrum",
    "spectral_divergence", "spectral_residual", "leading_lyapunov_exponent", "reference_agreement_time",
]
