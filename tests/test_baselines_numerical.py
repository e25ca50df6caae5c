"""Baselines: every one through the Emulator contract; the numerical models converge at their orders;
the imperfect model with zero error is the reference RK4 at the save interval; the fitted baselines
recover what they fit (AR(1) coefficient, mean); polynomial extrapolation is exact on polynomials."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dynlab.emulators import ReferenceEmulator, StateCodec, build_emulator
from dynlab.emulators.baselines import (Climatology, DampedPersistence, PolynomialExtrapolation,
                                        extrapolation_weights)
from dynlab.emulators.codec import FieldSpec
from dynlab.emulators.reference import imperfect_model, imperfect_system, numerical_model
from dynlab.testing import assert_emulator_contract
from simulators import make_integrator, make_system

K = 8
CODEC = StateCodec((FieldSpec("X", ("k",), (K,)),))
BASELINES = ["persistence", "damped_persistence", "climatology", "linear", "polynomial", "euler", "heun", "rk4",
             "imperfect"]


@pytest.fixture(scope="module")
def l96_windows():
    """A short float64 Lorenz96 (K=8) ensemble on the attractor, saved every 0.05."""
    system = make_system("lorenz96", K=K)
    x0 = 8.0 + torch.randn(6, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    path = make_integrator("rk4").integrate(system, x0, t0=0.0, dt=0.01, n_steps=1500, save_every=5)
    return path.transpose(0, 1)[:, 100:]  # (6, 200, K), after a spin-up of 5 time units


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_meets_the_emulator_contract(l96_windows, name):
    em = build_emulator({"name": name}, CODEC, l96_windows[:4], dt=0.05, system=make_system("lorenz96", K=K))
    assert not em.trainable and em.learner_name == name
    assert_emulator_contract(em.double(), l96_windows[4:, :12], atol=1e-10)


def test_imperfect_model_with_zero_error_is_the_reference_rk4_at_the_save_interval(l96_windows):
    system = make_system("lorenz96", K=K)
    exact = imperfect_model(system, 0.05, CODEC, error=0.0)
    reference = ReferenceEmulator(system, "rk4", dt=0.05, steps_per_save=1, codec=CODEC)
    ctx = l96_windows[:, :3]
    assert torch.equal(exact.rollout(ctx, 20), reference.rollout(ctx, 20))
    wrong = imperfect_model(system, 0.05, CODEC, error=0.01)
    assert wrong.system.params.F == pytest.approx(8.08) and "F = 8.08" in wrong.description
    # the one-step difference is the parameter error: dx/dF = 1 per unit time, so 0.08 * 0.05 per step
    step = (wrong(ctx) - exact(ctx)).abs()
    assert float(step.mean()) == pytest.approx(0.08 * 0.05, rel=0.05)
    truncated, what = imperfect_system(make_system("lorenz96_two_scale", K=K, J=4), 0.01, CODEC)
    assert truncated.name == "lorenz96" and truncated.params.K == K and truncated.params.F == 20.0 and "Y" in what
    with pytest.raises(ValueError, match="no imperfect-model parameter is set for system 'henon_heiles'"):
        imperfect_system(make_system("henon_heiles"), 0.01)
    with pytest.raises(ValueError, match="error must be a finite number > -1"):
        imperfect_system(system, -1.0)


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_numerical_models_converge_at_their_order(method, order):
    """One step of h from Lorenz63 states against Dormand-Prince at tight tolerance: local error O(h^{p+1})."""
    system = make_system("lorenz63")
    codec = StateCodec((FieldSpec("x", (), ()), FieldSpec("y", (), ()), FieldSpec("z", (), ())))
    x0 = torch.tensor([[1.0, 1.0, 20.0], [-5.0, -3.0, 25.0]], dtype=torch.float64)
    errors, steps = [], np.array([0.004, 0.002, 0.001])
    for h in steps:
        em = numerical_model(system, method, float(h), codec)
        exact = make_integrator("dopri5", rtol=1e-12, atol=1e-14).integrate(
            system, x0, t0=0.0, dt=float(h), n_steps=1, save_every=1)[-1]
        errors.append(float((em.advance(x0) - exact).abs().max()))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order + 0.8 < slope < order + 1.3, (slope, errors)


def test_damped_persistence_recovers_an_ar1_coefficient_and_climatology_the_mean():
    rng = np.random.default_rng(0)
    rho, mean, n = np.array([0.9, 0.5]), np.array([3.0, -1.0]), 20000
    from scipy.signal import lfilter

    noise = rng.normal(0.0, 1.0, (n, 2))
    x = np.stack([lfilter([1.0], [1.0, -r], noise[:, i]) for i, r in enumerate(rho)], axis=1)  # x_t = ρ x_{t-1} + ξ_t
    data = torch.as_tensor(x + mean).reshape(20, n // 20, 2)
    em = DampedPersistence(2).fit(data)
    np.testing.assert_allclose(em.rho.numpy(), rho, atol=0.02)
    np.testing.assert_allclose(em.mean.numpy(), mean, atol=0.2)
    # forecast h steps ahead = c + rho^h (x - c)
    start = torch.tensor([[5.0, 2.0]], dtype=torch.float64)
    out = em.rollout(start[:, None], 3)[0, -1]
    torch.testing.assert_close(out, em.mean + em.rho ** 3 * (start[0] - em.mean))
    clim = Climatology(2).fit(data)
    torch.testing.assert_close(clim(data[:1, :4]), clim.mean.expand(1, 4, 2))
    with pytest.raises(ValueError, match=r"training windows must have shape \(N, L >= 2, 2\)"):
        DampedPersistence(2).fit(data[:, :1])


def test_polynomial_extrapolation_is_exact_on_polynomials():
    np.testing.assert_allclose(extrapolation_weights(4, 3).numpy(), [-1.0, 4.0, -6.0, 4.0], atol=1e-12)
    np.testing.assert_allclose(extrapolation_weights(3, 1).sum().item(), 1.0)  # constants are kept
    t = torch.arange(12, dtype=torch.float64) * 0.1
    cubic = (2.0 - t + 0.5 * t ** 2 - 3.0 * t ** 3)[None, :, None]
    em = PolynomialExtrapolation(1, points=4)
    pred = em(cubic)
    torch.testing.assert_close(pred[0, 3:-1], cubic[0, 4:], rtol=0, atol=1e-10)  # from the 4th sample on
    torch.testing.assert_close(pred[0, 0], cubic[0, 0])  # one sample: persistence
    quad = PolynomialExtrapolation(1, points=6, degree=2)  # least squares over 6 points, exact on quadratics
    q = (1.0 + t - 2.0 * t ** 2)[None, :, None]
    torch.testing.assert_close(quad(q)[0, 5:-1], q[0, 6:], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"degree must be an integer in \[0, points - 1 = 3\], got 4"):
        PolynomialExtrapolation(1, points=4, degree=4)
