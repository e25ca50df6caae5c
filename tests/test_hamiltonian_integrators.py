"""Symplectic integrators: orders, long-time energy behaviour, Kepler and figure-eight orbits."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulators import (AbstractFixedStepIntegrator, CounterRNG, TimeGrid, make_integrator, make_system,
                        run_members)
from simulators.hamiltonian import FIGURE_EIGHT_PERIOD
from simulators.integrators import ImplicitMidpoint, Leapfrog, Yoshida4
from simulators.integrators.symplectic import YOSHIDA4_WEIGHTS


def _slope(steps, errors):
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def _final(integrator, system, x0, t_end, n):
    return integrator.integrate(system, x0, t0=0.0, dt=t_end / n, n_steps=n, save_every=n)[-1]


def test_registered_as_fixed_step_integrators():
    for name, cls in (("leapfrog", Leapfrog), ("yoshida4", Yoshida4), ("implicit_midpoint", ImplicitMidpoint)):
        integrator = make_integrator(name)
        assert isinstance(integrator, cls) and isinstance(integrator, AbstractFixedStepIntegrator)
        assert integrator.batch_independent
    assert sum(YOSHIDA4_WEIGHTS) == pytest.approx(1.0, abs=1e-15)
    assert sum(w ** 3 for w in YOSHIDA4_WEIGHTS) == pytest.approx(0.0, abs=1e-14)  # the order-4 condition


@pytest.mark.parametrize("name, order", [("leapfrog", 2), ("yoshida4", 4), ("implicit_midpoint", 2)])
def test_convergence_order_mass_spring(name, order):
    """Log-log slope of the error against the exact solution e^{tA} x0 (ω = 2, t = 5)."""
    system = make_system("mass_spring")
    x0 = torch.tensor([[0.7, -0.3], [0.1, 0.9]], dtype=torch.float64)
    exact = system.exact_solution(x0, torch.tensor([5.0]))[0]
    steps = [50, 100, 200, 400]
    errors = [float((_final(make_integrator(name), system, x0, 5.0, n) - exact).norm()) for n in steps]
    slope = _slope([5.0 / n for n in steps], errors)
    assert abs(slope - order) < 0.1, (slope, errors)


@pytest.mark.parametrize("name, order", [("leapfrog", 2), ("yoshida4", 4)])
def test_convergence_order_kepler(name, order):
    """A nonlinear check: after the analytic period a Kepler orbit is back at its start exactly,
    so ‖x(T) − x(0)‖ is the global error; its slope against the step is the order."""
    system = make_system("kepler")
    x0 = system.sample_initial(CounterRNG(0, [0]))
    period = float(system.orbital_period(x0))
    steps = [200, 400, 800]
    errors = [float((_final(make_integrator(name), system, x0, period, n) - x0).norm()) for n in steps]
    slope = _slope([period / n for n in steps], errors)
    assert abs(slope - order) < 0.15, (slope, errors)


def _segmented_energy(integrator, system, x0, dt, segments, steps_per_segment, save_every):
    """Energies along ``segments · steps_per_segment`` steps from ``x0`` ``(2,)``.

    The one-step map of any of these methods is linear for the mass–spring, so
    P = Φ^steps_per_segment follows from integrating the two basis vectors;
    the segment starts P^j x0 are then integrated together as one batch. Each
    segment's end must equal the next start (checked), so this is the same
    trajectory up to round-off, at the cost of 2·steps_per_segment batched steps."""
    basis = torch.eye(2, dtype=torch.float64)
    P = integrator.integrate(system, basis, t0=0.0, dt=dt, n_steps=steps_per_segment,
                             save_every=steps_per_segment)[-1].T
    starts = [x0]
    for _ in range(segments - 1):
        starts.append(P @ starts[-1])
    starts = torch.stack(starts)                                     # (segments, 2)
    traj = integrator.integrate(system, starts, t0=0.0, dt=dt, n_steps=steps_per_segment,
                                save_every=save_every)              # (saves, segments, 2)
    gap = (traj[-1, :-1] - starts[1:]).abs().max()
    assert float(gap) < 1e-10, float(gap)
    energy = system.energy(traj.transpose(0, 1).reshape(-1, 2))     # time order: segment-major
    times = dt * save_every * np.arange(1, energy.shape[0] + 1)
    return times, (energy / system.energy(x0) - 1.0).numpy()


def _check_energy_behaviour(times, e_leapfrog, e_rk4, omega_h, n_steps):
    # RK4: |R(iz)|² = 1 − z⁶/72 + z⁸/576 < 1 per step, an exactly geometric decay of the energy
    trend_rk4 = np.polyfit(times, e_rk4, 1)[0] * times[-1]
    assert np.all(np.diff(e_rk4) < 0), "RK4's energy should fall monotonically"
    assert trend_rk4 < -0.05, trend_rk4
    per_step = 1 - omega_h ** 6 / 72 + omega_h ** 8 / 576
    assert e_rk4[-1] == pytest.approx(per_step ** n_steps - 1, rel=1e-3)
    # leapfrog conserves H̃ = H − (ωh)²/4 · kq²/2 exactly, so |ΔH/H₀| ≤ z/(1 − z), z = (ωh)²/4: no trend
    trend_lf = np.polyfit(times, e_leapfrog, 1)[0] * times[-1]
    z = omega_h ** 2 / 4
    assert np.abs(e_leapfrog).max() <= z / (1 - z) * (1 + 1e-9)
    assert np.abs(e_leapfrog).max() > 0.9 * z  # and it is that large: the bound is the right one
    assert abs(trend_lf) < 1e-4, trend_lf
    assert abs(trend_lf) < 1e-3 * abs(trend_rk4)
    return trend_rk4, trend_lf


def test_energy_bounded_for_leapfrog_and_drifting_for_rk4_1e5_steps():
    """Mass–spring k=2, m=0.5 (ω = 2), h = 0.1, 10⁵ steps (t = 10⁴)."""
    system = make_system("mass_spring")
    x0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    times, e_lf = _segmented_energy(make_integrator("leapfrog"), system, x0, 0.1, 100, 1000, 10)
    _, e_rk4 = _segmented_energy(make_integrator("rk4"), system, x0, 0.1, 100, 1000, 10)
    assert len(times) == 10_000 and times[-1] == pytest.approx(1e4)
    _check_energy_behaviour(times, e_lf, e_rk4, omega_h=0.2, n_steps=100_000)


@pytest.mark.slow
def test_energy_1e5_steps_sequential():
    """The same check on plain sequential runs (no use of linearity)."""
    system = make_system("mass_spring")
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    e = {}
    for name in ("leapfrog", "rk4"):
        traj = make_integrator(name).integrate(system, x0, t0=0.0, dt=0.1, n_steps=100_000, save_every=10)
        e[name] = (system.energy(traj[:, 0]) / system.energy(x0[0]) - 1).numpy()
    times = 1.0 * np.arange(1, 10_001)
    _check_energy_behaviour(times, e["leapfrog"], e["rk4"], omega_h=0.2, n_steps=100_000)


def test_yoshida4_energy_error_is_bounded_and_small():
    system = make_system("mass_spring")
    times, e = _segmented_energy(make_integrator("yoshida4"), system, torch.tensor([1.0, 0.0], dtype=torch.float64),
                                 0.1, 20, 500, 10)
    assert np.abs(e).max() < 2e-4
    assert abs(np.polyfit(times, e, 1)[0] * times[-1]) < 1e-7


def test_kepler_angular_momentum_to_round_off_with_leapfrog():
    system = make_system("kepler")
    out_x = make_integrator("leapfrog").integrate(system, system.sample_initial(CounterRNG(1, range(8))),
                                                  t0=0.0, dt=0.02, n_steps=1000, save_every=10)
    L = system.angular_momentum(*system.split(out_x))                # (saves, M)
    x0 = system.sample_initial(CounterRNG(1, range(8)))
    L0 = system.angular_momentum(*system.split(x0))
    rel = ((L - L0) / L0.abs()).abs().max()
    assert float(rel) < 1e-12, float(rel)
    # RK4 does not conserve this quadratic invariant: its drift is orders of magnitude larger
    rk4_x = make_integrator("rk4").integrate(system, x0, t0=0.0, dt=0.02, n_steps=1000, save_every=1000)[-1]
    rel_rk4 = ((system.angular_momentum(*system.split(rk4_x)) - L0) / L0.abs()).abs().max()
    assert float(rel_rk4) > 1e3 * float(rel)
    # linear momentum stays zero to round-off too
    assert float(system.momentum(system.split(out_x)[1]).abs().max()) < 1e-13


def test_implicit_midpoint_conserves_angular_momentum_exactly():
    system = make_system("kepler")
    x0 = system.sample_initial(CounterRNG(2, range(4)))
    x = make_integrator("implicit_midpoint").integrate(system, x0, t0=0.0, dt=0.02, n_steps=200, save_every=200)[-1]
    L0, L = (system.angular_momentum(*system.split(y)) for y in (x0, x))
    assert float(((L - L0) / L0.abs()).abs().max()) < 1e-12


def test_kepler_returns_after_the_analytic_period():
    """Period 2π a^{3/2}/√(G(m₁+m₂)): yoshida4 over exactly one period returns to the start,
    and the angle swept falls short of 2π by less than a step's worth of error."""
    system = make_system("kepler", m1=1.0, m2=2.0)
    x0 = system.sample_initial(CounterRNG(3, range(2)))
    period = system.orbital_period(x0)
    for i in range(2):
        x = _final(make_integrator("yoshida4"), system, x0[i:i + 1], float(period[i]), 1000)[0]
        q0, q = system.split(x0[i])[0], system.split(x)[0]
        size = float((q0[1] - q0[0]).norm())
        assert float((x - x0[i]).norm()) < 1e-8 * size * 10
        # period error from the angle deficit of the relative vector, divided by the angular speed
        r0, r1 = q0[1] - q0[0], q[1] - q[0]
        deficit = math.atan2(float(r0[0] * r1[1] - r0[1] * r1[0]), float(r0 @ r1))
        v = system.dH_dp(*system.split(x0[i]))
        omega = float((r0[0] * (v[1] - v[0])[1] - r0[1] * (v[1] - v[0])[0]) / (r0 @ r0))
        assert abs(deficit / omega) / float(period[i]) < 1e-8


