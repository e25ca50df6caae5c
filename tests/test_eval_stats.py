"""Forecast statistics against hand-computed values: both VPT conventions, the member-block bootstrap
and paired differences, centred ACC, CRPS and spread-error, blow-up, the options schema, and the
Lyapunov time withheld for a non-chaotic system."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import norm

from dynlab.config import compose, config_dir
from dynlab.errors import ConfigError
from dynlab.eval import metrics as M
from dynlab.eval.options import EvalOptions
from dynlab.eval.reference import lyapunov_estimate
from dynlab.eval.stats import bootstrap
from simulators import make_system


# --- valid prediction time --------------------------------------------------------------------

def test_last_valid_time_and_interpolated_crossing_by_hand():
    dt, eps = 0.5, 0.4
    error = np.array([
        [0.1, 0.3, 0.5, 0.9],  # invalid from lead 3: last valid lead 2 (t = 1.0)
        [0.5, 0.0, 0.0, 0.0],  # invalid at lead 1: VPT 0 even though it recovers
        [0.1, 0.1, 0.1, 0.4],  # never > 0.4: censored, the horizon 2.0
        [0.1, 0.6, 0.2, 0.1],  # a transient excursion ends the valid time: last valid lead 1
    ])
    vpt, censored = M.last_valid_time(error, eps, dt)
    np.testing.assert_allclose(vpt, [1.0, 0.0, 2.0, 0.5])
    assert censored.tolist() == [False, False, True, False]
    # interpolated: t_a + dt (eps - e_a) / (e_b - e_a), with e_0 = 0 at t = 0
    vpt_i, censored_i = M.last_valid_time(error, eps, dt, interpolate=True)
    np.testing.assert_allclose(vpt_i, [1.0 + 0.5 * 0.1 / 0.2, 0.5 * 0.4 / 0.5, 2.0, 0.5 + 0.5 * 0.3 / 0.5])
    assert censored_i.tolist() == censored.tolist()
    # a non-finite error after a valid lead: no interpolation into it
    vpt_nan, _ = M.last_valid_time(np.array([[0.2, np.nan, 0.1]]), eps, dt, interpolate=True)
    assert vpt_nan[0] == pytest.approx(0.5)
    # ε = 0.5 on the same curves: the first curve stays valid through lead 3 (0.5 is not > 0.5)
    np.testing.assert_allclose(M.last_valid_time(error, 0.5, dt)[0], [1.5, 2.0, 2.0, 0.5])
    with pytest.raises(ValueError, match="threshold must be a number > 0, got -1"):
        M.last_valid_time(error, -1, dt)


# --- bootstrap ---------------------------------------------------------------------------------

def test_member_block_bootstrap_matches_the_standard_error_of_group_means():
    """40 members, 6 identical forecasts each: the block bootstrap's interval of the mean has the width
    of the members' standard error; treating the 240 forecasts as independent is √6 too narrow."""
    rng = np.random.default_rng(1)
    G, per = 40, 6
    member_values = rng.normal(0.0, 1.0, G)
    values = np.repeat(member_values, per)
    groups = np.repeat(np.arange(G), per)
    out = bootstrap(values, np.mean, groups=groups, n_boot=2000, seed=3)["value"]
    se = member_values.std(ddof=1) / math.sqrt(G)
    assert out.estimate == pytest.approx(member_values.mean())
    assert (out.high - out.low) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.12)
    naive = bootstrap(values, np.mean, n_boot=2000, seed=3)["value"]
    assert (out.high - out.low) / (naive.high - naive.low) == pytest.approx(math.sqrt(per), rel=0.15)
    # the median of a known distribution: the interval covers the true median 0
    assert out.low < 0.0 < out.high


def test_paired_differences_cancel_the_shared_member_effect():
    rng = np.random.default_rng(2)
    G, per = 12, 10
    member = np.repeat(rng.normal(0.0, 5.0, G), per)  # a large effect shared by both learners
    groups = np.repeat(np.arange(G), per)
    a = member + rng.normal(0.0, 0.1, G * per)
    b = a + 1.0  # b is exactly one unit better on every forecast
    out = bootstrap({"a": a, "b": b}, np.mean, groups=groups, reference="a", seed=0)
    d = out["b - a"]
    assert d.estimate == pytest.approx(1.0) and d.low == pytest.approx(1.0) and d.high == pytest.approx(1.0)
    # the unpaired intervals are wide and overlap, the paired difference is exact
    assert out["a"].high > out["b"].low
    np.testing.assert_allclose(d.samples, out["b"].samples - out["a"].samples)


