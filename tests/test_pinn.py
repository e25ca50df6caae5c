"""PINNs: residual operators against finite differences, exact solutions, causal weights, exact IC."""
from __future__ import annotations

import math

import pytest
import torch

from dynlab.errors import ConfigError
from dynlab.pinn import PinnConfig, PinnNetwork, PinnProblem, derivatives, residual_for, train_pinn
from dynlab.pinn.config import NetworkConfig
from dynlab.pinn.networks import FourierInterpolant
from dynlab.pinn.residuals import AbstractResidual
from dynlab.pinn.train import chunk_losses
from dynlab.train.causal import CausalWeighting
from simulators import make_system


def _net(system_name: str, **params):
    system = make_system(system_name, **params)
    p = system.params
    net = PinnNetwork(NetworkConfig(arch="modified_mlp", width=16, depth=3, x_modes=3, time_features=1,
                                    fourier_features=8), 1, initial=system.initial_benchmark, exact_ic=True,
                      scale=1.0, x_min=p.x_min, length=p.length, seed=1).double()
    return system, net


def _fd(f, z, h, order):
    """Central finite differences of order 1, 2 or 4, sixth-order-accurate stencils."""
    stencils = {
        1: {1: 3 / 4, 2: -3 / 20, 3: 1 / 60},
        2: {0: -49 / 18, 1: 3 / 2, 2: -3 / 20, 3: 1 / 90},
        4: {0: 91 / 8, 1: -122 / 15, 2: 169 / 60, 3: -2 / 5, 4: 7 / 240},
    }[order]
    out = torch.zeros_like(f(z))
    for k, w in stencils.items():
        if k == 0:
            out += w * f(z)
        elif order % 2:
            out += w * (f(z + k * h) - f(z - k * h))
        else:
            out += w * (f(z + k * h) + f(z - k * h))
    return out / h ** order


@pytest.mark.parametrize("name", ["allen_cahn", "kuramoto_sivashinsky"])
def test_pde_residual_equals_finite_difference_residual_of_the_same_network(name):
    system, net = _net(name)
    g = torch.Generator().manual_seed(0)
    tau = torch.rand(40, 1, dtype=torch.float64, generator=g)
    x = system.params.x_min + system.params.length * torch.rand(40, 1, dtype=torch.float64, generator=g)
    span = 0.3
    res = residual_for(system)
    u, u_t, u_x = derivatives(net, tau, x, span, res.x_orders)
    auto = res(tau * span, u, u_t, u_x).detach()
    with torch.no_grad():
        fd_t = _fd(lambda s: net(s, x), tau, 1e-3, 1) / span
        fd_x = {k: _fd(lambda s: net(tau, s), x, 1e-3, k) for k in res.x_orders}
        fd = res(tau * span, net(tau, x), fd_t, fd_x)
    assert ((auto - fd).norm() / auto.norm()) < 1e-5, float((auto - fd).norm() / auto.norm())


@pytest.mark.parametrize("name,params", [("lorenz63", {}), ("lorenz96", {"K": 5}), ("mass_spring", {}),
                                         ("pendulum", {})])
def test_ode_residual_equals_finite_difference_residual(name, params):
    system = make_system(name, **params)
    D = system.state_shape[0]
    net = PinnNetwork(NetworkConfig(arch="mlp", width=16, depth=2), D,
                      initial=torch.ones(D, dtype=torch.float64), exact_ic=True, scale=2.0, seed=0).double()
    tau = torch.linspace(0.05, 0.95, 17, dtype=torch.float64)[:, None]
    res = residual_for(system)
    u, u_t, _ = derivatives(net, tau, None, 0.5)
    auto = res(tau * 0.5, u, u_t).detach()
    with torch.no_grad():
        fd = res(tau * 0.5, net(tau), _fd(net, tau, 1e-3, 1) / 0.5)
    assert ((auto - fd).norm() / auto.norm()) < 1e-8


def test_residual_registry_refuses_unknown_systems():
    with pytest.raises(ConfigError):
        residual_for(make_system("lorenz96_two_scale"))


class _Decay(AbstractResidual):
    """u_t = −u: exact solution u0 e^{−t}."""
    kind = "ode"

    def __call__(self, t, u, u_t, u_x=None):
        return u_t + u


