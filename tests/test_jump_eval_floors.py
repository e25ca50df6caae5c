"""Sampling floors of the rate-matrix metrics: the MLE sits at about one floor, the one-step estimate's
bias and a perturbed generator stand out, and the floors shrink like 1/sqrt(data)."""
import math

import numpy as np
import pytest
import torch
import xarray as xr

from dynlab.eval.jump import (FLOOR_METRICS, compare_rate_matrices, estimate_rate_matrix_one_step, floor_ratios,
                              perturb_rate_matrix, sampling_floor, stationary_law)
from dynlab.eval.stats import bootstrap
from dynlab.pipeline.jump import score_jump_members
from dynlab.testing import assert_stationary_distribution_close
from simulators.jump import simulate_mjp, stationary_distribution

# a 3-state generator without detailed balance (entropy production > 0), relaxation time ~0.6
Q3 = np.array([[-1.5, 1.0, 0.5],
               [0.3, -0.8, 0.5],
               [1.2, 0.4, -1.6]])
INTERVAL = 0.25


def _store(members: int, paths: int, seed: int, n_obs: int = 41, keep_jumps: bool = False) -> xr.Dataset:
    """A jump store of ``members`` independent copies of Q3 observed every INTERVAL from its stationary law
    (with ``keep_jumps``, also the exact jump records)."""
    pi = stationary_distribution(torch.tensor(Q3))
    x0 = torch.multinomial(pi, members * paths, replacement=True,
                           generator=torch.Generator().manual_seed(seed)).reshape(members, paths)
    grid = torch.arange(n_obs, dtype=torch.float64) * INTERVAL
    sim = simulate_mjp(torch.tensor(Q3)[None].repeat(members, 1, 1), x0, grid, t_end=float(grid[-1]), seed=seed,
                       record_events=80 if keep_jumps else 0)
    data = {"rate_matrix": (("member", "from_state", "to_state"), np.repeat(Q3[None], members, 0)),
            "state": (("member", "path", "obs"), sim.observed.numpy()),
            "time": (("member", "path", "obs"), np.broadcast_to(grid.numpy(), (members, paths, n_obs)))}
    if keep_jumps:
        data.update({"jump_time": (("member", "path", "event"), sim.jump_time.numpy()),
                     "jump_state": (("member", "path", "event"), sim.jump_state.numpy()),
                     "n_events": (("member", "path"), sim.n_events.numpy())})
    return xr.Dataset(data, coords={"member": np.arange(members)})


@pytest.fixture(scope="module")
def tables():
    """Scores on 12 members of 40 paths, and on 8 members of four times as many paths (with exact jump records)."""
    small = score_jump_members(_store(12, 40, seed=3), list(range(12)), interval=INTERVAL, seed=0, n_splits=4)
    large = score_jump_members(_store(8, 160, seed=4, keep_jumps=True), list(range(8)), interval=INTERVAL, seed=1,
                               n_splits=4)
    return small, large


def _median(table, name, estimator):
    return float(np.median(table[f"{name}_ratio"].sel(estimator=estimator).values))


def test_mle_sits_at_about_one_floor_and_passes_the_stationary_check(tables):
    small, large = tables
    for table in (small, large):
        for k in ("stationary_tv", "stationary_hellinger", "mfpt_rel_error", "rate_rmse"):
            ratios = table[f"{k}_ratio"].sel(estimator="mle").values
            iv = bootstrap(ratios, np.median, n_boot=500, seed=0)["value"]
            # as far from the truth as two halves of the data are from each other (halved): ≈ 1, with a
            # member-bootstrap interval inside a factor of ~3 either side
            assert 0.4 < iv.estimate < 2.0, (k, ratios)
            assert 0.25 < iv.low <= iv.high < 3.5, (k, iv)
        assert table["stationary_check"].sel(estimator="mle").values.all()


def test_exact_paths_beat_the_grid_floor(tables):
    small, large = tables
    assert "mle_exact" not in small["estimator"].values and "mle_exact" in large["estimator"].values
    # exact paths carry more information than their observations every INTERVAL: the exact-path MLE's rates
    # sit below the grid MLE's noise floor, and the grid MLE's
    for k in ("rate_rmse", "mfpt_rel_error"):
        assert _median(large, k, "mle_exact") < min(1.0, _median(large, k, "mle")), k
    assert large["stationary_check"].sel(estimator="mle_exact").values.all()


