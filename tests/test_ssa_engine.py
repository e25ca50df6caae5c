"""The one exact-SSA engine (simulators.jump.engine) and its counter-based draws
(simulators.jump.streams): uniform and exponential variates keyed per path, bit-identical
paths whatever the batch, the threads or the member block, exponential holding times and
the Poisson stationary law of birth–death, absorption times, the ramped integrated hazard."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from simulators import TimeGrid, make_integrator, make_system
from simulators.jump import ReactionNetwork, SSAOptions, holding_time, path_keys, regular_grid, ssa, streams
from simulators.jump.engine import EVENTS_PER_DRAW, STREAM_JUMP
from simulators.path import Gillespie, GillespieRamp

BIRTH_DEATH = ReactionNetwork(("X",), ("birth", "death"), ((0,), (1,)), ((1,), (0,)), (10.0, 1.0))


def run(network, x0, keys, seed, options):
    return ssa(tuple(x0[:, s].contiguous() for s in range(x0.shape[1])), network.event(), keys=keys, seed=seed,
               options=options)


def test_draws_are_uniform_exponential_and_keyed_per_path():
    keys = path_keys(range(3), 700).reshape(-1)
    key = streams.path_stream_keys(keys, 5, STREAM_JUMP)
    e, w = streams.draw(key, 2, EVENTS_PER_DRAW)
    assert e.shape == w.shape == (EVENTS_PER_DRAW, 2100)
    assert float(w.min()) >= 0.0 and float(w.max()) < 1.0 and float(e.min()) > 0.0
    assert scipy.stats.kstest(w.reshape(-1).numpy(), "uniform").pvalue > 1e-3
    assert scipy.stats.kstest(e.reshape(-1).numpy(), "expon").pvalue > 1e-3
    # successive variates of a path and neighbouring paths are uncorrelated
    for a, b in ((w[:-1], w[1:]), (w[:, :-1], w[:, 1:]), (e, w)):
        r = float(np.corrcoef(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0, 1])
        assert abs(r) < 4.5 / math.sqrt(a.numel()), r
    # a path's numbers depend on (seed, key, draw) only; torch and numpy share every integer
    e_part, w_part = streams.draw(key[[1500, 3]], 2, EVENTS_PER_DRAW)
    assert torch.equal(w_part, w[:, [1500, 3]]) and torch.equal(e_part, e[:, [1500, 3]])
    e_torch, w_torch = streams._draw_torch(key, 2, EVENTS_PER_DRAW)
    assert torch.equal(w_torch, w)
    torch.testing.assert_close(e_torch, e, rtol=4e-16, atol=0)
    assert not torch.equal(streams.draw(key, 3, EVENTS_PER_DRAW)[1], w)
    assert not torch.equal(streams.draw(streams.path_stream_keys(keys, 6, STREAM_JUMP), 2, EVENTS_PER_DRAW)[1], w)


@pytest.mark.parametrize("grid", ["regular", "irregular"])
def test_paths_are_bit_identical_across_batches_threads_and_blocks(grid):
    P, t_end = 40, 3.0
    keys = path_keys(range(3), P).reshape(-1)
    if grid == "regular":
        obs = regular_grid(t_end, 31)
    else:
        obs = torch.sort(torch.rand(3 * P, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
                         * t_end, dim=1).values
    x0 = torch.arange(3 * P, dtype=torch.float64)[:, None] % 7
    every = run(BIRTH_DEATH, x0, keys, 3, SSAOptions(t_end=t_end, obs_times=obs, t_start=-0.5, record_events=90))
    serial = run(BIRTH_DEATH, x0, keys, 3, SSAOptions(t_end=t_end, obs_times=obs, t_start=-0.5, record_events=90,
                                                       prefetch=False))
    pick = torch.tensor([101, 5, 77])
    part_obs = obs if obs.ndim == 1 else obs[pick]
    part = run(BIRTH_DEATH, x0[pick], keys[pick], 3,
               SSAOptions(t_end=t_end, obs_times=part_obs, t_start=-0.5, record_events=90))
    for other, rows in ((serial, slice(None)), (part, pick)):
        assert torch.equal(other.observed[0], every.observed[0][rows])
        assert torch.equal(other.jump_state[0], every.jump_state[0][rows])
        assert torch.equal(other.n_events, every.n_events[rows])
        torch.testing.assert_close(other.jump_time, every.jump_time[rows], rtol=0, atol=0, equal_nan=True)
    assert int(every.n_events.max()) <= 90 and every.iterations % EVENTS_PER_DRAW == 0
    # the observations are the jump record read at the observation times (right-continuous)
    times = obs.expand(3 * P, -1) if obs.ndim == 1 else obs
    for p in range(0, 3 * P, 7):
        k = int(every.n_events[p])
        last = torch.searchsorted(every.jump_time[p, :k], times[p], right=True) - 1
        assert torch.equal(every.observed[0][p], every.jump_state[0][p, last])


def test_birth_death_holding_times_are_exponential_and_the_stationary_law_is_poisson():
    """Immigration at 10, deaths at 1 per individual: holding times in state x are Exp(10 + x)
    and X(t) from X(0) = 10 relaxes to Poisson(10) (e^-20 away at t = 20)."""
    P = 3000
    keys = path_keys([0], P)[0]
    result = run(BIRTH_DEATH, torch.full((P, 1), 10.0), keys, 7,
                 SSAOptions(t_end=20.0, obs_times=torch.tensor([20.0], dtype=torch.float64), record_events=8))
    counts = result.observed[0][:, 0].numpy().astype(int)
    support = np.arange(0, 26)
    observed = np.array([(counts == k).sum() for k in support[:-1]] + [(counts >= 25).sum()])
    pmf = scipy.stats.poisson.pmf(support[:-1], 10.0)
    expected = np.append(pmf, 1 - pmf.sum()) * P
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3
    # complete sojourns of the first record entries, scaled by the exit rate of their state
    times, states, n = result.jump_time.numpy(), result.jump_state[0].numpy(), result.n_events.numpy()
    scaled = []
    for p in range(P):
        k = min(int(n[p]), 8)
        scaled.append(np.diff(times[p, :k]) * (10.0 + states[p, :k - 1]))
    scaled = np.concatenate(scaled)
    assert scipy.stats.kstest(scaled, "expon").pvalue > 1e-3


def test_absorption_times_are_the_extinction_times():
    """One individual dying at rate 2 (X -> 0): absorbed at Exp(2); none after t_end."""
    death = ReactionNetwork(("X",), ("death",), ((1,),), ((0,),), (2.0,))
    P = 4000
    result = run(death, torch.ones(P, 1), path_keys([3], P)[0], 1,
                 SSAOptions(t_end=1.0, obs_times=regular_grid(1.0, 11)))
    died = ~torch.isnan(result.absorbed_at)
    assert torch.equal(died, result.observed[0][:, -1] == 0)
    assert abs(float(died.double().mean()) - (1 - math.exp(-2.0))) < 4 * math.sqrt(0.2 / P)
    # Exp(2) conditioned on <= 1
    cdf = lambda t: (1 - np.exp(-2.0 * t)) / (1 - math.exp(-2.0))  # noqa: E731
    assert scipy.stats.kstest(result.absorbed_at[died].numpy(), cdf).pvalue > 1e-3
    started_dead = run(death, torch.zeros(4, 1), path_keys([3], 4)[0], 1,
                       SSAOptions(t_end=1.0, obs_times=regular_grid(1.0, 11)))
    assert torch.isnan(started_dead.absorbed_at).all() and (started_dead.observed[0] == 0).all()


@pytest.mark.parametrize("t0", [-3.0, -0.2, 0.0, 1.5])
def test_ramped_holding_time_solves_the_integrated_hazard(t0):
    gen = torch.Generator().manual_seed(0)
    e = -torch.rand(500, dtype=torch.float64, generator=gen).log()
    rate = torch.rand(500, dtype=torch.float64, generator=gen) * 3
    slope = torch.rand(500, dtype=torch.float64, generator=gen) * 2
    t = torch.full((500,), t0, dtype=torch.float64)
    tau = holding_time(e, rate, slope, t, kink=0.0)
    ramped = (t + tau).clamp(min=0.0) - t.clamp(min=0.0)
    hazard = rate * tau + 0.5 * slope * ramped ** 2  # ∫ a0 + b (max(t+s, 0) − max(t, 0)) ds
    torch.testing.assert_close(hazard, e, rtol=1e-12, atol=0)
    assert torch.equal(holding_time(e, rate), e / rate)
    assert torch.isinf(holding_time(e, torch.zeros(500, dtype=torch.float64), 0.0 * slope, t)).all()


def test_options_and_integrator_names():
    with pytest.raises(ValueError, match=r"need t_start <= 0 <= t_end, both finite; got t_start=1.0"):
        SSAOptions(t_end=2.0, obs_times=[1.0], t_start=1.0)
    with pytest.raises(ValueError, match=r"record_events must be an integer >= 0, got -1"):
        SSAOptions(t_end=2.0, obs_times=[1.0], record_events=-1)
    with pytest.raises(ValueError, match=r"options must be an SSAOptions, got dict"):
        ssa((torch.zeros(2),), BIRTH_DEATH.event(), keys=torch.arange(2), seed=0, options={})
    with pytest.raises(ValueError, match=r"observation times must lie in \[0, t_end=1.0\], got 2.0"):
        ssa((torch.zeros(2),), BIRTH_DEATH.event(), keys=torch.arange(2), seed=0,
            options=SSAOptions(t_end=1.0, obs_times=[0.5, 2.0]))
    plain, ramp = make_integrator("gillespie"), make_integrator("gillespie_ramp")
    assert type(plain) is Gillespie and type(ramp) is GillespieRamp and isinstance(ramp, Gillespie)
    with pytest.raises(ValueError, match="does not step a vector field"):
        plain.integrate(make_system("birth_death"), torch.zeros(1, 1), t0=0.0, dt=0.1, n_steps=1, save_every=1)
    # path-sampled systems carry the new generator version; both names drive every one of them
    system = make_system("birth_death", n_paths=3, n_obs=5)
    assert system.generator_version == 1 and make_system("allee").generator_version == 1
    grid = TimeGrid(dt=0.5, save_every=0.5, t_end=2.0)
    a, b = system.simulate(plain, grid, seed=2, members=[0]), system.simulate(ramp, grid, seed=2, members=[0])
    assert torch.equal(a["counts"], b["counts"])