class _Advection(AbstractResidual):
    """u_t + c u_x = 0, periodic: exact solution u0(x − ct)."""
    kind = "pde"
    x_orders = (1,)
    c = 1.0

    def __call__(self, t, u, u_t, u_x=None):
        return u_t + self.c * u_x[1]


def test_pinn_solves_exponential_decay_within_a_few_hundred_steps():
    # bound: relative L2 < 5e-3 on [0, 2] after 300 Adam steps (float64, 2x32 tanh MLP)
    problem = PinnProblem(_Decay(None), 0.0, 2.0, torch.tensor([1.0], dtype=torch.float64), 1)
    cfg = PinnConfig.from_dict({"steps": 300, "points": 64, "lr": 1e-2, "dtype": "float64",
                                "network": {"arch": "mlp", "width": 32, "depth": 2},
                                "causal": {"chunks": 8, "eps": [1.0, 10.0, 100.0, 1000.0]}, "log_every": 1000})
    sol = train_pinn(problem, cfg)
    assert sol.steps <= 300
    t = torch.linspace(0, 2, 41, dtype=torch.float64)
    exact = torch.exp(-t)
    err = float((sol.predict(t)[:, 0] - exact).norm() / exact.norm())
    assert err < 5e-3, err


def test_pinn_solves_linear_advection_within_a_few_hundred_steps():
    # bound: relative L2 < 2e-2 on [0, 1] x [0, 2π) after 300 steps (u0 = sin x, c = 1)
    problem = PinnProblem(_Advection(None), 0.0, 1.0, torch.sin, 1, x_min=0.0, length=2 * math.pi)
    cfg = PinnConfig.from_dict({"steps": 300, "points": 256, "lr": 5e-3, "dtype": "float64",
                                "network": {"arch": "mlp", "width": 32, "depth": 2, "x_modes": 2},
                                "causal": {"chunks": 8, "eps": [1.0, 10.0, 100.0, 1000.0]}, "log_every": 1000})
    sol = train_pinn(problem, cfg)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    x = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
    exact = torch.sin(x[None, :] - t[:, None])
    err = float((sol.predict(t, x) - exact).norm() / exact.norm())
    assert err < 2e-2, err


def test_causal_weights_reproduce_a_hand_computation():
    # residuals of 3 chunks x 2 points: chunk losses mean r² = 0.5, 1.0, 2.0
    r = torch.tensor([[1.0], [0.0], [1.0], [1.0], [2.0], [0.0]], dtype=torch.float64)
    L = chunk_losses(r, 3)
    assert torch.allclose(L, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    cw = CausalWeighting(None, [1.0, 10.0])
    loss = cw.weighted(L)
    w = [1.0, math.exp(-0.5), math.exp(-1.5)]
    assert torch.allclose(cw.last_weights, torch.tensor(w, dtype=torch.float64), rtol=1e-15)
    assert abs(float(loss) - (w[0] * 0.5 + w[1] * 1.0 + w[2] * 2.0) / 3) < 1e-15


def test_exact_initial_condition_holds_to_rounding():
    system, net = _net("allen_cahn")
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    u = net(torch.zeros_like(x), x)
    assert torch.equal(u, system.initial_benchmark(x))
    # the next window starts from the trigonometric interpolant, which reproduces its samples
    xs = -1 + 2 * torch.arange(64, dtype=torch.float64) / 64
    vals = torch.cos(torch.pi * xs) + 0.3 * torch.sin(3 * torch.pi * xs)
    f = FourierInterpolant(vals, -1.0, 2.0)
    assert (f(xs) - vals).abs().max() < 1e-14
    # the ODE network as well
    net = PinnNetwork(NetworkConfig(arch="mlp", width=8, depth=1), 3, initial=torch.tensor([1.0, -2.0, 3.5]),
                      exact_ic=True, scale=5.0)
    assert torch.equal(net(torch.zeros(1, 1))[0], torch.tensor([1.0, -2.0, 3.5]))


def test_config_validation_names_the_bad_key():
    for bad, word in (({"steps": 0}, "pinn.steps"), ({"network": {"arch": "cnn"}}, "pinn.network.arch"),
                      ({"causal": {"eps": [1.0, 0.1]}}, "pinn.causal.eps"), ({"typo": 1}, "typo"),
                      ({"dtype": "float16"}, "pinn.dtype")):
        with pytest.raises(ConfigError, match=word.replace(".", r"\.")):
            PinnConfig.from_dict(bad)
