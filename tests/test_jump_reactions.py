"""Mass-action reaction networks: propensities by hand, birth–death against its Poisson
laws, a bimolecular network against its chemical master equation (expm on a truncated
lattice, built independently), Schlögl bistability, validation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from simulators import make_system
from simulators.jump import ReactionNetwork, regular_grid, simulate_reactions


def poisson_chi_square_p(samples: np.ndarray, mean: float) -> float:
    """Chi-square of integer samples against Poisson(mean), tails merged to expected >= 5."""
    n = samples.size
    top = int(samples.max()) + 1
    pmf = scipy.stats.poisson.pmf(np.arange(top), mean)
    lo = int(np.argmax(pmf * n >= 5))
    hi = top - int(np.argmax((pmf * n >= 5)[::-1]))
    counts = np.bincount(samples, minlength=top)
    obs = np.concatenate([[counts[:lo + 1].sum()], counts[lo + 1:hi - 1], [counts[hi - 1:].sum()]])
    exp = np.concatenate([[scipy.stats.poisson.cdf(lo, mean)], pmf[lo + 1:hi - 1],
                          [scipy.stats.poisson.sf(hi - 2, mean)]]) * n
    return float(scipy.stats.chisquare(obs, exp, ddof=0).pvalue)


def test_propensities_by_hand():
    schlogl = make_system("schlogl").network
    x = torch.tensor([[0.0], [1.0], [2.0], [250.0]], dtype=torch.float64)
    a = schlogl.propensity(x)
    c1A, c2, c3B, c4 = 3e-7 * 1e5, 1e-4, 1e-3 * 2e5, 3.5
    for row, xv in zip(a.numpy(), [0, 1, 2, 250]):
        expected = [c1A * xv * (xv - 1) / 2 if xv >= 2 else 0.0,
                    c2 * math.comb(xv, 3), c3B, c4 * xv]
        np.testing.assert_allclose(row, expected, rtol=1e-14)
    assert not bool(torch.signbit(a).any()), "no -0.0 propensities"
    lv = make_system("lotka_volterra").network
    np.testing.assert_allclose(lv.propensity(torch.tensor([[50.0, 100.0]])).numpy(), [[50.0, 0.005 * 5000, 60.0]])


def test_birth_death_started_empty_is_poisson_at_every_time():
    """Immigration–death from 0: X(t) ~ Poisson((b/d)(1 - e^{-dt})) exactly (t = 1.5 and t = 25)."""
    b, d = 10.0, 1.0
    net = ReactionNetwork(("X",), ("birth", "death"), ((0,), (1,)), ((1,), (0,)), (b, d))
    P = 3000
    obs = torch.tensor([1.5, 25.0], dtype=torch.float64)
    paths = simulate_reactions(net, torch.zeros(1, P, 1), obs, t_end=25.0, seed=21)
    counts = paths.observed[0, :, :, 0].numpy().astype(int)
    for k, t in enumerate([1.5, 25.0]):
        mean = b / d * (1 - math.exp(-d * t))
        p = poisson_chi_square_p(counts[:, k], mean)
        print(f"birth-death t={t}: mean {counts[:, k].mean():.3f} (Poisson {mean:.3f}), chi-square p = {p:.3f}")
        assert p > 1e-3
    # the stationary law: Poisson(b/d), variance = mean
    assert abs(counts[:, 1].var() / counts[:, 1].mean() - 1.0) < 0.1


def cme_generator(states: list[tuple[int, int]], rates: tuple[float, float, float, float]) -> np.ndarray:
    """Master-equation generator of 2A -> B (k1 a(a-1)/2), B -> 2A (k2 b), 0 -> A (k3), A -> 0 (k4 a),
    written out reaction by reaction on a truncated (a, b) lattice (leaving the lattice is dropped)."""
    k1, k2, k3, k4 = rates
    index = {s: i for i, s in enumerate(states)}
    Q = np.zeros((len(states), len(states)))
    for (a, b), i in index.items():
        for rate, target in ((k1 * a * (a - 1) / 2, (a - 2, b + 1)), (k2 * b, (a + 2, b - 1)),
                             (k3, (a + 1, b)), (k4 * a, (a - 1, b))):
            if rate > 0:
                Q[i, i] -= rate
                if target in index:
                    Q[i, index[target]] += rate
    return Q


def test_bimolecular_network_matches_its_master_equation():
    rates = (0.2, 1.0, 4.0, 0.5)
    net = ReactionNetwork(("A", "B"), ("dimerise", "split", "inflow", "outflow"),
                          reactants=((2, 0), (0, 1), (0, 0), (1, 0)), products=((0, 1), (2, 0), (1, 0), (0, 0)),
                          rate_constants=rates)
    states = list(itertools.product(range(40), range(25)))
    Q = cme_generator(states, rates)
    t = 1.0
    p0 = np.zeros(len(states))
    p0[states.index((3, 1))] = 1.0
    pt = p0 @ scipy.linalg.expm(t * Q)
    assert pt.sum() > 1 - 1e-9  # the truncation loses nothing that matters
    P = 4000
    paths = simulate_reactions(net, torch.tensor([3.0, 1.0]).expand(1, P, 2), torch.tensor([t], dtype=torch.float64),
                               t_end=t, seed=9)
    final = paths.observed[0, :, 0].numpy().astype(int)
    counts = np.zeros(len(states))
    for a, b in final:
        counts[states.index((a, b))] += 1
    keep = pt * P >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(pt[keep], pt[~keep].sum()) * P
    p = float(scipy.stats.chisquare(obs, exp / exp.sum() * obs.sum()).pvalue)
    print(f"master equation: {keep.sum()} cells, chi-square p = {p:.3f}")
    assert p > 1e-3


def test_absorbing_states_stop_and_counts_stay_non_negative():
    net = ReactionNetwork(("X",), ("death", "pair_death"), ((1,), (2,)), ((0,), (0,)), (1.0, 0.1))
    paths = simulate_reactions(net, torch.full((1, 200, 1), 7.0), regular_grid(30.0, 31), t_end=30.0, seed=0,
                               record_events=20)
    assert bool((paths.observed >= 0).all())
    assert bool((paths.observed[0, :, -1] == 0).all())
    assert int(paths.n_events.max()) <= 8  # at most 7 deaths (+ time 0)


@pytest.mark.slow
def test_schlogl_is_bistable():
    """From x=250 (near the unstable state ~248) the paths settle around ~85 and ~567."""
    net = make_system("schlogl").network
    paths = simulate_reactions(net, torch.full((1, 300, 1), 250.0), torch.tensor([4.0], dtype=torch.float64),
                               t_end=4.0, seed=1)
    x = paths.observed[0, :, 0, 0].numpy()
    low, high = x[x < 248], x[x >= 248]
    assert 0.2 < low.size / x.size < 0.8
    assert abs(np.median(low) - 85) < 25 and abs(np.median(high) - 567) < 60
    assert np.mean((x > 200) & (x < 300)) < 0.1  # few paths linger near the unstable state


@pytest.mark.parametrize("kwargs,match", [
    (dict(rate_constants=(1.0, -0.1)), r"rate constant of reaction 'death' must be a finite number >= 0, got -0.1"),
    (dict(reactants=((0,), (-1,))), r"reactants of reaction 'death' for species 'X' must be a non-negative"),
    (dict(products=((1,),)), r"products must have shape \(R, S\) = \(2, 1\)"),
])
def test_bad_networks_are_refused(kwargs, match):
    spec = dict(species=("X",), reactions=("birth", "death"), reactants=((0,), (1,)), products=((1,), (0,)),
                rate_constants=(1.0, 0.1))
    spec.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ReactionNetwork(**spec)


def test_bad_initial_counts_are_refused():
    net = make_system("birth_death").network
    with pytest.raises(ValueError, match=r"initial counts must be non-negative integers, got -1.0"):
        simulate_reactions(net, torch.tensor([[[-1.0]]]), regular_grid(1.0, 2), t_end=1.0)


@pytest.mark.gpu
def test_birth_death_on_cuda_is_poisson():
    net = ReactionNetwork(("X",), ("birth", "death"), ((0,), (1,)), ((1,), (0,)), (10.0, 1.0))
    paths = simulate_reactions(net, torch.zeros(1, 20000, 1, device="cuda"), regular_grid(2.0, 21, device="cuda"),
                               t_end=2.0, seed=3)
    counts = paths.observed[0, :, -1, 0].cpu().numpy().astype(int)
    assert poisson_chi_square_p(counts, 10.0 * (1 - math.exp(-2.0))) > 1e-3


def test_runaway_paths_hit_the_iteration_guard():
    net = make_system("birth_death", birth=1000.0).network
    with pytest.raises(RuntimeError, match=r"more than max_iterations=32 events"):
        simulate_reactions(net, torch.zeros(1, 4, 1), regular_grid(10.0, 3), t_end=10.0, max_iterations=32)
    from simulators import make_integrator
    with pytest.raises(ValueError, match=r"integrator.max_iterations must be an integer >= 1, got 0"):
        make_integrator("gillespie", max_iterations=0)