def test_figure_eight_returns_after_one_period():
    system = make_system("three_body", initial="figure_eight")
    x0 = system.sample_initial(CounterRNG(0, [0]))
    x = _final(make_integrator("yoshida4"), system, x0, FIGURE_EIGHT_PERIOD, 1000)
    distance = float((system.split(x)[0] - system.split(x0)[0]).norm(dim=-1).max())
    assert distance < 1e-3, distance
    # halfway round, the bodies are far from where they started: the return is not trivial
    half = _final(make_integrator("yoshida4"), system, x0, FIGURE_EIGHT_PERIOD / 2, 500)
    assert float((system.split(half)[0] - system.split(x0)[0]).norm(dim=-1).max()) > 0.5


@pytest.mark.parametrize("integrator", ["leapfrog", "yoshida4"])
def test_splitting_methods_refuse_what_they_cannot_integrate(integrator):
    method = make_integrator(integrator)
    with pytest.raises(ValueError, match="double_pendulum is not separable"):
        method.check_system(make_system("double_pendulum"))
    with pytest.raises(ValueError, match=r"friction=0.2 on mass_spring"):
        method.check_system(make_system("mass_spring", friction=0.2))
    with pytest.raises(ValueError, match=r"randomize.friction=\[0.0, 0.1\]"):
        method.check_system(make_system("kepler", randomize={"friction": [0.0, 0.1]}))
    with pytest.raises(ValueError, match="lorenz63 is not one"):
        method.check_system(make_system("lorenz63"))
    with pytest.raises(ValueError, match="lorenz63 is not one"):
        run_members(make_system("lorenz63"), method, TimeGrid(dt=0.1, save_every=0.1, t_end=0.1), seed=0, members=[0])
    method.check_system(make_system("pendulum"))
    method.check_system(make_system("mass_spring", randomize={"friction": [0.0, 0.0]}))


