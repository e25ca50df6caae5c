r"""Parametric bootstrap of the likelihood ratio (Boettiger & Hastings 2012), batched.

For each observed series: fit the OU (A) and the LSN (B); simulate ``n``
replicates from A (the null) and ``n`` from B (the alternative), each on the
observed grid from the observed first point; fit both models to every replicate
(four fits per replicate) and form δ. The null and test distributions of δ give
the p-value of the observed δ, an ROC curve and its AUC (how well the data can
tell the two models apart at all). All replicates of all series are fitted in
one batch. Fits that fail and δ < 0 are counted, never dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .likelihood import fit_lsn, fit_ou, likelihood_ratio, simulate_lsn, simulate_ou
from .roc import auc, detection_rate

__all__ = ["LRBootstrap", "bootstrap_lr"]


@dataclass
class LRBootstrap:
    """Per series ``(B,)``: ``observed`` δ, ``p_value`` (fraction of null δ ≥ observed, +1
    smoothed), ``auc`` and ``power`` (detection at 5 % false alarms) of test vs null δ, ``m``
    (fitted ramp) and its ``m_stderr``; ``null``/``test`` ``(B, n)`` replicate δ;
    ``failed`` (fits not converged) and ``negative`` (δ < 0) counted over the 4·n fits."""

    observed: np.ndarray
    p_value: np.ndarray
    auc: np.ndarray
    power: np.ndarray
    m: np.ndarray
    m_stderr: np.ndarray
    null: np.ndarray
    test: np.ndarray
    failed: np.ndarray
    negative: np.ndarray


def bootstrap_lr(x, dt: float, *, n_replicates: int = 200, seed: int = 0, alpha: float = 0.05) -> LRBootstrap:
    """Parametric bootstrap of δ for each row of ``x`` ``(B, T)`` (or one series ``(T,)``)."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64)
    if x.ndim == 1:
        x = x[None]
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int) or n_replicates < 2:
        raise ValueError(f"n_replicates must be an integer >= 2, got {n_replicates!r}")
    B, T = x.shape
    delta, ou, lsn = likelihood_ratio(x, dt)
    gen = torch.Generator().manual_seed(int(seed))
    rep = lambda v: v.repeat_interleave(n_replicates)                  # noqa: E731  (B·n,)
    x0 = rep(x[:, 0])
    ok_ou = ou.converged
    r = torch.where(ok_ou, ou.r, torch.ones_like(ou.r))
    null = simulate_ou(x0, T - 1, dt, rep(r), rep(torch.nan_to_num(ou.theta)), rep(torch.nan_to_num(ou.sigma, nan=1.0)), gen)
    test = simulate_lsn(x0, T - 1, dt, rep(lsn.R0), rep(lsn.m), rep(lsn.theta), rep(lsn.sigma), gen)
    both = torch.cat([null, test])                                      # (2·B·n, T)
    ou_r = fit_ou(both, dt)
    lsn_r = fit_lsn(both, dt, init=ou_r)
    d = (-2 * (ou_r.loglik - lsn_r.loglik)).reshape(2, B, n_replicates).numpy()
    failed = ((~ou_r.converged).reshape(2, B, n_replicates).sum((0, 2))
              + (~lsn_r.converged).reshape(2, B, n_replicates).sum((0, 2))).numpy()
    negative = (d < 0).sum((0, 2))
    d_null, d_test = d[0], d[1]
    obs = delta.numpy()
    p = (1 + (np.nan_to_num(d_null, nan=-np.inf) >= obs[:, None]).sum(-1)) / (n_replicates + 1)
    p = np.where(np.isnan(obs), np.nan, p)
    return LRBootstrap(observed=obs, p_value=p,
                       auc=np.array([auc(d_null[b], d_test[b]) for b in range(B)]),
                       power=np.array([detection_rate(d_null[b], d_test[b], alpha) for b in range(B)]),
                       m=lsn.m.numpy(), m_stderr=lsn.stderr[:, 1].numpy(), null=d_null, test=d_test,
                       failed=failed + (~ou.converged).numpy() + (~lsn.converged).numpy(), negative=negative)
