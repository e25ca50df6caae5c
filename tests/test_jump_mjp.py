"""Exact MJP paths against the laws of the rate matrix: occupation against the
stationary distribution (null space of Q), transitions against expm(tQ), holding
times exponential, jump choices Q_ij/(-Q_ii); the observations against the jump
record; absorbing states; batching that does not change a path."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from simulators.jump import (flashing_ratchet_rate_matrix, irregular_grid, path_keys, regular_grid, simulate_mjp,
                             stationary_distribution)

Q_RATCHET = flashing_ratchet_rate_matrix()
PI_RATCHET = stationary_distribution(Q_RATCHET).numpy()


def chi_square_p(counts: np.ndarray, probabilities: np.ndarray) -> float:
    expected = probabilities / probabilities.sum() * counts.sum()
    return float(scipy.stats.chisquare(counts, expected).pvalue)


def test_occupation_matches_the_stationary_distribution():
    """Long paths observed every 2.5 time units (five relaxation times, correlation e^-5)."""
    P, t_end = 200, 500.0
    x0 = torch.zeros(1, P, dtype=torch.int64)  # far from stationary: the first 10 time units are dropped
    obs = regular_grid(t_end, 201)
    paths = simulate_mjp(Q_RATCHET[None], x0, obs, t_end=t_end, seed=11)
    states = paths.observed[0, :, 4:].reshape(-1).numpy()
    counts = np.bincount(states, minlength=6)
    p = chi_square_p(counts, PI_RATCHET)
    print(f"occupation chi-square p = {p:.3f}; empirical {np.round(counts / counts.sum(), 4)}")
    assert p > 1e-3
    np.testing.assert_allclose(counts / counts.sum(), PI_RATCHET, atol=0.01)


def test_transition_frequencies_match_expm():
    """Paths started in each state i; the state at t=0.4 is multinomial with row i of expm(0.4 Q)."""
    P, t = 1500, 0.4
    x0 = torch.arange(6).repeat_interleave(P).reshape(1, 6 * P)
    paths = simulate_mjp(Q_RATCHET[None], x0, torch.tensor([t], dtype=torch.float64), t_end=t, seed=5)
    final = paths.observed[0, :, 0].reshape(6, P).numpy()
    P_t = scipy.linalg.expm(t * Q_RATCHET.numpy())
    stat, dof = 0.0, 0
    for i in range(6):
        counts = np.bincount(final[i], minlength=6)
        expected = P_t[i] * P
        stat += float(((counts - expected) ** 2 / expected).sum())
        dof += 5
    p = float(scipy.stats.chi2.sf(stat, dof))
    print(f"transition chi-square {stat:.1f} on {dof} dof, p = {p:.3f}")
    assert p > 1e-3


def jump_record(seed: int, P: int = 400, t_end: float = 25.0):
    x0 = torch.arange(P).remainder(6).reshape(1, P)
    paths = simulate_mjp(Q_RATCHET[None], x0, regular_grid(t_end, 26), t_end=t_end, seed=seed, record_events=400)
    assert int(paths.n_events.max()) <= 400
    return paths


def test_holding_times_are_exponential_and_jumps_follow_the_rates():
    paths = jump_record(seed=2)
    times, states, n = paths.jump_time[0].numpy(), paths.jump_state[0].numpy(), paths.n_events[0].numpy()
    exit_rate = -np.diag(Q_RATCHET.numpy())
    scaled, moves = [], np.zeros((6, 6))
    for p in range(times.shape[0]):
        k = n[p]
        s, tt = states[p, :k], times[p, :k]
        scaled.append(np.diff(tt) * exit_rate[s[:-1]])  # complete sojourns (the last one is censored)
        np.add.at(moves, (s[:-1], s[1:]), 1)
        assert not np.any(s[1:] == s[:-1]), "a jump must change the state"
        assert np.all(np.isnan(times[p, k:])) and np.all(states[p, k:] == -1)
    scaled = np.concatenate(scaled)
    ks = scipy.stats.kstest(scaled, "expon")
    print(f"holding times: {scaled.size} sojourns, KS D = {ks.statistic:.4f}, p = {ks.pvalue:.3f}")
    assert ks.pvalue > 1e-3
    jump_prob = Q_RATCHET.numpy() / exit_rate[:, None]
    np.fill_diagonal(jump_prob, 0.0)
    for i in range(6):
        assert moves[i, i] == 0
        others = [j for j in range(6) if jump_prob[i, j] > 0]
        assert moves[i].sum() == moves[i, others].sum(), "a jump without rate"
        p = chi_square_p(moves[i, others], jump_prob[i, others])
        assert p > 1e-4, (i, moves[i], jump_prob[i])


@pytest.mark.parametrize("grid", ["regular", "irregular"])
def test_observations_agree_with_the_jump_record(grid):
    P, t_end = 50, 6.0
    keys = path_keys(range(2), P)
    obs = regular_grid(t_end, 61) if grid == "regular" else irregular_grid(keys, 3, 40, t_end)
    x0 = torch.arange(2 * P).remainder(6).reshape(2, P)
    Q = torch.stack([Q_RATCHET, flashing_ratchet_rate_matrix(2.0, 0.5, 3.0)])
    paths = simulate_mjp(Q, x0, obs, t_end=t_end, seed=8, record_events=200)
    assert paths.jump_time.shape == (2, P, 200)
    assert torch.equal(paths.jump_state[..., 0], x0)  # entry 0: X(0)
    times = obs.expand(2, P, -1) if obs.ndim == 1 else obs
    for m in range(2):
        for p in range(P):
            k = int(paths.n_events[m, p])
            jt, js = paths.jump_time[m, p, :k], paths.jump_state[m, p, :k]
            assert bool((jt.diff() > 0).all()) and float(jt[-1]) <= t_end
            last = torch.searchsorted(jt, times[m, p], right=True) - 1  # last jump at or before s
            assert torch.equal(paths.observed[m, p], js[last])


def test_an_absorbing_state_stops_the_path():
    Q = torch.tensor([[[-2.0, 1.5, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, -1.0]]], dtype=torch.float64)
    paths = simulate_mjp(Q, torch.zeros(1, 300, dtype=torch.int64), regular_grid(30.0, 31), t_end=30.0, seed=0,
                         record_events=100)
    final = paths.observed[0, :, -1]
    assert bool((final == 1).all())  # absorbed (with probability 1 - e^-O(30))
    for p in range(300):
        k = int(paths.n_events[0, p])
        assert int(paths.jump_state[0, p, k - 1]) == 1
        assert bool((paths.observed[0, p, (paths.observed[0, p] == 1).nonzero()[0, 0]:] == 1).all())


def test_a_path_does_not_depend_on_its_batch():
    """Paths of members [0, 1, 2] in one batch, and member 2 alone with fewer paths: equal bits."""
    Q = torch.stack([Q_RATCHET, flashing_ratchet_rate_matrix(1.5, 0.5, 2.0), flashing_ratchet_rate_matrix(0.5)])
    x0 = torch.arange(3 * 40).remainder(6).reshape(3, 40)
    obs = irregular_grid(path_keys(range(3), 40), 1, 20, 8.0)
    every = simulate_mjp(Q, x0, obs, t_end=8.0, seed=4, record_events=64)
    alone = simulate_mjp(Q[2:], x0[2:, :7], obs[2:, :7], t_end=8.0, seed=4, members=[2], record_events=64)
    assert torch.equal(alone.observed[0], every.observed[2, :7])
    torch.testing.assert_close(alone.jump_time[0], every.jump_time[2, :7], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(alone.jump_state[0], every.jump_state[2, :7])


def test_bad_initial_states_are_refused():
    with pytest.raises(ValueError, match=r"initial states must lie in 0..5, got values in 0..6"):
        simulate_mjp(Q_RATCHET[None], torch.tensor([[0, 6]]), regular_grid(1.0, 3), t_end=1.0)
    with pytest.raises(ValueError, match=r"observation times must lie in \[0, t_end=1.0\], got 1.5"):
        simulate_mjp(Q_RATCHET[None], torch.tensor([[0, 1]]), torch.tensor([0.5, 1.5]), t_end=1.0)


@pytest.mark.gpu
def test_cuda_paths_have_the_right_law():
    P = 20000
    x0 = torch.zeros(1, P, dtype=torch.int64, device="cuda")
    paths = simulate_mjp(Q_RATCHET[None].cuda(), x0, torch.tensor([3.0], dtype=torch.float64, device="cuda"), t_end=3.0, seed=0)
    counts = np.bincount(paths.observed[0, :, 0].cpu().numpy(), minlength=6)
    expected = scipy.linalg.expm(3.0 * Q_RATCHET.numpy())[0]
    assert chi_square_p(counts, expected) > 1e-3


@pytest.mark.gpu
def test_cuda_draws_share_the_cpu_integers_and_a_path_does_not_depend_on_its_batch():
    from simulators.jump import streams

    key = streams.path_stream_keys(torch.arange(5000), 4, 0x41)
    e_cpu, w_cpu = streams.draw(key, 3, 64)
    e_gpu, w_gpu = streams.draw(key.cuda(), 3, 64)
    assert torch.equal(w_gpu.cpu(), w_cpu)  # the same integers; log may differ in the last bit
    torch.testing.assert_close(e_gpu.cpu(), e_cpu, rtol=4e-16, atol=0)
    Q = torch.stack([Q_RATCHET, flashing_ratchet_rate_matrix(1.5, 0.5, 2.0), flashing_ratchet_rate_matrix(0.5)]).cuda()
    x0 = torch.arange(3 * 3000).remainder(6).reshape(3, 3000).cuda()
    obs = regular_grid(8.0, 41, device="cuda")
    eager = simulate_mjp(Q, x0, obs, t_end=8.0, seed=4, record_events=64)
    alone = simulate_mjp(Q[2:], x0[2:, :7], obs, t_end=8.0, seed=4, members=[2], record_events=64)
    assert torch.equal(alone.observed[0], eager.observed[2, :7])
    assert torch.equal(alone.jump_state[0], eager.jump_state[2, :7])
    counts = np.bincount(eager.observed[0, :, -1].cpu().numpy(), minlength=6)
    assert chi_square_p(counts, PI_RATCHET) > 1e-3
