"""The emulator's climate against truth-vs-truth noise floors (issue 14, section 1).

Two independent samples of one distribution give ratios near 1; a shifted, rescaled or
white-noise sample gives ratios far above 1; on Lorenz96 the reference system's spatial
spectrum sits at the floor while a smoothed field does not; ``assert_climate`` with
``max_ratio_to_floor`` passes the reference emulator and fails persistence."""
from __future__ import annotations

import numpy as np
import pytest

import dynlab
from dynlab.config import compose
from dynlab.emulators import Persistence, ReferenceEmulator, StateCodec
from dynlab.eval.climate import (autocorrelation, climate_samples, climate_scores, drop_transient,
                                 log_spectral_distance, sliced_wasserstein, spatial_power_spectrum, wasserstein_1)
from dynlab.pipeline.simulate import simulate
from dynlab.testing import assert_climate

GROUPS = {"u": slice(0, 2), "v": slice(2, 4)}
RATIOS = ["wasserstein_ratio", "acf_ratio", "spec_time_ratio", "sliced_wasserstein_ratio", "spec_space_ratio"]
R, T, D = 8, 500, 4  # runs x saves x features of every sample


def ar1(rng, phi=0.9, mean=0.0, std=1.0, saves=T):
    """Stationary AR(1) x_t = phi x_{t-1} + sqrt(1 - phi^2) eps_t (unit variance), (R, saves, D)."""
    x = np.empty((R, saves, D))
    x[:, 0] = rng.standard_normal((R, D))
    eps = rng.standard_normal((R, saves, D)) * np.sqrt(1 - phi ** 2)
    for t in range(1, saves):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return mean + std * x


def scores(e, a, b):
    return climate_scores(e, a, b, GROUPS, lattice=["u"], max_lag=20, nperseg=64)


def test_independent_samples_sit_at_the_floor():
    """Ratios of a third truth sample over 12 seeds: median about 1; by the triangle
    inequality mean(d(E,A), d(E,B)) >= d(A,B)/2, so every ratio is >= 0.5."""
    ratios = {k: [] for k in RATIOS}
    for seed in range(12):
        rng = np.random.default_rng(seed)
        out = scores(ar1(rng), ar1(rng), ar1(rng))
        for k in RATIOS:
            ratios[k].extend(np.atleast_1d(out[k].values)[np.isfinite(np.atleast_1d(out[k].values))].tolist())
    for k, v in ratios.items():
        v = np.asarray(v)
        assert 0.7 <= np.median(v) <= 1.4, (k, np.median(v))
        assert v.min() >= 0.5 - 1e-12, (k, v.min())
        assert np.mean(v <= 2.0) >= 0.75, (k, v)


@pytest.mark.parametrize("wrong, bad", [
    (dict(mean=0.5), ["wasserstein_ratio", "sliced_wasserstein_ratio"]),           # shifted mean by sigma/2
    (dict(std=1.5), ["wasserstein_ratio", "sliced_wasserstein_ratio", "spec_time_ratio"]),  # 1.5x the spread
    (dict(phi=0.0), ["acf_ratio", "spec_time_ratio"]),                             # white noise, same marginal
])
def test_wrong_climates_are_far_above_the_floor(wrong, bad):
    rng = np.random.default_rng(99)
    a, b = ar1(rng), ar1(rng)
    out, same = scores(ar1(rng, **wrong), a, b), scores(ar1(rng), a, b)
    for k in bad:
        assert np.all(out[k].values > 3.0), (k, out[k].values)
        assert np.all(out[k].values > 2 * same[k].values), (k, out[k].values, same[k].values)
    assert {f"{k}_floor" for k in ("wasserstein", "acf", "spec_time", "spec_space")} <= set(out.data_vars)
    assert out["spec_space"].isnull().values.tolist() == [False, True]  # only u is a lattice