# --- ACC, CRPS, spread-error, blow-up ----------------------------------------------------------

def test_centred_acc_and_lead_below_by_hand():
    truth = np.array([[[1.0, 3.0]], [[3.0, 1.0]]])  # (N=2, H=1, D=2); mean over N: (2, 2)
    forecast = np.array([[[2.0, 4.0]], [[4.0, 2.0]]])  # truth + 1: centred anomalies identical
    assert M.centred_anomaly_correlation(forecast, truth)[0] == pytest.approx(1.0)
    assert M.anomaly_correlation(forecast, truth, np.zeros(2))[0] < 1.0  # the offset lowers the uncentred one
    flipped = np.array([[[3.0, 1.0]], [[1.0, 3.0]]])
    assert M.centred_anomaly_correlation(flipped, truth)[0] == pytest.approx(-1.0)
    assert M.lead_below([0.99, 0.8, 0.59, 0.7], 0.6, 0.05) == pytest.approx(0.15)
    assert M.lead_below([0.99, 0.9], 0.6, 0.05) == math.inf
    assert M.lead_below([0.99, np.nan], 0.6, 0.05) == pytest.approx(0.1)


def test_crps_and_spread_error_ratio():
    # ensemble {0, 2}, truth 1: mean |x - y| = 1, Σ|x_i - x_j| = 4 -> CRPS = 1 - 4/8 = 0.5
    assert M.crps_ensemble(np.array([[0.0], [2.0]]), np.array([1.0]))[0] == pytest.approx(0.5)
    assert M.crps_ensemble(np.array([[3.0]]), np.array([1.0]))[0] == pytest.approx(2.0)  # m = 1: |error|
    # a large Gaussian ensemble against truth y: σ[z(2Φ(z) − 1) + 2φ(z) − 1/√π] (Gneiting & Raftery 2007)
    m = 2000
    ens = 2.0 * norm.ppf((np.arange(m) + 0.5) / m)[:, None]  # an evenly spread N(0, 2²) ensemble
    y, z = np.array([1.0]), 0.5
    closed = 2.0 * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    assert M.crps_ensemble(ens, y)[0] == pytest.approx(closed, rel=2e-3)
    rng = np.random.default_rng(0)
    # a reliable ensemble (truth drawn like a member) has a spread-error ratio near 1
    centre = rng.normal(0.0, 1.0, (2000, 3))
    members = centre[None] + rng.normal(0.0, 0.5, (8, 2000, 3))
    truth = centre + rng.normal(0.0, 0.5, (2000, 3))
    assert M.spread_error_ratio(members, truth) == pytest.approx(1.0, abs=0.05)
    assert M.spread_error_ratio(0.2 * (members - centre) + centre, truth) < 0.3  # under-dispersive
    with pytest.raises(ValueError, match="needs an ensemble of m >= 2"):
        M.spread_error_ratio(members[:1], truth)


def test_blowup_fraction_by_hand():
    roll = np.zeros((4, 3, 2))
    roll[1, 2, 0] = np.inf  # non-finite
    roll[2, 1] = [6.0, 8.0]  # |x - c| = 10 > 3 * 2
    roll[3, 1] = [3.0, 4.0]  # 5 <= 6: inside the bound
    assert M.blowup_fraction(roll, np.zeros(2), scale=2.0, bound=3.0) == pytest.approx(0.5)


# --- options ----------------------------------------------------------------------------------

def test_eval_options_schema_and_yaml_mirror():
    opts = EvalOptions()
    assert opts.thresholds == [0.4, 0.5] and opts.n_boot == 1000 and opts.starts_per_member >= 16
    # configs/evaluate.yaml holds no eval defaults: they come from the dataclass (once)
    assert "eval" not in OmegaConf.to_container(OmegaConf.load(config_dir() / "evaluate.yaml"))
    assert compose("evaluate", ["run=r"])["eval"] == opts.to_dict()
    assert EvalOptions.from_dict(compose("evaluate", ["eval.horizon=7"])["eval"]).non_defaults() == {"horizon": 7}
    for bad, match in (({"horizon": 0}, r"eval.horizon=0 is invalid: expected an integer >= 1"),
                       ({"ci": 1.5}, r"eval.ci=1.5 is invalid: expected a finite number > 0 and < 1"),
                       ({"lyapunov": "maybe"}, r"eval.lyapunov='maybe' is invalid: expected one of auto, true, false"),
                       ({"thresholds": []}, "non-empty list"),
                       ({"horizn": 3}, r"unknown config key 'eval.horizn'"),
                       ({"plots": "yes"}, "eval.plots=.yes. is invalid: expected true or false")):
        with pytest.raises(ConfigError, match=match):
            EvalOptions.from_dict(bad)
    for f in EvalOptions.__dataclass_fields__.values():
        assert f.metadata.get("help"), f.name


