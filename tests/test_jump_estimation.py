"""Markov jump processes: the MLE rate matrix from exact paths and the metrics against the truth."""
import math

import numpy as np
import pytest
import torch

from dynlab.eval.jump import (compare_rate_matrices, entropy_production_rate, estimate_rate_matrix, hellinger,
                              mean_first_passage_times, relaxation_time, stationary_law, total_variation)
from dynlab.testing import assert_stationary_distribution_close
from simulators.jump import simulate_mjp, transition_probabilities

Q3 = np.array([[-1.5, 1.0, 0.5],
               [0.3, -0.8, 0.5],
               [1.2, 0.4, -1.6]])


def _paths(Q, n_paths=150, t_end=40.0, record=300, seed=3):
    Qt = torch.tensor(Q)[None]
    x0 = torch.zeros(1, n_paths, dtype=torch.int64)
    return simulate_mjp(Qt, x0, torch.tensor([0.0, t_end]), t_end=t_end, seed=seed, record_events=record)


def test_mle_recovers_a_known_rate_matrix_within_its_standard_errors():
    paths = _paths(Q3)
    assert int(paths.n_events.max()) <= paths.jump_time.shape[-1]
    est = estimate_rate_matrix(paths, t_end=40.0, n_states=3)
    # total holding time is the whole observed time; jumps counted = entries − 1 per path
    assert est.holding_time.sum() == pytest.approx(150 * 40.0, rel=1e-12)
    assert est.counts.sum() == int((paths.n_events - 1).sum())
    off = ~np.eye(3, dtype=bool)
    z = (est.rate_matrix[off] - Q3[off]) / est.standard_error[off]
    assert np.all(np.abs(z) < 3.0), z
    assert np.mean(z ** 2) < 3.0  # ~ chi-square / dof ≈ 1
    np.testing.assert_allclose(est.rate_matrix.sum(1), 0.0, atol=1e-12)
    assert est.visited.all()
    # and the same from the raw tensors
    again = estimate_rate_matrix(paths.jump_time[0], paths.jump_state[0], t_end=40.0, n_states=3,
                                 n_events=paths.n_events[0])
    np.testing.assert_array_equal(again.rate_matrix, est.rate_matrix)
    # the estimate passes the stationary check; its metrics are close to the truth's
    assert_stationary_distribution_close(est, Q3, max_tv=0.03)
    metrics = compare_rate_matrices(est, Q3)
    assert metrics["relaxation_time_rel_error"] < 0.1 and metrics["mfpt_rel_error"] < 0.15


def test_mle_by_hand_and_input_checks():
    # path 0: 0 (0–1) → 1 (1–3) → 0 (3–4); path 1: 1 (0–2.5) → 0 (2.5–4)
    t = torch.tensor([[0.0, 1.0, 3.0], [0.0, 2.5, math.nan]])
    s = torch.tensor([[0, 1, 0], [1, 0, -1]])
    est = estimate_rate_matrix(t, s, t_end=4.0, n_states=2)
    np.testing.assert_allclose(est.holding_time, [1.0 + 1.0 + 1.5, 2.0 + 2.5])
    np.testing.assert_allclose(est.rate_matrix, [[-1 / 3.5, 1 / 3.5], [2 / 4.5, -2 / 4.5]])
    np.testing.assert_allclose(est.standard_error[0, 1], 1 / 3.5)
    np.testing.assert_allclose(est.standard_error[1, 0], math.sqrt(2) / 4.5)
    with pytest.raises(ValueError, match="cut short"):
        estimate_rate_matrix(t, s, t_end=4.0, n_states=2, n_events=torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="n_states"):
        estimate_rate_matrix(t, s, t_end=4.0, n_states=1)
    with pytest.raises(ValueError, match="t_end"):
        estimate_rate_matrix(t, s, t_end=2.0, n_states=2)
    with pytest.raises(ValueError, match="itself"):
        estimate_rate_matrix(torch.tensor([[0.0, 1.0]]), torch.tensor([[1, 1]]), t_end=2.0, n_states=2)


def test_two_state_chain_by_hand():
    a, b = 0.7, 1.9
    Q = np.array([[-a, a], [b, -b]])
    np.testing.assert_allclose(stationary_law(Q), [b / (a + b), a / (a + b)])
    assert relaxation_time(Q) == pytest.approx(1 / (a + b))
    np.testing.assert_allclose(mean_first_passage_times(Q), [[0.0, 1 / a], [1 / b, 0.0]])
    assert entropy_production_rate(Q) == pytest.approx(0.0, abs=1e-12)  # detailed balance
    # relaxation: P(t) − 1π decays exactly like exp(−t/τ)
    tau, t = relaxation_time(Q), 0.8
    P = transition_probabilities(torch.tensor(Q), t).numpy()
    assert P[0, 0] - b / (a + b) == pytest.approx(a / (a + b) * math.exp(-t / tau))


