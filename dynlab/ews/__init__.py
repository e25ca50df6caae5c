"""Early-warning statistics with honest error rates (issue 11).

Batched indicators and Kendall τ (:func:`indicators`, :func:`kendall_tau`), surrogate
significance, τ sensitivity, transition detection, the model-based likelihood-ratio test
(OU vs linearised saddle-node) with its parametric bootstrap, ROC/AUC, the emulator-side
checks (:mod:`dynlab.ews.emulator`) and the ``dynlab ews`` pipeline (:func:`dynlab.ews.pipeline.ews`).
"""
from .bootstrap import bootstrap_lr
from .emulator import MayTruth, emulator_ews, recovery_rates, stochastic_rollouts
from .indicators import INDICATORS, indicators
from .likelihood import fit_lsn, fit_ou, likelihood_ratio
from .roc import auc, detection_rate, roc_curve
from .sensitivity import plot_tau_sensitivity, tau_sensitivity
from .surrogates import surrogate_test
from .tau import kendall_tau
from .transitions import allee_transition, first_crossing, may_transition

__all__ = ["INDICATORS", "indicators", "kendall_tau", "fit_ou", "fit_lsn", "likelihood_ratio", "bootstrap_lr",
           "auc", "detection_rate", "roc_curve", "surrogate_test", "tau_sensitivity", "plot_tau_sensitivity",
           "allee_transition", "first_crossing", "may_transition", "MayTruth", "emulator_ews", "recovery_rates",
           "stochastic_rollouts"]