def test_building_blocks_against_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20000)
    # W1 of a shift is the shift; sliced W1 of a shift c along e_1 is |c| E|theta_1| over the sphere
    assert wasserstein_1(x + 0.3, x) == pytest.approx(0.3)
    pts = rng.standard_normal((5000, 3))
    shift = np.array([1.0, 0.0, 0.0])
    # E|θ1| = 1/2 for θ uniform on the 2-sphere (θ1 is uniform on [-1, 1])
    assert sliced_wasserstein(pts + shift, pts, n_projections=2000) == pytest.approx(0.5, rel=0.05)
    assert sliced_wasserstein(np.full((3, 3), np.nan), pts) == np.inf
    # AR(1) autocorrelation is phi^lag (long series: the mean-removal bias is O(1/saves))
    np.testing.assert_allclose(autocorrelation(ar1(np.random.default_rng(2), phi=0.8, saves=5000), 5),
                               0.8 ** np.arange(6), atol=0.01)
    a = ar1(np.random.default_rng(2))
    np.testing.assert_allclose(autocorrelation(np.ones((2, 10, 1)), 3), 1.0)  # frozen: perfectly persistent
    # spatial spectrum of a single cosine wave of wavenumber 2 on 8 sites: all power at m = 2
    k = np.arange(8)
    s = spatial_power_spectrum(np.cos(2 * np.pi * 2 * k / 8)[None, None, :])
    assert np.argmax(s) == 2 and s[2] == pytest.approx(2.0) and np.delete(s, 2).max() < 1e-20
    # band limit: bins below the band fraction cannot matter however wrong they are
    ref = np.array([1.0, 0.1, 1e-9])
    assert log_spectral_distance(np.array([1.0, 0.1, 1.0]), ref, ref) == 0.0
    assert log_spectral_distance(np.array([10.0, 0.1, 1e-9]), ref, ref) == pytest.approx(np.sqrt(1 / 1.1))
    with pytest.raises(ValueError, match="one shape"):
        climate_scores(a[:, :100], a, a)
    with pytest.raises(ValueError, match="transient"):
        drop_transient(a, T)
    with pytest.raises(ValueError, match="lattice"):
        climate_scores(a, a, a, GROUPS, lattice=["w"])


# --- Lorenz96 ---------------------------------------------------------------------------------------

TEST = [10, 11]
STEPS, TRANSIENT = 300, 60  # saves of 0.05: 15 model time units, 3 dropped


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("climate") / "l96.zarr"
    simulate(compose("simulate", [f"out={out}", "system.K=16", "ensemble.members=12", "time.t_end=1",
                                  "time.spinup=2", "progress=false"]), log=lambda m: None)
    return dynlab.open_dataset(out)


@pytest.fixture(scope="module")
def samples(ds):
    """Reference rollouts from 4 members (E) and from 2 x 4 other members (A, B)."""
    codec = StateCodec.from_dataset(ds)
    x = codec.encode(ds)  # (12, T, 16)
    ref = ReferenceEmulator.from_dataset(ds)
    return climate_samples(ref, ref, x[8:, :5], x[:8, :5], STEPS, TRANSIENT)


def test_lorenz96_spatial_spectrum_at_the_floor_and_smoothing_fails(samples):
    e, a, b = samples
    good = climate_scores(e, a, b, {"X": slice(0, 16)}, dt=0.05, lattice=["X"])
    # a (1/4, 1/2, 1/4) periodic filter damps wavenumber m by cos^2(pi m / K)
    smooth = 0.25 * np.roll(e, 1, axis=-1) + 0.5 * e + 0.25 * np.roll(e, -1, axis=-1)
    bad = climate_scores(smooth, a, b, {"X": slice(0, 16)}, dt=0.05, lattice=["X"])
    assert float(good["spec_space_ratio"][0]) < 2.0
    assert float(bad["spec_space_ratio"][0]) > 5.0
    for k in ("wasserstein_ratio", "acf_ratio", "spec_time_ratio", "sliced_wasserstein_ratio"):
        assert float(np.max(good[k].values)) < 2.5, (k, good[k].values)


def test_assert_climate_with_floor(ds):
    kw = dict(test_members=TEST, train_members=list(range(8)), context=5, long_rollout=STEPS, transient=TRANSIENT,
              max_wasserstein=None, lattice=["X"])
    out = assert_climate(ReferenceEmulator.from_dataset(ds), ds, max_ratio_to_floor=3.0, **kw)
    assert out.attrs["climate_runs"] == 2 and out.attrs["climate_saves"] == STEPS - TRANSIENT
    with pytest.raises(AssertionError, match="times its truth-vs-truth floor"):
        assert_climate(Persistence(16), ds, max_ratio_to_floor=3.0, **kw)
    with pytest.raises(AssertionError, match="acf of X is"):  # a frozen rollout: rho = 1 at every lag
        assert_climate(Persistence(16), ds, max_ratio_to_floor={"acf": 3.0}, **kw)
    with pytest.raises(ValueError, match="max_ratio_to_floor"):
        assert_climate(Persistence(16), ds, max_ratio_to_floor={"energy": 2.0}, **kw)
