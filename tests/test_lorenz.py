"""The Lorenz family: equations against independent implementations and solvers,
conservation laws, energy budgets and Lyapunov spectra."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from simulators import (CounterRNG, Lorenz96TwoScale, TimeGrid, lyapunov_spectrum, make_integrator, make_system,
                        rk4_tangent_step, run_members)


def l96_loop(x: np.ndarray, F: float) -> np.ndarray:
    """Lorenz96 written index by index (independent of the vectorised code)."""
    K = len(x)
    return np.array([(x[(k + 1) % K] - x[k - 2]) * x[k - 1] - x[k] + F for k in range(K)])


def l96_two_scale_loop(x: np.ndarray, K: int, J: int, F: float, h: float, b: float, c: float) -> np.ndarray:
    """Two-scale Lorenz96 with explicit (j, k) indices; Y is one ring of length J*K."""
    X, Y = x[:K], x[K:].reshape(K, J)
    ring = lambda n: Y[(n // J) % K, n % J]  # noqa: E731 - ring element n = k*J + j
    dX = np.array([-X[k - 1] * (X[k - 2] - X[(k + 1) % K]) - X[k] + F - h * c / b * Y[k].sum() for k in range(K)])
    dY = np.zeros((K, J))
    for k in range(K):
        for j in range(J):
            n = k * J + j
            dY[k, j] = -c * b * ring((n + 1) % (J * K)) * (ring((n + 2) % (J * K)) - ring(n - 1)) \
                - c * Y[k, j] + h * c / b * X[k]
    return np.concatenate([dX, dY.ravel()])


def test_vector_fields_match_index_by_index_implementations():
    g = np.random.default_rng(0)
    l96 = make_system("lorenz96", K=7, F=8.0)
    x = g.normal(size=(3, 7))
    got = l96.vector_field(0.0, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.stack([l96_loop(r, 8.0) for r in x]), rtol=1e-13, atol=1e-12)

    p = dict(K=5, J=3, F=10.0, h=1.0, b=10.0, c=10.0)
    two = make_system("lorenz96_two_scale", **p)
    x = g.normal(size=(2, 5 * 4))
    got = two.vector_field(0.0, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.stack([l96_two_scale_loop(r, **p) for r in x]), rtol=1e-12, atol=1e-11)

    l63 = make_system("lorenz63")
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    expected = [10.0 * (2 - 1), 1 * (28 - 3) - 2, 1 * 2 - 8 / 3 * 3]
    np.testing.assert_allclose(l63.vector_field(0.0, x)[0].numpy(), expected, rtol=1e-15)


@pytest.mark.parametrize("name,params,t_end,dt", [("lorenz63", {}, 2.0, 0.001), ("lorenz96", {"K": 40, "F": 8.0}, 2.0, 0.001),
                                                  ("lorenz96_two_scale", {"K": 4, "J": 4, "F": 10.0}, 0.5, 0.0005)])
def test_agrees_with_scipy_dop853(name, params, t_end, dt):
    system = make_system(name, **params)
    x0 = system.sample_initial(CounterRNG(1, range(2)))
    # start on the attractor so the comparison is representative
    x0 = make_integrator("rk4").integrate(system, x0, t0=0.0, dt=0.005, n_steps=400, save_every=400)[-1]
    f = lambda t, y: system.vector_field(t, torch.from_numpy(y)).numpy()  # noqa: E731
    for i in range(2):
        ref = solve_ivp(f, (0.0, t_end), x0[i].numpy(), method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
        scale = np.abs(ref).max()
        n = round(t_end / dt)
        rk4 = make_integrator("rk4").integrate(system, x0[i:i + 1], t0=0.0, dt=dt, n_steps=n, save_every=n)[-1, 0]
        dp5 = make_integrator("dopri5", rtol=1e-11, atol=1e-11).integrate(
            system, x0[i:i + 1], t0=0.0, dt=t_end, n_steps=1, save_every=1)[-1, 0]
        assert np.abs(rk4.numpy() - ref).max() < 1e-7 * scale
        assert np.abs(dp5.numpy() - ref).max() < 1e-7 * scale


def test_lorenz96_advection_conserves_energy_and_budget_holds():
    l96 = make_system("lorenz96", K=40, F=8.0)
    x = 5 * torch.randn(100, 40, dtype=torch.float64)
    # the advection term alone conserves 1/2 sum X^2: X . adv(X) = 0
    assert float((x * l96.advection(x)).sum(-1).abs().max()) < 1e-11
    # so dE/dt = X . f(X) = -sum X^2 + F sum X
    dE = (x * l96.vector_field(0.0, x)).sum(-1)
    torch.testing.assert_close(dE, l96.invariants(x)["energy_tendency"], rtol=1e-12, atol=1e-10)
    # with damping and forcing removed the energy is an invariant of the flow
    adv_only = type("AdvOnly", (), {"vector_field": lambda self, t, y: l96.advection(y), "is_stochastic": False})()
    x0 = l96.sample_initial(CounterRNG(0, range(4)))
    out = make_integrator("dopri5", rtol=1e-11, atol=1e-11).integrate(adv_only, x0, t0=0.0, dt=0.5, n_steps=4, save_every=1)
    e0, e1 = 0.5 * (x0 ** 2).sum(-1), 0.5 * (out[-1] ** 2).sum(-1)
    assert float(((e1 - e0) / e0).abs().max()) < 1e-8


def test_two_scale_energy_budget_pointwise_and_along_a_trajectory():
    two = make_system("lorenz96_two_scale", K=8, J=32, F=20.0, h=1.0, b=10.0, c=10.0)
    x = torch.randn(50, two.state_shape[0], dtype=torch.float64) * 3
    dE = (x * two.vector_field(0.0, x)).sum(-1)
    budget = two.invariants(x)["energy_tendency"]
    assert float(((dE - budget) / budget.abs().clamp_min(1.0)).abs().max()) < 1e-12
    # along a short trajectory: E(t1) - E(t0) = integral of the budget (Simpson on fine saves)
    x0 = make_integrator("rk4").integrate(two, two.sample_initial(CounterRNG(0, range(3))), t0=0.0, dt=0.002,
                                          n_steps=1000, save_every=1000)[-1]
    traj = make_integrator("rk4").integrate(two, x0, t0=0.0, dt=0.0005, n_steps=400, save_every=1)
    traj = torch.cat([x0[None], traj])
    E = two.invariants(traj)["energy"]
    tend = two.invariants(traj)["energy_tendency"]
    h = 0.0005
    simpson = h / 3 * (tend[0] + tend[-1] + 4 * tend[1:-1:2].sum(0) + 2 * tend[2:-1:2].sum(0))
    rel = ((E[-1] - E[0]) - simpson).abs() / (E[-1] - E[0]).abs().clamp_min(1.0)
    assert float(rel.max()) < 1e-6


def _on_attractor(system, members, dt=0.01, t=20.0):
    x = system.sample_initial(CounterRNG(7, range(members)))
    n = round(t / dt)
    return make_integrator("rk4").integrate(system, x, t0=0.0, dt=dt, n_steps=n, save_every=n)[-1]


def test_lyapunov_sum_is_minus_K_and_ad_matches_analytic_tangent():
    l96 = make_system("lorenz96", K=40, F=8.0)
    x = _on_attractor(l96, 2)
    rk4 = make_integrator("rk4")
    ad = lyapunov_spectrum(lambda y: rk4.step(l96, 0.0, y, 0.01), x, dt=0.01, n_steps=30, qr_every=5)
    exact = lyapunov_spectrum(None, x, dt=0.01, n_steps=30, qr_every=5,
                              tangent_step=rk4_tangent_step(l96.vector_field, l96.jvp, 0.01))
    torch.testing.assert_close(ad, exact, rtol=1e-10, atol=1e-10)
    long = lyapunov_spectrum(None, x, dt=0.01, n_steps=1000, qr_every=10,
                             tangent_step=rk4_tangent_step(l96.vector_field, l96.jvp, 0.01))
    # trace identity: sum of all exponents = trace of the Jacobian = -K (RK4 at dt=0.01: ~1e-5 relative)
    assert float(((long.sum(-1) + 40) / 40).abs().max()) < 1e-5


def test_lorenz96_leading_exponent():
    l96 = make_system("lorenz96", K=40, F=8.0)
    x = _on_attractor(l96, 8)
    lam = lyapunov_spectrum(None, x, dt=0.01, n_steps=5000, qr_every=10, transient=300, n_exponents=4,
                            tangent_step=rk4_tangent_step(l96.vector_field, l96.jvp, 0.01))
    lam1 = float(lam[:, 0].mean())
    assert abs(lam1 - 1.67) < 0.05 * 1.67, lam1


def test_lorenz63_spectrum():
    l63 = make_system("lorenz63")
    x = _on_attractor(l63, 8)
    lam = lyapunov_spectrum(None, x, dt=0.01, n_steps=5000, qr_every=10, transient=300,
                            tangent_step=rk4_tangent_step(l63.vector_field, l63.jvp, 0.01)).mean(0)
    assert abs(float(lam[0]) - 0.906) < 0.05 * 0.906, lam
    assert abs(float(lam[1])) < 0.05
    assert abs(float(lam.sum()) - l63.jacobian_trace()) < 1e-3


def test_run_members_shapes_times_and_blowup():
    out = run_members(make_system("lorenz96_two_scale", K=4, J=3), make_integrator("rk4"),
                      TimeGrid(dt=0.005, save_every=0.05, t_end=1.0, spinup=0.5), seed=0, members=[3, 5])
    assert out["X"].shape == (2, 21, 4) and out["Y"].shape == (2, 21, 4, 3)
    assert torch.isfinite(out["Y"]).all()
    assert Lorenz96TwoScale.name == "lorenz96_two_scale"


def test_bad_parameters_are_refused_with_their_names():
    with pytest.raises(ValueError, match="K must be >= 4"):
        make_system("lorenz96", K=3)
    with pytest.raises(ValueError, match="F must be finite"):
        make_system("lorenz96", F=float("nan"))
    with pytest.raises(ValueError, match="unknown system 'lorenz97'"):
        make_system("lorenz97")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_system("lorenz63", gamma=1.0)
    with pytest.raises(ValueError, match="J must be >= 1"):
        make_system("lorenz96_two_scale", J=0)
    with pytest.raises(ValueError, match="not a whole number of steps"):
        TimeGrid(dt=0.01, save_every=0.015, t_end=1.0)
    with pytest.raises(ValueError, match="time.dt must be > 0"):
        TimeGrid(dt=0.0, save_every=0.015, t_end=1.0)


def test_float32_and_float64_ensembles():
    l96 = make_system("lorenz96")
    grid = TimeGrid(dt=0.01, save_every=0.1, t_end=1.0)
    a = run_members(l96, make_integrator("rk4"), grid, seed=0, members=range(3), dtype=torch.float32)["X"]
    b = run_members(l96, make_integrator("rk4"), grid, seed=0, members=range(3), dtype=torch.float64)["X"]
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    assert float((a.double() - b).abs()[:, :3].max()) < 1e-3


@pytest.mark.gpu
def test_cuda_ensemble_matches_cpu():
    l96 = make_system("lorenz96")
    grid = TimeGrid(dt=0.01, save_every=0.1, t_end=1.0)
    a = run_members(l96, make_integrator("rk4"), grid, seed=0, members=range(3))["X"]
    b = run_members(l96, make_integrator("rk4"), grid, seed=0, members=range(3), device="cuda")["X"]
    torch.testing.assert_close(a, b.cpu(), rtol=1e-10, atol=1e-10)
