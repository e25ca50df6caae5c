"""Early-warning statistics with honest error rates (issue 11): batched indicators, Kendall τ,
surrogates, transitions, and the model-based likelihood-ratio test."""
from .indicators import INDICATORS, indicators
from .tau import kendall_tau
from .likelihood import fit_lsn, fit_ou, likelihood_ratio
from .bootstrap import bootstrap_lr
from .roc import auc, detection_rate, roc_curve
from .surrogates import surrogate_test
from .sensitivity import plot_tau_sensitivity, tau_sensitivity
from .transitions import allee_transition, first_crossing, may_transition

from .emulator import MayTruth, emulator_ews, recovery_rates, stochastic_rollouts

__all__ = ["MayTruth", "emulator_ews", "recovery_rates", "stochastic_rollouts", "INDICATORS", "indicators", "kendall_tau", "fit_ou", "fit_lsn", "likelihood_ratio", "bootstrap_lr",
           "auc", "detection_rate", "roc_curve", "surrogate_test", "tau_sensitivity", "plot_tau_sensitivity",
           "allee_transition", "first_crossing", "may_transition"]