def test_cyclic_chain_produces_entropy_and_reversible_chain_does_not():
    kp, km = 2.0, 0.5
    C = np.array([[-(kp + km), kp, km], [km, -(kp + km), kp], [kp, km, -(kp + km)]])
    np.testing.assert_allclose(stationary_law(C), [1 / 3] * 3)
    # three edges, current (kp − km)/3 each, affinity log(kp/km)
    assert entropy_production_rate(C) == pytest.approx((kp - km) * math.log(kp / km))
    # the hand formula of the issue: Σ_{i≠j} π_i Q_ij log(π_i Q_ij / π_j Q_ji) on a random reversible chain
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(4))
    S = rng.uniform(0.2, 1.0, (4, 4))
    S = S + S.T
    R = S / pi[:, None]  # π_i R_ij = S_ij symmetric: detailed balance
    np.fill_diagonal(R, 0.0)
    R -= np.diag(R.sum(1))
    np.testing.assert_allclose(stationary_law(R), pi, rtol=1e-10)
    assert entropy_production_rate(R) == pytest.approx(0.0, abs=1e-10)
    # MFPT against the renewal identity π_j m_ij summed over j (Kemeny's constant) being independent of i
    kemeny = (mean_first_passage_times(R) * pi[None, :]).sum(1)
    np.testing.assert_allclose(kemeny, kemeny[0], rtol=1e-10)


def test_perturbed_rate_matrix_fails_the_stationary_check_and_truth_passes():
    assert assert_stationary_distribution_close(Q3, Q3, max_tv=1e-12) == pytest.approx(0.0, abs=1e-12)
    wrong = Q3.copy()
    wrong[1, 0] *= 3.0  # state 1 leaks to 0 three times as fast
    wrong[1, 1] = -(wrong[1, 0] + wrong[1, 2])
    with pytest.raises(AssertionError, match="total variation"):
        assert_stationary_distribution_close(wrong, Q3, max_tv=0.05)
    metrics = compare_rate_matrices(wrong, Q3)
    assert metrics["rate_rmse"] == pytest.approx(math.sqrt((0.6 ** 2) / 6))
    assert metrics["stationary_tv"] > 0.05 and 0 < metrics["stationary_hellinger"] < 1
    with pytest.raises(ValueError, match="rows must sum to 0"):
        stationary_law(np.array([[-1.0, 0.5], [1.0, -1.0]]))


def test_distances_by_hand():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert total_variation(p, q) == pytest.approx(0.5)
    assert hellinger(p, q) == pytest.approx(math.sqrt(1 - 2 * math.sqrt(0.125)))
    assert hellinger(p, p) == 0.0 and total_variation(p, p) == 0.0
    with pytest.raises(ValueError, match="probability"):
        total_variation([0.5, 0.6], [0.5, 0.5])


def test_expm_likelihood_from_regular_observations_recovers_the_rate_matrix():
    from dynlab.eval.jump import estimate_rate_matrix_observed

    interval, t_end, n_paths = 0.5, 40.0, 150
    Qt = torch.tensor(Q3)[None]
    grid = torch.arange(0.0, t_end + 1e-9, interval)
    paths = simulate_mjp(Qt, torch.zeros(1, n_paths, dtype=torch.int64), grid, t_end=t_end, seed=5)
    est = estimate_rate_matrix_observed(paths.observed, interval=interval, n_states=3)
    off = ~np.eye(3, dtype=bool)
    z = (est.rate_matrix[off] - Q3[off]) / est.standard_error[off]
    assert np.all(np.abs(z) < 3.0), z
    np.testing.assert_allclose(est.rate_matrix.sum(1), 0.0, atol=1e-12)
    # the fit is a maximum: it beats the truth, and no single rate scaled by 1 ± 1e-3 does better
    def loglik(Q):
        return float((est.counts * np.log(transition_probabilities(torch.tensor(Q), interval).numpy())).sum())

    best = loglik(est.rate_matrix)
    assert best >= loglik(Q3)
    for i, j in zip(*np.nonzero(off)):
        for factor in (1 - 1e-3, 1 + 1e-3):
            Q = est.rate_matrix.copy()
            Q[i, j] *= factor
            Q[i, i] = -(Q[i].sum() - Q[i, i])
            assert loglik(Q) <= best + 1e-9
    # coarse observations lose information: larger standard errors than from the exact paths of the same length
    exact = estimate_rate_matrix(_paths(Q3, n_paths=n_paths, t_end=t_end), t_end=t_end, n_states=3)
    assert np.all(est.standard_error[off] > exact.standard_error[off])
    with pytest.raises(ValueError, match="interval"):
        estimate_rate_matrix_observed(paths.observed, interval=0.0, n_states=3)
    with pytest.raises(ValueError, match="never observed"):
        estimate_rate_matrix_observed(torch.zeros(2, 5, dtype=torch.int64), interval=1.0, n_states=2)
