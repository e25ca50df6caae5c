"""Early-warning statistics with honest error rates (issue 11): batched indicators, Kendall τ,
surrogates, transitions, and the model-based likelihood-ratio test."""
from .indicators import INDICATORS, indicators
from .tau import kendall_tau

__all__ = ["INDICATORS", "indicators", "kendall_tau"]
