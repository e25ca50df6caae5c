"""Evaluation end to end on a tiny Lorenz96 dataset: the reference scores perfectly, persistence's
error grows, VPT is capped where the reference integrators part ways, `evaluate` writes its files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

import dynlab
from dynlab.cli import main
from dynlab.config import compose
from dynlab.emulators import HiPPOEmulator, LinearOneStep, Persistence, ReferenceEmulator, StateCodec
from dynlab.errors import ConfigError, StoreError
from dynlab.eval import evaluate_emulator, prepare_evaluation, reference_agreement_time, score_emulator
from dynlab.eval.options import DEFAULT_BASELINES
from dynlab.eval.reference import leading_lyapunov_exponent
from dynlab.pipeline.evaluate import evaluate, evaluate_emulators
from dynlab.pipeline.simulate import simulate
from dynlab.testing import assert_climate, assert_conserves, assert_forecast_skill

TEST, TRAIN = [4, 5], [0, 1, 2, 3]
SMALL = dict(context=5, horizon=20, starts_per_member=2, long_rollout=100, spectrum_nperseg=32, bins=10)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "l96.zarr"
    simulate(compose("simulate", [f"out={out}", "system.K=8", "ensemble.members=6", "time.t_end=6",
                                  "time.spinup=2", "progress=false"]), log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def ds(store):
    return dynlab.open_dataset(store)


@pytest.fixture(scope="module")
def setup(ds):
    """Shared truth side: λ₁ from a short QR run, the RK4/Dormand–Prince agreement horizon."""
    return prepare_evaluation(ds, TEST, train_members=TRAIN, lyapunov_time=3.0, lyapunov_transient=0.5, **SMALL)


def test_reference_evaluation_is_perfect(ds, setup):
    horizon_time = SMALL["horizon"] * 0.05
    assert setup.agreement_time is not None and np.all(setup.agreement_time == pytest.approx(horizon_time))
    assert 0.5 < setup.lambda1 < 3.0  # K=8, F=8: chaotic
    out = xr.merge([score_emulator(ReferenceEmulator.from_dataset(ds), setup), setup.truth_dataset()],
                   compat="override")
    assert float(out["rmse"].max()) <= 1e-12
    assert float(out["rmse_variable"].max()) <= 1e-12
    np.testing.assert_allclose(out["acc"].values, 1.0, atol=1e-12)
    np.testing.assert_allclose(out["vpt"].values, horizon_time)  # the whole horizon, for every forecast
    assert bool(out["vpt_censored"].all()) and not bool(out["vpt_capped"].any())
    np.testing.assert_allclose(out["vpt_lyapunov"].values, horizon_time * setup.lambda1)
    np.testing.assert_allclose(out["sample_forecast"].values, out["sample_truth"].values, atol=1e-12)
    assert out["lead"].values[0] == pytest.approx(0.05) and out.attrs["lambda1"] == setup.lambda1


def test_persistence_error_grows_with_lead(setup):
    scores = score_emulator(Persistence(8), setup)
    rmse = scores["rmse"].values
    assert np.all(np.diff(rmse[:8]) > 0) and rmse[0] > 0.1
    vpt = scores["vpt"].values
    assert np.all(vpt < SMALL["horizon"] * 0.05) and not bool(scores["vpt_censored"].any())
    np.testing.assert_allclose(scores["vpt_lyapunov"].values, vpt * setup.lambda1)
    # persistence's long rollout is a constant: its spectrum has no power where the truth has plenty
    assert np.all(scores["spec_res"].values > 1.0) and np.all(scores["wasserstein"].values > 0.1)


def test_vpt_is_capped_at_the_agreement_horizon(ds, setup):
    from dataclasses import replace

    agree = np.full_like(setup.agreement_time, 0.3)
    agree[0, 0] = 5.0
    capped = score_emulator(ReferenceEmulator.from_dataset(ds), replace(setup, agreement_time=agree))
    assert capped["vpt"].values[0, 0] == pytest.approx(1.0) and not bool(capped["vpt_capped"][0, 0])
    np.testing.assert_allclose(capped["vpt"].values.ravel()[1:], 0.3)
    assert bool(capped["vpt_capped"].values.ravel()[1:].all())


def test_reference_agreement_time_shrinks_with_a_coarser_rk4(ds, setup):
    from dynlab.emulators.reference import system_from_dataset

    system = system_from_dataset(ds)
    x0 = torch.as_tensor(ds["X"].isel(member=[4, 5], time=0).values)
    kw = dict(horizon=20, scale=setup.climate_scale, threshold=1e-6)
    fine, _, err_fine = reference_agreement_time(system, x0, dt=0.01, steps_per_save=5, **kw)
    coarse, _, err_coarse = reference_agreement_time(system, x0, dt=0.05, steps_per_save=1, **kw)
    assert np.all(coarse < fine) and np.all(err_coarse[:, 0] > 10 * err_fine[:, 0])


def test_lyapunov_exponent_is_cached(ds, tmp_path):
    from dynlab.emulators.reference import system_from_dataset

    system = system_from_dataset(ds)
    x0 = torch.as_tensor(ds["X"].isel(member=[0], time=0).values)
    lam = leading_lyapunov_exponent(system, x0, dt=0.01, time=1.0, transient_time=0.2)
    cache = json.loads((tmp_path / "cache" / "lyapunov.json").read_text())
    (entry,) = cache.values()
    assert entry["value"] == lam and entry["n"] == 10 and 0 < entry["stderr"] < lam  # 1 member x 10 time blocks
    # a cached value is returned without computing (a nonsense x0 would fail otherwise)
    assert leading_lyapunov_exponent(system, x0[:, :0], dt=0.01, time=1.0, transient_time=0.2) == lam


def test_evaluate_emulators_writes_metrics_summary_report_figures(ds, tmp_path):
    out = tmp_path / "ev"
    metrics, summ = evaluate_emulators({"hippo": HiPPOEmulator(8, dt=0.05, N=4, theta_steps=4)}, ds, TEST,
                                       train_members=TRAIN, out_dir=out, lambda1=1.2, agreement=False,
                                       **SMALL)
    stored = xr.open_zarr(out / "metrics.zarr", consolidated=False)
    assert [str(v) for v in stored["learner"].values] == ["hippo", *DEFAULT_BASELINES]
    assert stored["rmse"].dims == ("learner", "lead") and stored["vpt"].dims == ("learner", "member", "start")
    assert stored["wasserstein"].dims == ("learner", "variable") and stored.sizes["lead"] == 20
    assert stored["reference_agreement_time"].dims == ("member", "start")  # NaN: agreement=False
    np.testing.assert_allclose(stored["vpt_lyapunov"].values, 1.2 * stored["vpt"].values)
    written = json.loads((out / "summary.json").read_text())
    assert written == json.loads(json.dumps(summ))
    assert sorted(written["ranking"]) == sorted(["hippo", *DEFAULT_BASELINES]) and written["rank"] >= 1
    # RK4 at the save interval is the best forecast here; Euler is worse than Heun, Heun than RK4
    vpt = {n: (written if n == "hippo" else written["baselines"][n])["vpt_median_eps0.5"] for n in written["ranking"]}
    assert written["ranking"][0] == "rk4" and vpt["euler"] <= vpt["heun"] <= vpt["rk4"]
    lo, hi = written["intervals"]["vpt_median_eps0.5"]
    assert lo <= written["vpt_median_eps0.5"] <= hi
    d = written["differences"]["persistence"]["rmse_lead1"]
    assert d["estimate"] == pytest.approx(written["rmse_lead1"] - written["baselines"]["persistence"]["rmse_lead1"])
    for key in ("vpt_median", "rmse_lead1", "acc_lead1", "wasserstein_mean"):
        assert written[key] is not None and written["baselines"]["persistence"][key] is not None
        assert key in written["baselines"]["linear"]
    assert written["learner"] == "hippo" and written["lambda1"] == 1.2
    # the linear baseline was fitted on the training members and beats persistence at lead 1
    assert written["baselines"]["linear"]["rmse_lead1"] < written["baselines"]["persistence"]["rmse_lead1"]
    report = (out / "report.md").read_text()
    for name in ("hippo", "persistence", "linear", "imperfect", "VPT ε=0.5", "Paired differences"):
        assert name in report
    for png in ("error_growth", "hovmoller", "histograms", "spectra"):
        assert f"figures/{png}.png" in report
        assert (out / "figures" / f"{png}.png").stat().st_size > 1000


def test_evaluate_emulator_single(ds):
    out = evaluate_emulator(Persistence(8), ds, TEST, train_members=TRAIN, lyapunov=False, agreement=False, **SMALL)
    assert out.attrs["learner"] == "Persistence" and "spectrum_truth" in out and "rmse" in out
    assert np.isnan(out.attrs["lambda1"]) and bool(np.isnan(out["vpt_lyapunov"]).all())


def test_evaluate_bad_inputs(tmp_path, ds):
    with pytest.raises(ConfigError, match="run is required"):
        evaluate(compose("evaluate"))
    with pytest.raises(StoreError, match="no run directory"):
        evaluate(compose("evaluate", [f"run={tmp_path / 'missing'}"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="holds no checkpoint"):
        evaluate(compose("evaluate", [f"run={tmp_path / 'empty'}"]))
    with pytest.raises(ConfigError, match="unknown config key 'eval.horizn'"):
        evaluate({"run": str(tmp_path / "empty"), "eval": {"horizn": 3}})
    assert main(["evaluate", f"run={tmp_path / 'missing'}"]) == 2
    with pytest.raises(ValueError, match="exceeds the 121 saved times"):
        prepare_evaluation(ds, TEST, context=100, horizon=30, agreement=False, lyapunov=False)
    with pytest.raises(ValueError, match=r"test members \[17\] are not in the dataset"):
        prepare_evaluation(ds, [17], agreement=False, lyapunov=False)


def test_evaluate_run_directory_from_the_cli(store, ds, tmp_path):
    """A run directory as `dynlab train` writes it (checkpoint, split.json, dataset.json, config.yaml)."""
    import dynlab.train.checkpoint as ckpt
    run = tmp_path / "run"
    codec = StateCodec.from_dataset(ds)
    train = torch.as_tensor(codec.encode(ds.sel(member=TRAIN)))
    em = LinearOneStep(8, ridge=1e-3).fit(train)
    ckpt.save_checkpoint(run, 0, {"learner": {"name": "linear", "ridge": 1e-3}, "codec": codec.to_dict(), "dt": 0.05,
                                  "system": {"name": "lorenz96", "K": 8, "F": 8.0}, "dtype": "float64",
                                  "state_dict": em.state_dict(), "step": 0})
    (run / "split.json").write_text(json.dumps({"train": TRAIN, "val": [], "test": TEST}))
    (run / "dataset.json").write_text(json.dumps({"store": str(store), "dt": 0.05, "codec": codec.to_dict()}))
    (run / "config.yaml").write_text("data:\n  store: %s\n  context: 5\nlearner:\n  name: linear\n" % store)
    rc = main(["evaluate", f"run={run}", "eval.horizon=20", "eval.starts_per_member=2", "eval.long_rollout=100",
               "eval.spectrum_nperseg=32", "eval.bins=10", "eval.lyapunov_time=2.0", "eval.lyapunov_transient=0.5"])
    assert rc == 0
    summ = json.loads((run / "summary.json").read_text())
    assert summ["learner"] == "linear"
    assert set(summ["baselines"]) == {b if b != "linear" else "linear (baseline)" for b in DEFAULT_BASELINES}
    assert summ["context"] == 5 and summ["horizon"] == 20 and summ["lambda1"] > 0
    # the run's linear map was fitted with the same ridge on the same members: the same scores
    assert summ["rmse_lead1"] == pytest.approx(summ["baselines"]["linear (baseline)"]["rmse_lead1"], rel=1e-3)
    assert (run / "metrics.zarr").is_dir() and (run / "report.md").exists()
    assert (run / "figures" / "error_growth.png").exists()


# --- dynlab.testing ---------------------------------------------------------------------------

def test_assert_forecast_skill(ds):
    ref = ReferenceEmulator.from_dataset(ds)
    scores = assert_forecast_skill(ref, ds, test_members=TEST, context=5, horizon=10, min_vpt=0.5,
                                   max_rmse_lead1=1e-10)
    assert float(scores["rmse"].max()) < 1e-12
    with pytest.raises(AssertionError, match="does not beat persistence"):
        assert_forecast_skill(Persistence(8), ds, test_members=TEST, context=5, horizon=10)
    with pytest.raises(AssertionError, match="median valid prediction time .* < min_vpt = 0.5"):
        assert_forecast_skill(Persistence(8), ds, test_members=TEST, context=5, horizon=10, min_vpt=0.5,
                              beat_persistence=False)


def test_assert_conserves_and_climate(ds):
    x = torch.as_tensor(StateCodec.from_dataset(ds).encode(ds.sel(member=TEST)))
    energy = lambda s: 0.5 * (s ** 2).sum(-1)  # noqa: E731
    assert np.all(assert_conserves(Persistence(8), x[:, :5], 10, energy) == 0)
    damped = LinearOneStep(8)
    damped.weight.mul_(0.9)  # x_{t+1} = 0.9 x_t loses energy
    with pytest.raises(AssertionError, match="invariant drifts by .* > rtol"):
        assert_conserves(damped, x[:, :5], 10, energy, rtol=0.1)
    w1 = assert_climate(ReferenceEmulator.from_dataset(ds), ds, test_members=TEST, context=5, long_rollout=100,
                        max_wasserstein=1.0)
    assert set(w1) == {"X"}
    with pytest.raises(AssertionError, match="Wasserstein-1 distance of X"):
        assert_climate(damped, ds, test_members=TEST, context=5, long_rollout=100, max_wasserstein=1.0)