def test_implicit_midpoint_integrates_the_double_pendulum_with_bounded_energy():
    system = make_system("double_pendulum")
    out = run_members(system, make_integrator("implicit_midpoint"), TimeGrid(dt=0.05, save_every=0.5, t_end=5.0),
                      seed=0, members=range(3))
    H = out["H"]
    assert float(((H - H[:, :1]).abs() / H[:, :1]).max()) < 1e-2


def test_implicit_midpoint_is_batch_independent_and_validates():
    system = make_system("henon_heiles")
    x0 = system.sample_initial(CounterRNG(0, range(5)))
    method = make_integrator("implicit_midpoint")
    full = method.integrate(system, x0, t0=0.0, dt=0.1, n_steps=20, save_every=20)
    part = method.integrate(system, x0[2:3], t0=0.0, dt=0.1, n_steps=20, save_every=20)
    assert torch.equal(full[:, 2:3], part)
    with pytest.raises(ValueError, match="tol"):
        make_integrator("implicit_midpoint", tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        make_integrator("implicit_midpoint", max_iter=0)
    with pytest.raises(RuntimeError, match="smaller time.dt"):
        make_integrator("implicit_midpoint", max_iter=3).step(make_system("mass_spring", k=1e4), 0.0, x0[:, :2], 1.0)


def test_bad_step_size():
    system = make_system("mass_spring")
    with pytest.raises(ValueError, match="dt must be finite and non-zero, got nan"):
        make_integrator("leapfrog").step(system, 0.0, torch.zeros(1, 2, dtype=torch.float64), float("nan"))


def test_methods_run_backwards_to_the_start():
    """Leapfrog and Yoshida 4 are time-reversible: h then −h returns to round-off."""
    system = make_system("kepler")
    x0 = system.sample_initial(CounterRNG(0, range(3)))
    for name in ("leapfrog", "yoshida4"):
        method = make_integrator(name)
        x = x0
        for _ in range(20):
            x = method.step(system, 0.0, x, 0.1)
        for _ in range(20):
            x = method.step(system, 0.0, x, -0.1)
        torch.testing.assert_close(x, x0, rtol=1e-12, atol=1e-12)