def test_floors_shrink_like_one_over_root_data(tables):
    small, large = tables
    for k in ("stationary_tv", "rate_rmse", "mfpt_rel_error"):
        shrink = float(large[f"{k}_floor"].mean() / small[f"{k}_floor"].mean())
        assert 0.35 < shrink < 0.7, (k, shrink)  # four times the paths: 1/2


def test_one_step_bias_and_perturbed_generator_stand_out_against_the_floor(tables):
    small, large = tables
    # the one-step rates are biased by multiple jumps between observations: their ratio to the floor is
    # already > 1 and grows with the data (bias fixed, floor ~ 1/sqrt(n)), while the MLE's does not
    assert _median(small, "rate_rmse", "one_step") > 1.3
    assert _median(large, "rate_rmse", "one_step") > 1.6 * _median(small, "rate_rmse", "one_step")
    assert _median(large, "rate_rmse", "one_step") > 2.5 * _median(large, "rate_rmse", "mle")
    # ... but its stationary law is the observed chain's, as good as the MLE's
    assert _median(large, "stationary_tv", "one_step") < 2.0
    for table in (small, large):
        for k in ("stationary_tv", "stationary_hellinger"):
            assert _median(table, k, "perturbed") > 4.0, k
        assert _median(table, "rate_rmse", "perturbed") > 2.0
        checks = table["stationary_check"].sel(estimator="perturbed").values
        assert checks.sum() <= checks.size // 3  # a random perturbation can nearly keep π: most members fail
    # a wrong generator's distance does not shrink with the data: its ratio grows like sqrt(n)
    assert _median(large, "rate_rmse", "perturbed") > 1.5 * _median(small, "rate_rmse", "perturbed")


def test_stationary_check_against_the_floor_on_one_member():
    observed = _store(1, 80, seed=9)["state"].values[0]
    floor = sampling_floor(observed, interval=INTERVAL, n_states=3, n_splits=3, seed=0)
    assert set(floor) == set(FLOOR_METRICS) and all(v > 0 for v in floor.values())
    wrong = Q3.copy()
    wrong[1, 0] *= 3.0  # state 1 leaks to 0 three times as fast
    wrong[1, 1] = -(wrong[1, 0] + wrong[1, 2])
    tv = compare_rate_matrices(wrong, Q3)["stationary_tv"]
    with pytest.raises(AssertionError, match="max_ratio x floor"):
        assert_stationary_distribution_close(wrong, Q3, floor=floor["stationary_tv"], max_ratio=3.0)
    assert floor_ratios(compare_rate_matrices(wrong, Q3), floor)["stationary_tv"] == pytest.approx(
        tv / floor["stationary_tv"])
    assert tv / floor["stationary_tv"] > 5
    # the one-step generator's stationary law is exactly that of the observed transition matrix P̂
    est = estimate_rate_matrix_one_step(observed, interval=INTERVAL, n_states=3)
    P = est.counts / est.counts.sum(1, keepdims=True)
    pi = stationary_law(est.rate_matrix)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    np.testing.assert_allclose(est.rate_matrix.sum(1), 0.0, atol=1e-12)
    assert (est.rate_matrix[~np.eye(3, dtype=bool)] >= 0).all()


def test_input_checks():
    obs = np.zeros((4, 5), dtype=np.int64)
    with pytest.raises(ValueError, match="n_splits"):
        sampling_floor(obs, interval=1.0, n_states=2, n_splits=0)
    with pytest.raises(ValueError, match=r"\(P, T\)"):
        sampling_floor(np.zeros(5, dtype=np.int64), interval=1.0, n_states=2)
    with pytest.raises(ValueError, match="interval"):
        estimate_rate_matrix_one_step(obs, interval=-1.0, n_states=2)
    with pytest.raises(ValueError, match="scale"):
        perturb_rate_matrix(Q3, scale=math.nan)
    with pytest.raises(ValueError, match="seed"):
        perturb_rate_matrix(Q3, seed=0.5)
    assert perturb_rate_matrix(Q3, scale=0.0).tolist() == Q3.tolist()
    with pytest.raises(ValueError, match="keys"):
        floor_ratios({"stationary_tv": 0.1}, {"stationary_tv": 0.1})
    with pytest.raises(ValueError, match="not both"):
        assert_stationary_distribution_close(Q3, Q3, max_tv=0.1, floor=0.1)
    with pytest.raises(ValueError, match="floor"):
        assert_stationary_distribution_close(Q3, Q3, floor=-1.0)
    with pytest.raises(ValueError, match="members"):
        score_jump_members(_store(1, 2, seed=0, n_obs=3), [], interval=INTERVAL, seed=0)
