"""In-context HiPPO predictor: exact derivative readout, convergence order, and skill on
Lorenz63/Lorenz96 with no training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from scipy.integrate import solve_ivp

from dynlab.models.hippo_predictor import HiPPOPredictor, derivative_readout
from dynlab.models.ssm.hippo import hippo_matrix

F64 = torch.float64


def legendre_projection(f, start, end, N):
    """c_n = (1/(end-start)) ∫ f(s) √(2n+1) P_n(x(s)) ds on [start, end]."""
    x, w = legendre.leggauss(64)
    s = start + (x + 1) * (end - start) / 2
    basis = np.stack([np.sqrt(2 * n + 1) * legendre.legval(x, np.eye(N)[n]) for n in range(N)])
    return basis @ (w * f(s)) / 2


@pytest.mark.parametrize("measure", ["legt", "legs"])
def test_readout_gives_exact_derivatives_of_polynomials(measure):
    N, t, theta = 7, 2.3, 0.8
    poly = np.polynomial.Polynomial(np.random.default_rng(0).standard_normal(N))  # degree N - 1
    start, window = (t - theta, theta) if measure == "legt" else (0.0, t)
    c = legendre_projection(poly, start, t, N)
    derivatives = derivative_readout(N, window, 4).numpy() @ c
    expected = [poly.deriv(m)(t) if m else poly(t) for m in range(5)]
    np.testing.assert_allclose(derivatives, expected, rtol=1e-9, atol=1e-9)
    # one degree too many is not represented: the readout must then miss
    poly_high = np.polynomial.Polynomial(np.r_[np.zeros(N), 1.0])
    c_high = legendre_projection(poly_high, start, t, N)
    assert abs(derivative_readout(N, window, 1).numpy()[1] @ c_high - poly_high.deriv()(t)) > 1e-3


def test_first_order_hold_update_is_exact_for_linear_input():
    N, theta, dt = 6, 0.3, 0.02
    predictor = HiPPOPredictor("legt", N=N, theta=theta, dt=dt)
    A, B = (m.numpy() for m in hippo_matrix("legt", N, theta=theta))
    c0, (f0, f1) = np.random.default_rng(1).standard_normal(N), (0.4, -1.3)
    sol = solve_ivp(lambda s, c: A @ c + B * (f0 + (f1 - f0) * s / dt), (0.0, dt), c0,
                    method="DOP853", rtol=1e-13, atol=1e-14)
    update = (predictor.transition.numpy() @ c0 + predictor.input_prev.numpy() * f0
              + predictor.input_new.numpy() * f1)
    np.testing.assert_allclose(update, sol.y[:, -1], atol=1e-11)


def one_step_errors(order, steps, discretization="foh", N=8, theta=0.5, frequency=1.0, discard=3.0):
    errors = []
    for dt in steps:
        predictor = HiPPOPredictor("legt", N=N, theta=theta, dt=dt, order=order, discretization=discretization)
        t = torch.arange(0.0, discard + 1.0, dt, dtype=F64)
        x = torch.sin(frequency * t)[None, :, None]
        prediction = predictor(x)[0, :-1, 0]
        k0 = int(discard / dt)  # after the start-up transient
        errors.append((prediction[k0:] - x[0, k0 + 1:, 0]).abs().max().item())
    return np.array(errors)


@pytest.mark.parametrize("order, slope_range", [(1, (1.85, 2.15)), (2, (2.75, 3.35)), (3, (3.8, 7.0))])
def test_one_step_error_falls_at_the_predicted_order(order, slope_range):
    """One-step error O(Δt^{p+1}): Taylor remainder, memory error O(Δt²) corrected for foh."""
    steps = np.array([0.01, 0.005, 0.0025, 0.00125])
    errors = one_step_errors(order, steps)
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope_range[0] < slope < slope_range[1], (slope, errors)


def test_uncorrected_bilinear_memory_caps_the_order_at_three():
    steps = np.array([0.01, 0.005, 0.0025, 0.00125])
    slope = np.polyfit(np.log(steps), np.log(one_step_errors(3, steps, "bilinear")), 1)[0]
    assert 2.8 < slope < 3.2, slope


@pytest.fixture(scope="module")
def lorenz_trajectories():
    from simulators import TimeGrid, make_integrator, make_system, run_members
    grid = TimeGrid(dt=0.01, save_every=0.01, t_end=20.0, spinup=5.0)
    out63 = run_members(make_system("lorenz63"), make_integrator("rk4"), grid, seed=0, members=range(4))
    out96 = run_members(make_system("lorenz96", K=40, F=8.0), make_integrator("rk4"), grid, seed=0,
                        members=range(4))
    return {"lorenz63": torch.stack([out63["x"], out63["y"], out63["z"]], dim=-1), "lorenz96": out96["X"]}


@pytest.mark.parametrize("system", ["lorenz63", "lorenz96"])
@pytest.mark.parametrize("order, min_gain", [(1, 50.0), (2, 1000.0)])
def test_beats_persistence_on_lorenz_without_training(lorenz_trajectories, system, order, min_gain):
    x = lorenz_trajectories[system]  # (members, T, D)
    predictor = HiPPOPredictor("legt", N=6, theta=0.1, dt=0.01, order=order)
    assert len(list(predictor.parameters())) == 0
    warmup = 20  # two windows
    prediction = predictor(x)
    mse = ((prediction[:, warmup:-1] - x[:, warmup + 1:]) ** 2).mean()
    persistence = ((x[:, warmup:-1] - x[:, warmup + 1:]) ** 2).mean()
    assert persistence / mse > min_gain, (persistence / mse).item()


@pytest.mark.parametrize("measure", ["legt", "legs"])
def test_parallel_recurrent_and_rollout_modes_agree(measure):
    predictor = HiPPOPredictor(measure, N=5, theta=0.2, dt=0.02, order=2)
    t = torch.arange(0.0, 3.0, 0.02, dtype=F64)
    x = torch.stack([torch.sin(2 * t), torch.cos(3 * t) + t], dim=-1)[None].repeat(2, 1, 1)  # (2, L, 2)
    x[1] *= -0.5
    parallel = predictor(x)
    state, recurrent = predictor.default_state(2), []
    for k in range(x.shape[1]):
        y, state = predictor.step(x[:, k], state)
        recurrent.append(y)
    torch.testing.assert_close(parallel, torch.stack(recurrent, 1), atol=1e-12, rtol=0)
    torch.testing.assert_close(parallel[:, 0], x[:, 0])  # empty memory: persistence

    context = x[:, :100]
    forecast = predictor.rollout(context, 4)
    assert forecast.shape == (2, 4, 2)
    for j in range(4):  # each forecast is the one-step prediction from the fed-back sequence
        fed_back = torch.cat([context, forecast[:, :j]], dim=1)
        torch.testing.assert_close(forecast[:, j], predictor(fed_back)[:, -1], atol=1e-12, rtol=0)
    # and it forecasts: far better than holding the last context value
    error = (forecast - x[:, 100:104]).abs().max()
    persistence = (context[:, -1:] - x[:, 100:104]).abs().max()
    assert error < persistence / (30 if measure == "legt" else 1.5)  # LegS remembers all of [0, t]


def test_legs_predictor_follows_a_smooth_signal():
    predictor = HiPPOPredictor("legs", N=8, dt=0.01, order=1)
    t = torch.arange(0.0, 2.0, 0.01, dtype=F64)
    x = (1 + t - 2 * t ** 2 + 0.5 * t ** 3)[None, :, None]
    error = (predictor(x)[0, 100:-1, 0] - x[0, 101:, 0]).abs().max()
    persistence = (x[0, 100:-1, 0] - x[0, 101:, 0]).abs().max()
    assert error < persistence / 50


def test_float32_input_and_no_parameters():
    predictor = HiPPOPredictor()
    assert len(list(predictor.parameters())) == 0
    x = torch.randn(3, 40, 2)
    assert predictor(x).dtype == torch.float32
    assert predictor.rollout(x, 5).shape == (3, 5, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(measure="lagt"), "lagt"),
    (dict(N=1), "N.*1"),
    (dict(N=4, order=4), "order.*4"),
    (dict(order=0), "order.*0"),
    (dict(dt=0.0), "dt.*0.0"),
    (dict(theta=-0.5), "theta.*-0.5"),
    (dict(theta=0.01, dt=0.02), "theta=0.01"),
    (dict(discretization="zoh"), "zoh"),
])
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HiPPOPredictor(**kwargs)


def test_bad_inputs_raise_clear_errors():
    predictor = HiPPOPredictor()
    with pytest.raises(ValueError, match=r"\(B, L, D\).*\(4, 3\)"):
        predictor(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        predictor.step(torch.randn(4), predictor.default_state(4))
    with pytest.raises(ValueError, match="steps.*0"):
        predictor.rollout(torch.randn(1, 10, 2), 0)
    with pytest.raises(ValueError, match="forcing"):
        predictor(torch.randn(1, 10, 2), forcing=torch.randn(1, 10, 1))
    _, state = predictor.step(torch.randn(2, 3), predictor.default_state(2))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        predictor.step(torch.randn(2, 4), state)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_window_in_samples_converges_at_second_order_for_every_order(order):
    """With θ = 8Δt (the emulator's default theta_steps) the predictor is one fixed filter of the last
    samples, exact for linear signals only: O(Δt²) whatever the Taylor order (the docstring's claim)."""
    steps = np.array([0.02, 0.01, 0.005])
    errors = []
    for dt in steps:
        predictor = HiPPOPredictor("legt", N=8, theta=8 * dt, dt=dt, order=order)
        t = torch.arange(0.0, 4.0, dt, dtype=F64)
        x = torch.sin(t)[None, :, None]
        k0 = int(3.0 / dt)
        errors.append((predictor(x)[0, k0:-1, 0] - x[0, k0 + 1:, 0]).abs().max().item())
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 1.85 < slope < 2.25, (slope, errors)
