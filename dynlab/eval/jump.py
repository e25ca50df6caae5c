r"""Markov jump processes: the maximum-likelihood rate matrix from exact paths, and the
metrics any estimate of a rate matrix is compared with against the truth.

**Estimation.** For exact (continuously observed) paths of an MJP with generator
:math:`Q`, the log-likelihood is

.. math:: \ell(Q) = \sum_{i \ne j} n_{ij} \log Q_{ij} − \sum_i T_i \sum_{j \ne i} Q_{ij},

with :math:`n_{ij}` the number of jumps ``i → j`` and :math:`T_i` the total time
spent in ``i``; it is maximised by :math:`\hat Q_{ij} = n_{ij} / T_i` (Billingsley
1961; Albert 1962). Given :math:`T_i`, :math:`n_{ij}` is Poisson with mean
:math:`Q_{ij} T_i`, so the standard error is :math:`\sqrt{n_{ij}} / T_i`
(equivalently the inverse Fisher information :math:`Q_{ij}/T_i` at the MLE).

**Metrics** (all from the generators alone, float64 numpy):

* stationary law :math:`π Q = 0` (:func:`simulators.jump.stationary_distribution`),
  compared by total variation :math:`\tfrac12\sum_i|π_i − π'_i|` and Hellinger
  distance :math:`\sqrt{1 − \sum_i \sqrt{π_i π'_i}}`;
* relaxation time :math:`τ = −1/\mathrm{Re}\,μ_2`, with :math:`μ_2` the eigenvalue of
  :math:`Q` with the largest real part after :math:`μ_1 = 0`;
* mean first-passage times :math:`m_{ij}` (``m_jj = 0``), solving
  :math:`\sum_{k \ne j} Q_{ik} m_{kj} = −1` for ``i ≠ j``;
* entropy production rate :math:`σ = \sum_{i \ne j} π_i Q_{ij} \log\frac{π_i Q_{ij}}{π_j Q_{ji}}`
  (Schnakenberg 1976; zero exactly under detailed balance);
* rate RMSE over the off-diagonal entries.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simulators.jump import entropy_production as _entropy_production
from simulators.jump import stationary_distribution as _stationary_distribution

__all__ = ["RateEstimate", "estimate_rate_matrix", "estimate_rate_matrix_observed", "estimate_rate_matrix_one_step",
           "perturb_rate_matrix", "stationary_law", "relaxation_time", "mean_first_passage_times",
           "entropy_production_rate", "total_variation", "hellinger", "rate_rmse", "compare_rate_matrices",
           "FLOOR_METRICS", "sampling_floor", "floor_ratios"]


@dataclass
class RateEstimate:
    """The MLE of a rate matrix from exact paths.

    * ``rate_matrix`` ``(N, N)``: :math:`\\hat Q` (rows sum to 0; rows of unvisited states are 0);
    * ``standard_error`` ``(N, N)``: :math:`\\sqrt{n_{ij}}/T_i` off the diagonal (inf for
      unvisited states, 0 on the diagonal);
    * ``counts`` ``(N, N)``: jumps ``i → j``; ``holding_time`` ``(N,)``: :math:`T_i`;
    * ``visited`` ``(N,)``: states with :math:`T_i > 0`.
    """

    rate_matrix: np.ndarray
    standard_error: np.ndarray
    counts: np.ndarray
    holding_time: np.ndarray
    visited: np.ndarray


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if value is None:
        raise ValueError(f"{name} is required")
    return np.asarray(value)


def estimate_rate_matrix(jump_time: Any, jump_state: Any = None, *, t_end: float, n_states: int,
                         n_events: Any = None) -> RateEstimate:
    """Maximum-likelihood rate matrix from exact jump records, pooled over all paths.

    Args:
        jump_time: ``(..., E)`` times of the record (entry 0 the start state at time 0,
            entry e the e-th jump; padding NaN), or a
            :class:`~simulators.jump.paths.JumpPaths` (then ``jump_state`` and
            ``n_events`` come from it).
        jump_state: ``(..., E)`` integer states after each entry (padding −1).
        t_end: the end of the observation window (every path is observed on ``[0, t_end]``).
        n_states: ``N``.
        n_events: optional ``(...)`` entries each full record needs; a record cut short
            (``n_events > E``) is refused, since its end is unknown.

    Pass the paths of one process (one member); returns a :class:`RateEstimate`.
    """
    if hasattr(jump_time, "jump_time") and hasattr(jump_time, "jump_state"):
        paths = jump_time
        jump_time, jump_state, n_events = paths.jump_time, paths.jump_state, paths.n_events
        if jump_time is None:
            raise ValueError("the paths carry no jump record: simulate with record_events > 0")
    times = _as_numpy(jump_time, "jump_time").astype(np.float64)
    states = _as_numpy(jump_state, "jump_state")
    if times.shape != states.shape or times.ndim < 1 or times.shape[-1] < 1:
        raise ValueError(f"jump_time and jump_state must have the same shape (..., E >= 1), "
                         f"got {times.shape} and {states.shape}")
    if states.dtype.kind not in "iu":
        raise ValueError(f"jump_state must hold integer states, got dtype {states.dtype}")
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 2:
        raise ValueError(f"n_states must be an integer >= 2, got {n_states!r}")
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not math.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"t_end must be a finite number > 0, got {t_end!r}")
    E = times.shape[-1]
    times, states = times.reshape(-1, E), states.reshape(-1, E).astype(np.int64)
    if n_events is not None:
        need = _as_numpy(n_events, "n_events").reshape(-1)
        if need.size != times.shape[0]:
            raise ValueError(f"n_events must have one entry per path ({times.shape[0]}), got {need.size}")
        if need.size and int(need.max()) > E:
            raise ValueError(f"a jump record was cut short (a path needs {int(need.max())} entries, "
                             f"the record holds {E}): simulate with larger record_events")
    valid = states >= 0
    if not valid[:, 0].all():
        raise ValueError("every path's record must start with its state at time 0 (entry 0)")
    if (valid[:, 1:] & ~valid[:, :-1]).any():
        raise ValueError("jump records must be padded at the end only")
    if valid.any() and int(states[valid].max()) >= n_states:
        raise ValueError(f"states must lie in 0..{n_states - 1}, got {int(states[valid].max())}")
    if not np.isfinite(times[valid]).all() or (times[valid] > t_end).any():
        raise ValueError(f"jump times must be finite and <= t_end = {t_end}")
    # holding: from each entry to the next one (or to t_end after the last)
    next_valid = np.concatenate((valid[:, 1:], np.zeros((times.shape[0], 1), bool)), axis=1)
    t_next = np.where(next_valid, np.concatenate((times[:, 1:], np.full((times.shape[0], 1), t_end)), axis=1), t_end)
    hold = np.where(valid, t_next - times, 0.0)
    if (hold < 0).any():
        raise ValueError("jump times must be non-decreasing along each path")
    holding_time = np.bincount(states[valid], weights=hold[valid], minlength=n_states)
    jumps = valid[:, :-1] & valid[:, 1:]
    src, dst = states[:, :-1][jumps], states[:, 1:][jumps]
    if (src == dst).any():
        raise ValueError("a record holds a jump from a state to itself: not an MJP jump record")
    counts = np.bincount(src * n_states + dst, minlength=n_states * n_states).reshape(n_states, n_states)
    counts = counts.astype(np.float64)
    visited = holding_time > 0
    safe_T = np.where(visited, holding_time, 1.0)[:, None]
    rates = np.where(visited[:, None], counts / safe_T, 0.0)
    np.fill_diagonal(rates, 0.0)
    se = np.where(visited[:, None], np.sqrt(counts) / safe_T, np.inf)
    np.fill_diagonal(se, 0.0)
    Q = rates - np.diag(rates.sum(1))
    return RateEstimate(rate_matrix=Q, standard_error=se, counts=counts, holding_time=holding_time, visited=visited)


def _transition_counts(obs: np.ndarray, interval: Any, n_states: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked inputs of a regular-grid fit: the pair counts ``N_ab`` ``(N, N)`` and their row sums."""
    if obs.ndim < 1 or obs.shape[-1] < 2 or obs.dtype.kind not in "iu":
        raise ValueError(f"observed must be integer states of shape (..., T >= 2), got {obs.dtype} {obs.shape}")
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 2:
        raise ValueError(f"n_states must be an integer >= 2, got {n_states!r}")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not math.isfinite(interval) \
            or interval <= 0:
        raise ValueError(f"interval must be a finite number > 0, got {interval!r}")
    obs = obs.reshape(-1, obs.shape[-1]).astype(np.int64)
    if obs.min() < 0 or obs.max() >= n_states:
        raise ValueError(f"observed states must lie in 0..{n_states - 1}, got {obs.min()}..{obs.max()}")
    N = n_states
    pairs = np.bincount((obs[:, :-1] * N + obs[:, 1:]).reshape(-1), minlength=N * N).reshape(N, N).astype(np.float64)
    leaving = pairs.sum(1)
    if (leaving == 0).any():
        raise ValueError(f"states {np.flatnonzero(leaving == 0).tolist()} are never observed before a step: "
                         "their rates are not identifiable")
    return pairs, leaving


