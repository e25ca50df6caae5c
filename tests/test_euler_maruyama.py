"""Euler–Maruyama convergence: strong order ½ and weak order 1 on geometric Brownian
motion (exact solution for the very increments the integrator drew), strong order 1
with additive noise (Ornstein–Uhlenbeck, coarse increments = sums of fine ones)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulators import CounterRNG, make_integrator, make_system

EM = make_integrator("euler_maruyama")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors, many steps: intra-op threads only add synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def brownian_at_end(rng: CounterRNG, n_steps: int, dt: float) -> torch.Tensor:
    """W_T from the normals euler_maruyama drew: ξ_n = rng.normal(state_shape, step=n), as
    ``AbstractFixedStepIntegrator.integrate`` draws them; W_T = √dt Σ ξ_n. Shape (M, 1)."""
    total = torch.zeros(len(rng.members), 1, dtype=torch.float64)
    for n in range(n_steps):
        total += rng.normal((1,), step=n)
    return math.sqrt(dt) * total


def integrate_with_increments(system, x0: torch.Tensor, dW: torch.Tensor, dt: float) -> torch.Tensor:
    """Euler–Maruyama driven by given Brownian increments ``dW`` (M, N, *state): the
    integrator's own step with ξ_n = ΔW_n/√dt. Returns the state after N steps."""
    x = x0
    for n in range(dW.shape[1]):
        x = EM.step(system, n * dt, x, dt, dW[:, n] / math.sqrt(dt))
    return x


def slope(h, err) -> float:
    return float(np.polyfit(np.log(h), np.log(err), 1)[0])


@pytest.fixture(scope="module")
def gbm_errors():
    """Strong and weak errors at T = 1 for dt = 2^-2 … 2^-7 (μ = 1, σ = 1, X0 = 1)."""
    gbm = make_system("gbm", mu=1.0, sigma=1.0, x0=1.0)
    members = 20_000
    rng = CounterRNG(7, range(members))
    x0 = gbm.sample_initial(rng)
    out = {"h": [], "strong": [], "weak": [], "weak_se": []}
    for p in range(2, 8):
        n = 2 ** p
        dt = 1.0 / n
        x_em = EM.integrate(gbm, x0, t0=0.0, dt=dt, n_steps=n, save_every=n, rng=rng)[-1]
        x_exact = gbm.exact(1.0, brownian_at_end(rng, n, dt))
        diff = x_em - x_exact
        out["h"].append(dt)
        out["strong"].append(float(diff.abs().mean()))
        # E[X_em] − E[X_T] = E[X_em − X_exact]: the exact value on the same path is a
        # control variate, which removes most of the Monte Carlo noise of the mean
        out["weak"].append(float(diff.mean()))
        out["weak_se"].append(float(diff.std() / math.sqrt(members)))
    return {k: np.asarray(v) for k, v in out.items()}


def test_gbm_strong_order_half(gbm_errors):
    order = slope(gbm_errors["h"], gbm_errors["strong"])
    assert 0.4 < order < 0.62, order
    assert gbm_errors["strong"][-1] < 0.15


def test_gbm_weak_order_one(gbm_errors):
    # the finest steps' weak errors drown in Monte Carlo noise: fit dt = 2^-2 … 2^-6
    weak, se, h = gbm_errors["weak"][:5], gbm_errors["weak_se"][:5], gbm_errors["h"][:5]
    # E[X_em(T)] = X0 (1 + μ dt)^N exactly, below X0 e^{μT}: the error is negative
    assert (weak < 0).all()
    assert (np.abs(weak) > 3 * se).all()
    analytic = (1.0 + h) ** (1.0 / h) - math.e
    assert np.allclose(weak, analytic, atol=4 * se.max() + 0.02 * np.abs(analytic).max())
    order = slope(h, np.abs(weak))
    assert 0.8 < order < 1.15, order


def test_additive_noise_strong_order_one():
    """OU: dX = r(θ − X)dt + σ dB; reference on a 2^-12 grid from the same increments."""
    ou = make_system("ou", r=2.0, theta=1.0, sigma=0.8, x0=0.0)
    members, fine = 2000, 2 ** 12
    gen = torch.Generator().manual_seed(3)
    dW = torch.randn(members, fine, 1, generator=gen, dtype=torch.float64) / math.sqrt(fine)
    x0 = torch.zeros(members, 1, dtype=torch.float64)
    reference = integrate_with_increments(ou, x0, dW, 1.0 / fine)
    hs, errors = [], []
    for p in range(3, 8):
        n = 2 ** p
        coarse = dW.reshape(members, n, fine // n, 1).sum(2)  # coarse increments: sums of fine ones
        x = integrate_with_increments(ou, x0, coarse, 1.0 / n)
        hs.append(1.0 / n)
        errors.append(float((x - reference).abs().mean()))
    order = slope(hs, errors)
    assert 0.85 < order < 1.15, order


def test_increment_helper_matches_the_integrator():
    """The helper's path with the integrator's own normals equals ``integrate``."""
    gbm = make_system("gbm", mu=0.3, sigma=0.7, x0=2.0)
    rng = CounterRNG(11, [0, 5, 9])
    n, dt = 16, 1.0 / 16
    x0 = gbm.sample_initial(rng)
    dW = math.sqrt(dt) * torch.stack([rng.normal((1,), step=i) for i in range(n)], dim=1)
    direct = EM.integrate(gbm, x0, t0=0.0, dt=dt, n_steps=n, save_every=n, rng=rng)[-1]
    assert torch.allclose(integrate_with_increments(gbm, x0, dW, dt), direct, rtol=1e-13, atol=0)