# --- Lyapunov time only for a clearly chaotic system -----------------------------------------

def test_lyapunov_estimate_is_significant_only_for_chaos(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path))
    lorenz = make_system("lorenz63")
    x0 = torch.tensor([[1.0, 1.0, 20.0], [-5.0, -3.0, 25.0], [3.0, 6.0, 15.0]], dtype=torch.float64)
    chaos = lyapunov_estimate(lorenz, x0, dt=0.01, time=20.0, transient_time=2.0, use_cache=False)
    assert chaos.significant() and 0.5 < chaos.value < 1.4 and chaos.n == 30
    spring = make_system("mass_spring")
    q0 = torch.tensor([[0.5, 0.0], [0.2, 0.3], [0.0, 0.7]], dtype=torch.float64)
    flat = lyapunov_estimate(spring, q0, dt=0.05, time=10.0, transient_time=0.5, use_cache=False)  # AD tangents
    assert abs(flat.value) < 0.1 and not flat.significant()


def test_mass_spring_evaluation_reports_no_lyapunov_time(tmp_path, monkeypatch):
    import dynlab
    from dynlab.emulators import Persistence
    from dynlab.eval.report import report_markdown, summary
    from dynlab.pipeline.evaluate import evaluate_emulators
    from dynlab.pipeline.simulate import simulate

    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "spring.zarr"
    simulate(compose("simulate", ["system=mass_spring", f"out={out}", "ensemble.members=4", "time.t_end=4",
                                  "progress=false"]), log=lambda m: None)
    ds = dynlab.open_dataset(out)
    metrics, summ = evaluate_emulators({"persistence": Persistence(3)}, ds, [3], train_members=[0, 1, 2],
                                       context=2, horizon=10, starts_per_member=3, long_rollout=0,
                                       lyapunov_time=2.0, lyapunov_transient=0.5, baselines=["rk4"], n_boot=50)
    assert math.isnan(metrics.attrs["lambda1"]) and bool(np.isnan(metrics["vpt_lyapunov"]).all())
    assert summ["lambda1"] is None and summ["vpt_median_lyapunov"] is None and summ["vpt_median"] is not None
    assert "not clearly positive" in report_markdown(summ, {}) and "| — |" in report_markdown(summ, {})
    assert summary(metrics, n_boot=20)["lambda1_estimate"] is not None


def test_sde_evaluation_scores_crps_and_spread_error(tmp_path, monkeypatch):
    import dynlab
    from dynlab.emulators.baselines import Persistence
    from dynlab.pipeline.evaluate import evaluate_emulators
    from dynlab.pipeline.simulate import simulate

    class Noisy(Persistence):
        stochastic = True

        def step(self, x_t, state, forcing_t=None):
            return x_t + 0.3 * torch.randn_like(x_t), None

    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "ou.zarr"
    simulate(compose("simulate", ["system=ou", f"out={out}", "ensemble.members=6", "time.t_end=20",
                                  "progress=false"]), log=lambda m: None)
    ds = dynlab.open_dataset(out)
    torch.manual_seed(0)
    metrics, summ = evaluate_emulators({"noisy": Noisy(1), "persistence": Persistence(1)}, ds, [4, 5],
                                       train_members=[0, 1, 2, 3], context=2, horizon=6, starts_per_member=8,
                                       long_rollout=0, baselines=["euler", "climatology"], ensemble_size=8,
                                       n_boot=50)
    assert "baseline euler skipped" in metrics.attrs["notes"]  # no numerical model of an SDE
    assert [str(v) for v in metrics["learner"].values] == ["noisy", "persistence", "climatology"]
    crps = metrics["crps"].sel(learner="persistence").values
    # one deterministic rollout: the CRPS is the mean absolute error
    f = metrics["error"].sel(learner="persistence").values  # |error| / σ_clim for D = 1
    np.testing.assert_allclose(crps, f.mean(axis=(0, 1)) * metrics.attrs["climate_scale"], rtol=1e-10)
    assert np.isnan(metrics["spread_error"].sel(learner="persistence").values).all()
    ratio = metrics["spread_error"].sel(learner="noisy").values
    assert np.all(np.isfinite(ratio)) and np.all(ratio > 0)
    assert summ["crps_lead1"] is not None and math.isnan(metrics.attrs["lambda1"])