def estimate_rate_matrix_observed(observed: Any, *, interval: float, n_states: int, max_iter: int = 200,
                                  tol: float = 1e-10, standard_errors: bool = True) -> RateEstimate:
    r"""Maximum-likelihood rate matrix from paths observed on a regular grid (expm likelihood).

    With :math:`N_{ab}` the number of observed pairs :math:`(X_t, X_{t+Δ}) = (a, b)`, the
    log-likelihood is :math:`\ell(Q) = \sum_{ab} N_{ab} \log[\exp(Δ Q)]_{ab}`
    (Kalbfleisch & Lawless 1985). It is maximised over the log-rates
    :math:`θ_{ij} = \log Q_{ij}` (``i ≠ j``) by L-BFGS in float64, from the
    first-order guess :math:`Q_{ij} ≈ N_{ij} / (Δ \sum_b N_{ib})`. Standard errors by the
    delta method from the observed information (the Hessian of :math:`−\ell` in θ):
    :math:`\mathrm{se}(Q_{ij}) = Q_{ij}\,\mathrm{se}(θ_{ij})`. With regular observations the
    holding times are unknown: ``holding_time`` is the time spent per state counted at the
    observations (:math:`Δ \sum_b N_{ab}`), ``counts`` the pairs :math:`N_{ab}`.

    Args:
        observed: ``(..., T)`` integer states at times ``0, Δ, …, (T−1)Δ`` (pooled over paths).
        interval: Δ > 0.
        n_states: ``N``.
        max_iter: L-BFGS iterations; ``tol``: its gradient tolerance.
        standard_errors: compute the observed information (one Hessian, the costly part);
            ``False`` leaves ``standard_error`` NaN off the diagonal.
    """
    obs = _as_numpy(observed, "observed")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    N = n_states
    pairs, leaving = _transition_counts(obs, interval, n_states)
    off = ~np.eye(N, dtype=bool)
    guess = pairs / (interval * leaving[:, None])
    floor = 0.1 / (interval * leaving.sum())
    # log-rates bounded smoothly to [log floor, log(50 / interval)]: a rate the grid cannot resolve
    # (zero, or far faster than the sampling) stays finite instead of running away in the search
    lo, hi = math.log(floor), math.log(50.0 / interval)
    guess_theta = np.clip(np.log(np.maximum(guess[off], floor)), lo + 1e-6, hi - 1e-6)
    phi0 = torch.tensor(np.log((guess_theta - lo) / (hi - guess_theta)), dtype=torch.float64)
    counts = torch.tensor(pairs)
    off_t = torch.from_numpy(off)

    def log_rates(phi: torch.Tensor) -> torch.Tensor:
        return lo + (hi - lo) * torch.sigmoid(phi)

    def generator(theta: torch.Tensor) -> torch.Tensor:
        rates = torch.zeros(N, N, dtype=torch.float64).masked_scatter(off_t, theta.exp())
        return rates - torch.diag(rates.sum(1))

    def nll(phi: torch.Tensor) -> torch.Tensor:
        P = torch.linalg.matrix_exp(interval * generator(log_rates(phi)))
        return -(counts * torch.log(P.clamp_min(1e-300))).sum()

    phi = phi0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([phi], max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nll(phi)
        loss.backward()
        return loss

    opt.step(closure)
    phi = phi.detach()
    theta = log_rates(phi)
    if not standard_errors:
        se_theta = torch.full_like(theta, math.nan)
    else:
        hess = torch.autograd.functional.hessian(nll, phi)
        try:
            cov = torch.linalg.inv(hess)
            dtheta = (hi - lo) * torch.sigmoid(phi) * (1 - torch.sigmoid(phi))  # chain rule to the log-rates
            se_theta = cov.diagonal().clamp_min(0).sqrt() * dtheta
        except RuntimeError:  # singular information: a rate not identifiable from these data
            se_theta = torch.full_like(theta, math.inf)
    Q = generator(theta).numpy()
    se = np.zeros((N, N))
    se[off] = (theta.exp() * se_theta).numpy()
    return RateEstimate(rate_matrix=Q, standard_error=se, counts=pairs, holding_time=interval * leaving,
                        visited=leaving > 0)


def estimate_rate_matrix_one_step(observed: Any, *, interval: float, n_states: int) -> RateEstimate:
    r"""The naive one-step rate matrix :math:`\hat Q = (\hat P − I)/Δ` from regular observations.

    :math:`\hat P_{ab} = N_{ab} / \sum_b N_{ab}` is the maximum-likelihood transition matrix of
    the observed chain; reading it as :math:`I + ΔQ` ignores every path with more than one jump
    between observations, so :math:`\hat Q` is biased by :math:`O(Δ Q^2)` however many paths are
    observed (it underestimates the rates; it is always a valid generator). It is the comparison
    that shows what the expm likelihood (:func:`estimate_rate_matrix_observed`) buys. Standard
    errors from the multinomial counts: :math:`\sqrt{\hat P_{ab}(1 − \hat P_{ab}) / \sum_b N_{ab}}/Δ`.

    Args: as :func:`estimate_rate_matrix_observed` (``observed`` ``(..., T)`` integer states).
    """
    pairs, leaving = _transition_counts(_as_numpy(observed, "observed"), interval, n_states)
    P = pairs / leaving[:, None]
    Q = (P - np.eye(n_states)) / interval
    Q = Q - np.diag(Q.sum(1))  # exact zero row sums after rounding
    se = np.sqrt(P * (1 - P) / leaving[:, None]) / interval
    np.fill_diagonal(se, 0.0)
    return RateEstimate(rate_matrix=Q, standard_error=se, counts=pairs, holding_time=interval * leaving,
                        visited=leaving > 0)


def perturb_rate_matrix(rate_matrix: Any, *, scale: float = 0.3, seed: int = 0) -> np.ndarray:
    r"""A deliberately wrong generator: every positive off-diagonal rate times :math:`e^{s z_{ij}}`,
    :math:`z_{ij} \sim N(0, 1)` from ``numpy.random.default_rng(seed)``, diagonal re-balanced.

    A control for the floors: its metrics against the truth do not shrink with more data, so its
    ratios to the sampling floor grow like :math:`\sqrt{\text{data}}`. ``rate_matrix`` ``(N, N)`` →
    ``(N, N)``; zero rates stay zero (the same graph)."""
    q = _generator(rate_matrix)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    z = np.random.default_rng(int(seed)).standard_normal(q.shape)
    off = ~np.eye(q.shape[0], dtype=bool)
    out = np.where(off, q * np.exp(scale * z), 0.0)
    return out - np.diag(out.sum(1))


def _generator(Q: Any, name: str = "rate_matrix") -> np.ndarray:
    q = np.asarray(_as_numpy(Q, name), dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != q.shape[1] or q.shape[0] < 2:
        raise ValueError(f"{name} must be a square (N, N) matrix with N >= 2, got shape {q.shape}")
    off = q[~np.eye(q.shape[0], dtype=bool)]
    if not np.isfinite(q).all() or (off < 0).any():
        raise ValueError(f"{name} must be finite with off-diagonal rates >= 0")
    if np.abs(q.sum(1)).max() > 1e-8 * max(1.0, np.abs(q).max()):
        raise ValueError(f"{name}'s rows must sum to 0, got row sums up to {np.abs(q.sum(1)).max():.3g}")
    return q


def stationary_law(Q: Any) -> np.ndarray:
    """Stationary distribution ``(N,)`` of an irreducible generator ``(N, N)`` (:math:`π Q = 0`)."""
    q = _generator(Q)
    return _stationary_distribution(torch.from_numpy(q)).numpy()


def relaxation_time(Q: Any) -> float:
    r""":math:`τ = −1/\mathrm{Re}\,μ_2`: the slowest decay time of :math:`\exp(tQ)` toward π
    (inf if a second eigenvalue is 0, i.e. Q is reducible)."""
    q = _generator(Q)
    mu = np.linalg.eigvals(q)
    re = np.sort(mu.real)[::-1]  # re[0] ≈ 0
    return math.inf if re[1] >= -1e-14 * max(1.0, np.abs(q).max()) else -1.0 / float(re[1])


def mean_first_passage_times(Q: Any) -> np.ndarray:
    r"""``(N, N)`` mean first-passage times :math:`m_{ij}` from ``i`` to ``j`` (``m_jj = 0``):
    for each target ``j``, :math:`Q_{\bar j \bar j}\, m_{\cdot j} = −\mathbf 1` on the other states."""
    q = _generator(Q)
    N = q.shape[0]
    m = np.zeros((N, N))
    for j in range(N):
        rest = np.arange(N) != j
        m[rest, j] = np.linalg.solve(q[np.ix_(rest, rest)], -np.ones(N - 1))
    return m


def entropy_production_rate(Q: Any) -> float:
    r"""Stationary entropy production :math:`\sum_{i≠j} π_i Q_{ij}\log\frac{π_i Q_{ij}}{π_j Q_{ji}}`
    (inf where a jump has no reverse)."""
    return float(_entropy_production(torch.from_numpy(_generator(Q))))


def _distribution(p: Any, name: str) -> np.ndarray:
    p = np.asarray(_as_numpy(p, name), dtype=np.float64)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < -1e-12).any() or abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"{name} must be a probability vector (N,), got shape {p.shape} and sum {p.sum():.6g}")
    return np.clip(p, 0.0, None)


