"""Integrators against exact solutions: RK4 order 4, Dormand–Prince accuracy, saving."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from simulators import AbstractSystem, Params, Variable, make_integrator
from simulators.integrators import INTEGRATORS


class Linear(AbstractSystem):
    """dx/dt = M x with a fixed non-normal, rotating and decaying M (exact solution expm(tM) x0)."""

    name = "test_linear"

    class Params(Params):
        pass

    M = torch.tensor([[-0.3, 2.0, 0.0], [-2.0, -0.1, 0.5], [0.0, -0.5, -0.4]], dtype=torch.float64)

    @property
    def state_shape(self):
        return (3,)

    def vector_field(self, t, x):
        return x @ self.M.to(x.dtype).T

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return rng.normal((3,)).to(dtype)

    @property
    def variables(self):
        return (Variable("x", ("time", "i"), "1", "state"),)

    def observables(self, x):
        return {"x": x}


def exact(x0: torch.Tensor, t: float) -> torch.Tensor:
    return x0 @ torch.from_numpy(scipy.linalg.expm(t * Linear.M.numpy())).T


X0 = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.7, -1.2]], dtype=torch.float64)


def final_error(name: str, dt: float, t_end: float = 2.0, **opts) -> float:
    n = round(t_end / dt)
    out = make_integrator(name, **opts).integrate(Linear(), X0, t0=0.0, dt=dt, n_steps=n, save_every=n)
    return float((out[-1] - exact(X0, t_end)).abs().max())


def test_rk4_is_fourth_order():
    dts = [0.1, 0.05, 0.025, 0.0125]
    errors = [final_error("rk4", dt) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert 3.85 < slope < 4.15, (slope, errors)


def test_euler_on_an_ode_is_first_order():
    dts = [0.02, 0.01, 0.005]
    errors = [final_error("euler_maruyama", dt) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1, slope


@pytest.mark.parametrize("rtol", [1e-6, 1e-9, 1e-12])
def test_dopri5_meets_its_tolerance_at_exact_output_times(rtol):
    integ = make_integrator("dopri5", rtol=rtol, atol=rtol * 1e-2)
    out = integ.integrate(Linear(), X0, t0=0.0, dt=0.1, n_steps=30, save_every=3)  # saves at 0.3, 0.6, ... 3.0
    assert out.shape == (10, 2, 3)
    truth = torch.stack([exact(X0, 0.3 * (i + 1)) for i in range(10)])
    err = float((out - truth).abs().max())
    assert err < 50 * rtol, err
    if rtol <= 1e-9:  # the error falls with the tolerance: it is really adaptive
        assert err < 50 * 1e-6 * 1e-2


def test_saving_every_k_steps_matches_single_steps():
    rk4 = make_integrator("rk4")
    every = rk4.integrate(Linear(), X0, t0=0.0, dt=0.01, n_steps=20, save_every=5)
    single = rk4.integrate(Linear(), X0, t0=0.0, dt=0.01, n_steps=20, save_every=1)
    assert torch.equal(every, single[4::5])


def test_float32_runs_and_stays_close_to_float64():
    rk4 = make_integrator("rk4")
    x32 = rk4.integrate(Linear(), X0.float(), t0=0.0, dt=0.01, n_steps=100, save_every=100)
    x64 = rk4.integrate(Linear(), X0, t0=0.0, dt=0.01, n_steps=100, save_every=100)
    assert x32.dtype == torch.float32
    assert float((x32.double() - x64).abs().max()) < 1e-5


def test_registry_and_bad_options():
    assert {"rk4", "dopri5", "euler_maruyama"} <= set(INTEGRATORS)
    with pytest.raises(ValueError, match="unknown integrator 'rk5'"):
        make_integrator("rk5")
    with pytest.raises(ValueError, match="rtol"):
        make_integrator("dopri5", rtol=-1.0)
    with pytest.raises(ValueError, match="bad options"):
        make_integrator("rk4", tolerance=3)
    with pytest.raises(ValueError, match="multiple of save_every"):
        make_integrator("rk4").integrate(Linear(), X0, t0=0.0, dt=0.1, n_steps=7, save_every=2)


@pytest.mark.gpu
def test_rk4_on_cuda_matches_cpu():
    rk4 = make_integrator("rk4")
    cpu = rk4.integrate(Linear(), X0, t0=0.0, dt=0.01, n_steps=50, save_every=50)
    gpu = rk4.integrate(Linear(), X0.cuda(), t0=0.0, dt=0.01, n_steps=50, save_every=50)
    assert torch.allclose(cpu, gpu.cpu(), rtol=1e-12, atol=1e-12)
