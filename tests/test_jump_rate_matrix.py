"""Rate matrices: the flashing ratchet against PHYSICS.md, stationary laws against an
independent null-space computation, transition probabilities, the FIM-style prior, validation."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from simulators.jump import (check_rate_matrix, entropy_production, flashing_ratchet_rate_matrix,
                             initial_distribution, rate_matrix_from_rates, sample_rate_matrices,
                             stationary_distribution, transition_probabilities)


def ratchet_by_hand(V: float, r: float, b: float) -> np.ndarray:
    """The flashing ratchet written entry by entry from PHYSICS.md."""
    Q = np.zeros((6, 6))
    pot = [0.0, V, 2 * V]
    for i in range(3):
        for j in range(3):
            if i != j:
                Q[i, j] = np.exp(-(pot[j] - pot[i]) / 2)
    for i in range(3, 6):
        for j in range(3, 6):
            if i != j:
                Q[i, j] = b
    for i in range(3):
        Q[i, i + 3] = Q[i + 3, i] = r
    np.fill_diagonal(Q, -Q.sum(1))
    return Q


def null_space_pi(Q: np.ndarray) -> np.ndarray:
    v = scipy.linalg.null_space(Q.T)[:, 0]
    return v / v.sum()


def test_flashing_ratchet_matches_physics_numbers():
    Q = flashing_ratchet_rate_matrix(1.0, 1.0, 1.0)
    np.testing.assert_allclose(Q.numpy(), ratchet_by_hand(1.0, 1.0, 1.0), rtol=1e-15, atol=1e-15)
    pi = stationary_distribution(Q).numpy()
    np.testing.assert_allclose(pi, [0.301, 0.137, 0.062, 0.200, 0.159, 0.141], atol=6e-4)
    np.testing.assert_allclose(pi, null_space_pi(Q.numpy()), rtol=1e-12)
    # relaxation time 0.5: the slowest non-zero eigenvalue is -2
    eig = np.sort(np.linalg.eigvals(Q.numpy()).real)
    assert abs(-1.0 / eig[-2] - 0.5) < 1e-9
    assert abs(float(entropy_production(Q)) - 0.179) < 5e-4


@pytest.mark.parametrize("V,r,b", [(0.5, 2.0, 0.3), (2.0, 0.2, 1.5)])
def test_stationary_distribution_is_the_null_space(V, r, b):
    Q = flashing_ratchet_rate_matrix(V, r, b)
    np.testing.assert_allclose(Q.numpy(), ratchet_by_hand(V, r, b), rtol=1e-15, atol=1e-15)
    pi = stationary_distribution(Q)
    np.testing.assert_allclose(pi.numpy(), null_space_pi(Q.numpy()), rtol=1e-10)
    assert float((pi @ Q).abs().max()) < 1e-12


def test_transition_probabilities_are_stochastic_and_converge_to_pi():
    Q = flashing_ratchet_rate_matrix()
    P = transition_probabilities(Q, 0.7)
    np.testing.assert_allclose(P.numpy(), scipy.linalg.expm(0.7 * Q.numpy()), rtol=1e-12)
    np.testing.assert_allclose(P.sum(-1).numpy(), 1.0, rtol=1e-13)
    far = transition_probabilities(Q, 40.0)
    np.testing.assert_allclose(far.numpy(), np.tile(stationary_distribution(Q).numpy(), (6, 1)), atol=1e-12)


def test_entropy_production_vanishes_under_detailed_balance():
    # a symmetric rate matrix is reversible: no entropy production
    rates = torch.tensor([[0, 1.0, 2.0], [1.0, 0, 0.5], [2.0, 0.5, 0]], dtype=torch.float64)
    assert abs(float(entropy_production(rate_matrix_from_rates(rates)))) < 1e-14


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([[-1.0, 1.0], [-0.5, 0.5]]), r"rate_matrix\[1, 0\] = -0.5 is a negative rate"),
    (torch.tensor([[-1.0, 1.25], [0.5, -0.5]]), r"row \[0\] of rate_matrix sums to 0.25"),
    (torch.tensor([[-1.0, float("nan")], [0.5, -0.5]]), r"rate_matrix\[0, 1\] = nan is not finite"),
    (torch.zeros(2, 3), r"shape \(\.\.\., N, N\)"),
])
def test_bad_rate_matrices_are_refused_naming_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        check_rate_matrix(bad.to(torch.float64))


def test_prior_draws_valid_padded_generators_with_beta_rates():
    members = torch.arange(400)
    Q, n = sample_rate_matrices(members, seed=3, min_states=2, max_states=6, alpha=2.0, beta=5.0, rate_scale=3.0)
    assert Q.shape == (400, 6, 6) and n.dtype == torch.int64
    assert int(n.min()) == 2 and int(n.max()) == 6
    # number of states: uniform on {2, ..., 6}
    counts = np.bincount(n.numpy(), minlength=7)[2:]
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    check_rate_matrix(Q)
    idx = torch.arange(6)
    real = (idx[None, :] < n[:, None])
    pad = ~(real[:, :, None] & real[:, None, :])
    assert float(Q[pad].abs().max()) == 0.0
    off = real[:, :, None] & real[:, None, :] & ~torch.eye(6, dtype=torch.bool)
    rates = (Q[off] / 3.0).numpy()
    ks = scipy.stats.kstest(rates, scipy.stats.beta(2.0, 5.0).cdf)
    assert ks.pvalue > 1e-3, ks
    # a member's process depends on (seed, member) only
    Q2, n2 = sample_rate_matrices(torch.tensor([7, 399, 0]), seed=3, min_states=2, max_states=6,
                                  alpha=2.0, beta=5.0, rate_scale=3.0)
    assert torch.equal(Q2, Q[[7, 399, 0]]) and torch.equal(n2, n[[7, 399, 0]])


@pytest.mark.parametrize("kind", ["stationary", "uniform", "dirichlet"])
def test_initial_distributions_live_on_the_real_states(kind):
    members = torch.arange(50)
    Q, n = sample_rate_matrices(members, seed=1)
    p0 = initial_distribution(kind, Q, n, members, seed=1)
    np.testing.assert_allclose(p0.sum(1).numpy(), 1.0, rtol=1e-12)
    assert bool((p0 >= 0).all())
    assert float(p0[torch.arange(6)[None, :] >= n[:, None]].abs().max()) == 0.0
    if kind == "stationary":
        assert float(torch.einsum("mi,mij->mj", p0, Q).abs().max()) < 1e-12
    if kind == "dirichlet":  # random, not all equal
        assert float(p0[n == 6].std()) > 0.01