def total_variation(p: Any, q: Any) -> float:
    """Total variation distance :math:`\\tfrac12\\sum_i |p_i − q_i|` of two laws ``(N,)``."""
    p, q = _distribution(p, "p"), _distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    return 0.5 * float(np.abs(p - q).sum())


def hellinger(p: Any, q: Any) -> float:
    """Hellinger distance :math:`\\sqrt{\\tfrac12\\sum_i(\\sqrt{p_i}−\\sqrt{q_i})^2}` ∈ [0, 1]."""
    p, q = _distribution(p, "p"), _distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    return float(np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum()))


def rate_rmse(estimate: Any, truth: Any) -> float:
    """Root-mean-square error of the off-diagonal rates."""
    a, b = _generator(estimate, "estimate"), _generator(truth, "truth")
    if a.shape != b.shape:
        raise ValueError(f"estimate and truth must have the same shape, got {a.shape} and {b.shape}")
    off = ~np.eye(a.shape[0], dtype=bool)
    return float(np.sqrt(np.mean((a[off] - b[off]) ** 2)))


def compare_rate_matrices(estimate: Any, truth: Any) -> dict[str, float]:
    """Every metric of an estimated generator against the true one ``(N, N)``.

    Keys: ``stationary_tv``, ``stationary_hellinger``, ``relaxation_time`` and
    ``relaxation_time_true``, ``relaxation_time_rel_error``, ``mfpt_rel_error`` (the
    largest relative error of the off-diagonal mean first-passage times),
    ``entropy_production`` and ``entropy_production_true``, ``entropy_production_error``
    (:math:`|\\hat σ − σ|`; NaN when both are infinite), ``rate_rmse``.
    """
    if isinstance(estimate, RateEstimate):
        estimate = estimate.rate_matrix
    a, b = _generator(estimate, "estimate"), _generator(truth, "truth")
    if a.shape != b.shape:
        raise ValueError(f"estimate and truth must have the same shape, got {a.shape} and {b.shape}")
    pa, pb = stationary_law(a), stationary_law(b)
    ta, tb = relaxation_time(a), relaxation_time(b)
    ma, mb = mean_first_passage_times(a), mean_first_passage_times(b)
    off = ~np.eye(a.shape[0], dtype=bool)
    sa, sb = entropy_production_rate(a), entropy_production_rate(b)
    return {
        "stationary_tv": total_variation(pa, pb),
        "stationary_hellinger": hellinger(pa, pb),
        "relaxation_time": ta,
        "relaxation_time_true": tb,
        "relaxation_time_rel_error": abs(ta - tb) / tb,
        "mfpt_rel_error": float(np.max(np.abs(ma[off] - mb[off]) / mb[off])),
        "entropy_production": sa,
        "entropy_production_true": sb,
        "entropy_production_error": math.nan if math.isinf(sa) and math.isinf(sb) else abs(sa - sb),
        "rate_rmse": rate_rmse(a, b),
    }


