r"""ROC curves, AUC and the detection rate at a fixed false-alarm rate.

A score ranks series (a larger score means "a transition approaches"); the
negatives are series with no approaching bifurcation, the positives series with
one. An alarm is raised when the score exceeds a threshold.

* :func:`roc_curve`: false- and true-positive rates at every distinct threshold.
* :func:`auc`: :math:`P(S_+ > S_−) + \tfrac12 P(S_+ = S_−)` (Mann–Whitney), exact with ties.
* :func:`detection_rate`: the threshold is the smallest score whose alarm rate on the
  negatives, :math:`\#\{S_− > q\}/n_−`, is at most α; the detection rate is
  :math:`\#\{S_+ > q\}/n_+` (conservative with ties).

NaN scores (a failed fit, a series too short) never raise an alarm: they count
as −∞, and how many there were is the caller's to report.
"""
from __future__ import annotations

import numpy as np

__all__ = ["roc_curve", "auc", "detection_rate"]


def _scores(name, s):
    s = np.asarray(s, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError(f"{name} is empty: give at least one score")
    return np.where(np.isnan(s), -np.inf, s)


def roc_curve(negatives, positives) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: alarm when score > threshold, thresholds decreasing from
    +inf (nothing alarms) to −inf (everything does)."""
    neg, pos = _scores("negatives", negatives), _scores("positives", positives)
    thr = np.concatenate([[np.inf], np.unique(np.concatenate([neg, pos]))[::-1]])
    thr = np.concatenate([thr, [-np.inf]]) if thr[-1] != -np.inf else thr
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    fpr = 1 - np.searchsorted(neg_sorted, thr, side="right") / neg.size
    tpr = 1 - np.searchsorted(pos_sorted, thr, side="right") / pos.size
    fpr[-1] = tpr[-1] = 1.0
    return fpr, tpr, thr


def auc(negatives, positives) -> float:
    """Area under the ROC curve by ranks (ties count one half)."""
    neg, pos = np.sort(_scores("negatives", negatives)), _scores("positives", positives)
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (neg.size * pos.size))


def detection_rate(negatives, positives, alpha: float = 0.05) -> float:
    """Fraction of positives alarmed at a threshold whose false-alarm rate is at most ``alpha``."""
    if not (isinstance(alpha, (int, float)) and 0 <= alpha < 1):
        raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
    neg, pos = np.sort(_scores("negatives", negatives))[::-1], _scores("positives", positives)
    k = int(np.floor(alpha * neg.size + 1e-12))
    q = neg[k] if k < neg.size else -np.inf
    return float((pos > q).mean())
