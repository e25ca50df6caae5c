"""Classical fourth-order Runge–Kutta (fixed step)."""
from __future__ import annotations

from .base import AbstractFixedStepIntegrator, register_integrator


@register_integrator
class RK4(AbstractFixedStepIntegrator):
    r"""Classical RK4, global error :math:`O(\Delta t^4)`.

    .. math::
        k_1 = f(t, x),\; k_2 = f(t + \tfrac{h}{2}, x + \tfrac{h}{2} k_1),\;
        k_3 = f(t + \tfrac{h}{2}, x + \tfrac{h}{2} k_2),\; k_4 = f(t + h, x + h k_3),
        \qquad x_{n+1} = x_n + \tfrac{h}{6}(k_1 + 2k_2 + 2k_3 + k_4).

    Noise, if the system has any, is ignored: use ``euler_maruyama`` for SDEs.
    """

    name = "rk4"

    def check_system(self, system):
        if system.is_stochastic:
            raise ValueError(f"rk4 cannot integrate the stochastic system {system.name}; "
                             "use integrator=euler_maruyama")

    def step(self, system, t, x, dt, noise=None):
        f = system.vector_field
        half = 0.5 * dt
        k1 = f(t, x)
        k2 = f(t + half, x + half * k1)
        k3 = f(t + half, x + half * k2)
        k4 = f(t + dt, x + dt * k3)
        return x + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