#: the metrics of :func:`compare_rate_matrices` that are distances from the truth (0 for a perfect
#: estimate, first-order homogeneous in the estimation error): those with a sampling floor
FLOOR_METRICS = ("stationary_tv", "stationary_hellinger", "relaxation_time_rel_error", "mfpt_rel_error",
                 "entropy_production_error", "rate_rmse")


def sampling_floor(observed: Any, *, interval: float, n_states: int, n_splits: int = 4,
                   seed: int = 0) -> dict[str, float]:
    r"""The sampling floor of each distance in :data:`FLOOR_METRICS` for the paths of one process.

    The paths ``(P, T)`` are split at random into halves A and B (P ≥ 2; a single path is cut
    in time instead), the expm-likelihood MLE is fitted on each, and the distance
    :math:`d(\hat Q_A, \hat Q_B)` of :func:`compare_rate_matrices` is taken. To first order
    :math:`\hat Q_A − \hat Q_B` has covariance :math:`2 · 2\,\mathrm{Cov}(\hat Q) = 4\,\mathrm{Cov}(\hat Q)`
    (each half has half the data), so for a distance homogeneous of degree 1 in the error

    .. math:: \mathrm{floor}_k = \tfrac12\,\overline{d_k(\hat Q_A, \hat Q_B)}

    (mean over ``n_splits`` random splits) estimates :math:`E\,d_k(\hat Q, Q)`, the distance the
    full-data MLE has from the truth by sampling noise alone, without using the truth. An
    estimate whose distance from the truth is ≈ 1× the floor is as good as the data allow;
    a bias (e.g. of the one-step estimate) shows as a ratio ≫ 1 that grows with the data.

    Args:
        observed: ``(P, T)`` integer states of one process on a regular grid of step ``interval``.
        n_states: ``N``; n_splits: random halvings averaged (≥ 1); seed: their permutation seed.

    Returns ``{metric: floor}`` for the keys of :data:`FLOOR_METRICS`.
    """
    obs = _as_numpy(observed, "observed")
    if obs.ndim != 2 or obs.shape[1] < 2 or (obs.shape[0] < 2 and obs.shape[1] < 4):
        raise ValueError(f"observed must be (P, T) paths with P >= 2 (or one path with T >= 4), got shape {obs.shape}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 1:
        raise ValueError(f"n_splits must be an integer >= 1, got {n_splits!r}")
    rng = np.random.default_rng(seed)
    sums = dict.fromkeys(FLOOR_METRICS, 0.0)
    for _ in range(n_splits if obs.shape[0] >= 2 else 1):  # cutting one path in time has one way only
        if obs.shape[0] >= 2:
            order = rng.permutation(obs.shape[0])
            a, b = obs[np.sort(order[: obs.shape[0] // 2])], obs[np.sort(order[obs.shape[0] // 2:])]
        else:
            half = obs.shape[1] // 2
            a, b = obs[:, :half], obs[:, half:]
        fits = [estimate_rate_matrix_observed(x, interval=interval, n_states=n_states, standard_errors=False)
                for x in (a, b)]
        d = compare_rate_matrices(fits[0].rate_matrix, fits[1].rate_matrix)
        for k in FLOOR_METRICS:
            sums[k] += 0.5 * d[k]
    n = n_splits if obs.shape[0] >= 2 else 1
    return {k: v / n for k, v in sums.items()}


def floor_ratios(metrics: dict[str, float], floors: dict[str, float]) -> dict[str, float]:
    """``metrics[k] / floors[k]`` for the keys of :data:`FLOOR_METRICS` (NaN where the floor is 0 or
    not finite): 1 means as close to the truth as sampling noise allows."""
    missing = [k for k in FLOOR_METRICS if k not in metrics or k not in floors]
    if missing:
        raise ValueError(f"metrics and floors need the keys {missing} (from compare_rate_matrices / sampling_floor)")
    out = {}
    for k in FLOOR_METRICS:
        f = float(floors[k])
        out[k] = float(metrics[k]) / f if math.isfinite(f) and f > 0 else math.nan
    return out
