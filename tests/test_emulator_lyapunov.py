"""The emulator's Lyapunov spectrum (QR on the Jacobian of its one-step map, forward-mode AD)."""
import math

import numpy as np
import pytest
import torch

from dynlab.emulators.base import AbstractEmulator
from dynlab.emulators.baselines import LinearOneStep
from dynlab.emulators.codec import FieldSpec, StateCodec
from dynlab.emulators.reference import ReferenceEmulator
from dynlab.eval.lyapunov import emulator_lyapunov_spectrum, kaplan_yorke
from dynlab.testing import assert_lyapunov_close
from simulators import CounterRNG, lyapunov_spectrum, make_integrator, make_system, rk4_tangent_step


def test_kaplan_yorke_by_hand():
    # Lorenz63-like: j = 2 (0.9 + 0 >= 0, 0.9 + 0 - 14.5 < 0): 2 + 0.9 / 14.5
    assert kaplan_yorke([0.9, 0.0, -14.5]) == pytest.approx(2 + 0.9 / 14.5)
    assert kaplan_yorke([-14.5, 0.9, 0.0]) == pytest.approx(2 + 0.9 / 14.5)  # order does not matter
    assert kaplan_yorke([1.0, 0.5, -1.0, -2.0]) == pytest.approx(3 + 0.5 / 2.0)
    assert kaplan_yorke([-0.1, -1.0]) == 0.0  # a stable fixed point
    assert kaplan_yorke([0.3, 0.1]) == 2.0  # spectrum too short to bound it
    assert kaplan_yorke([0.5, -float("inf")]) == 1.0  # a direction the map annihilates
    assert kaplan_yorke([-float("inf")] * 3) == 0.0  # a constant map (climatology)
    for bad in ([], [float("nan"), 0.1], [float("inf")]):
        with pytest.raises(ValueError, match="spectrum"):
            kaplan_yorke(bad)


def test_damped_linear_map_has_log_eigenvalue_moduli():
    dt = 0.1
    eig = torch.tensor([0.9, 0.6, -0.3], dtype=torch.float64)
    S = torch.tensor([[1.0, 0.4, 0.1], [0.0, 1.0, -0.5], [0.2, 0.0, 1.0]], dtype=torch.float64)  # non-normal
    em = LinearOneStep(3)
    em.weight.copy_(S @ torch.diag(eig) @ torch.linalg.inv(S))
    em.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = torch.randn(2, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = emulator_lyapunov_spectrum(em, x, n_steps=200, transient=30, dt=dt)
    expected = np.log(np.abs(eig.numpy())) / dt
    np.testing.assert_allclose(res.exponents, np.broadcast_to(expected, (2, 3)), rtol=1e-3, atol=1e-3)
    assert res.n_positive == 0 and res.kaplan_yorke == 0.0 and res.n_state == 3
    assert res.lambda_1 == pytest.approx(math.log(0.9) / dt, rel=1e-3)
    # persistence: the identity map, every exponent exactly 0
    from dynlab.emulators.baselines import Persistence
    flat = emulator_lyapunov_spectrum(Persistence(3), x, n_steps=10, dt=dt)
    np.testing.assert_array_equal(flat.exponents, 0.0)
    assert flat.n_positive == 0 and flat.kaplan_yorke == 3.0
    # leading k only
    assert emulator_lyapunov_spectrum(em, x, n_steps=50, transient=50, dt=dt, k=1).spectrum.shape == (1,)
    with pytest.raises(ValueError, match="dt is required"):
        emulator_lyapunov_spectrum(em, x, n_steps=5)
    with pytest.raises(ValueError, match="k must be"):
        emulator_lyapunov_spectrum(em, x, n_steps=5, dt=dt, k=4)


class _HiddenLinear(AbstractEmulator):
    """x' = 0.3 x + h + Re g, h' = 0.8 h (real), g' = 0.95 e^{iθ} g (complex): a tuple hidden state.
    Joint moduli: 0.95, 0.95 (the complex pair), 0.8, 0.3, 0.3."""

    c = 0.95 * complex(math.cos(0.7), math.sin(0.7))

    def __init__(self):
        super().__init__(2)

    def forward(self, x, forcing=None):
        raise NotImplementedError

    def initial_state(self, batch, device=None, dtype=None):
        return (torch.ones(batch, 1, dtype=torch.float64), torch.ones(batch, 1, dtype=torch.complex128))

    def step(self, x_t, state, forcing_t=None):
        h, g = state
        return 0.3 * x_t + h + g.real, (0.8 * h, self.c * g)


def test_hidden_state_pytree_with_complex_leaf_enters_the_map():
    x = torch.ones(1, 3, 2, dtype=torch.float64)
    res = emulator_lyapunov_spectrum(_HiddenLinear(), x, n_steps=600, transient=100, dt=1.0)
    assert res.n_state == 2 + 1 + 2
    # the complex pair dominates: both leading exponents log 0.95 on average (the sum is exact)
    assert res.spectrum.sum() == pytest.approx(2 * math.log(0.95), rel=1e-3)
    np.testing.assert_allclose(res.spectrum, [math.log(0.95)] * 2, atol=0.02)


def _lorenz96(K=8, members=2):
    system = make_system("lorenz96", K=K, F=8.0)
    x = system.sample_initial(CounterRNG(7, range(members))).double()
    n = 1000  # 10 time units onto the attractor
    x = make_integrator("rk4").integrate(system, x, t0=0.0, dt=0.01, n_steps=n, save_every=n)[-1]
    return system, x


def test_reference_emulator_reproduces_the_lorenz96_spectrum():
    K, steps_per_save, n_steps, transient = 8, 5, 160, 20
    system, x = _lorenz96(K)
    codec = StateCodec((FieldSpec("X", ("k",), (K,)),))
    em = ReferenceEmulator(system, "rk4", 0.01, steps_per_save, codec).double()
    res = emulator_lyapunov_spectrum(em, x[:, None], n_steps=n_steps, transient=transient)
    assert res.dt == pytest.approx(0.05) and res.n_state == K
    # the system's own spectrum from the same states (the emulator's warm-up prediction is one save later),
    # by the exact RK4 tangent map instead of AD through the emulator
    x1 = em.advance(x)
    ref = lyapunov_spectrum(None, x1, dt=0.01, n_steps=n_steps * steps_per_save, qr_every=steps_per_save,
                            transient=transient * steps_per_save,
                            tangent_step=rk4_tangent_step(system.vector_field, system.jvp, 0.01))
    np.testing.assert_allclose(res.exponents, ref.numpy(), rtol=1e-6, atol=1e-6)
    ref_mean = np.sort(ref.mean(0).numpy())[::-1]
    assert_lyapunov_close(res, ref_mean, rtol=0.1, atol=0.02, sum_rtol=0.01)
    # trace identity: all K exponents sum to -K
    assert res.spectrum.sum() == pytest.approx(-K, rel=1e-4)
    assert res.lambda_1 > 0.3 and 1 <= res.n_positive <= 3 and 2.0 < res.kaplan_yorke < K
    # a damped copy (every state shrunk by 10 % per save) has exponents shifted by log(0.9)/dt: the check fails
    shift = math.log(0.9) / res.dt
    with pytest.raises(AssertionError, match="Lyapunov exponent 1"):
        assert_lyapunov_close(res.spectrum + shift, ref_mean, rtol=0.1, atol=0.05)


def test_assert_lyapunov_close_checks_inputs_and_sum():
    assert_lyapunov_close([1.0, 0.0, -10.0], [1.05, 0.01, -10.1])
    with pytest.raises(AssertionError, match="sum"):
        assert_lyapunov_close([1.0, -9.0], [1.0, -10.0], rtol=0.2, sum_rtol=0.05)
    with pytest.raises(ValueError, match="k must be"):
        assert_lyapunov_close([1.0], [1.0], k=2)


def test_reference_emulator_spectrum_against_an_independent_long_system_run():
    K = 8
    system, x = _lorenz96(K, members=2)
    codec = StateCodec((FieldSpec("X", ("k",), (K,)),))
    # one RK4 step of 0.05 per save: the map's spectrum differs from the flow's by O(dt^4)
    em = ReferenceEmulator(system, "rk4", 0.05, 1, codec).double()
    res = emulator_lyapunov_spectrum(em, x[:, None], n_steps=1600, qr_every=4, transient=40)  # 80 time units
    # the system from other initial states, 100 time units, exact tangent map
    other = _lorenz96(K, members=6)[1][3:]
    ref = lyapunov_spectrum(None, other, dt=0.01, n_steps=10000, qr_every=10, transient=200,
                            tangent_step=rk4_tangent_step(system.vector_field, system.jvp, 0.01)).mean(0).numpy()
    assert_lyapunov_close(res, ref, k=1, rtol=0.1, atol=0.0, sum_rtol=None)  # λ₁ within 10 %
    assert_lyapunov_close(res, ref, rtol=1.0, atol=0.3, sum_rtol=1e-3)  # every exponent roughly, the sum tightly
    assert res.spectrum.sum() == pytest.approx(ref.sum(), rel=1e-3)  # both -K


@pytest.mark.parametrize("block", ["s4d", "mamba"])
def test_ssm_joint_map_tangent_matches_finite_differences(block):
    from torch.func import jvp

    from dynlab.emulators.ssm import SSMEmulator
    from dynlab.eval.lyapunov import joint_step_map

    torch.manual_seed(0)
    em = SSMEmulator(3, d_model=4, n_layers=1, block=block, decoder_init_scale=1.0).double().eval()
    context = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    F, z0 = joint_step_map(em, context)
    assert z0.shape[0] == 2 and z0.shape[1] > 3  # the hidden state is part of the map
    # the map reproduces the emulator's own rollout in its x coordinates
    z, xs = z0, []
    for _ in range(3):
        z = F(z)
        xs.append(z[:, :3])
    torch.testing.assert_close(torch.stack(xs, 1), em.rollout(context, 4)[:, 1:], rtol=1e-10, atol=1e-10)
    # forward-mode tangent against central differences, every direction of the joint state
    v = torch.randn(z0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _, tangent = jvp(F, (z0,), (v,))
    h = 1e-6
    fd = (F(z0 + h * v) - F(z0 - h * v)) / (2 * h)
    assert float(tangent.detach().abs().max()) > 1e-3
    torch.testing.assert_close(tangent, fd, rtol=1e-6, atol=1e-7)
    res = emulator_lyapunov_spectrum(em, context, n_steps=20, transient=5, dt=0.1, k=2)
    assert res.exponents.shape == (2, 2) and np.isfinite(res.exponents).all() and res.n_state == z0.shape[1]


def test_hippo_predictor_with_a_step_counter_in_its_state():
    """The HiPPO predictor's state holds a step counter (a plain int) beside its memory. Its map is
    linear in (x, memory), so the tangent dynamics, hence the exponents, cannot depend on the
    trajectory: two unrelated contexts give the same spectrum, and the eigenvalue 1 of the
    extrapolation (a ramp continues as a ramp) keeps lambda_1 >= 0."""
    from dynlab.emulators.registry import build_emulator

    codec = StateCodec([FieldSpec("x", ("k",), (2,))], {"k": [0, 1]})
    dt = 0.1
    em = build_emulator({"name": "hippo", "N": 4, "theta_steps": 4.0}, codec, dt=dt).double()
    a = torch.linspace(-1.0, 1.0, 12, dtype=torch.float64).reshape(1, 6, 2)
    b = torch.sin(torch.arange(12, dtype=torch.float64)).reshape(1, 6, 2) * 5.0
    ra = emulator_lyapunov_spectrum(em, a, n_steps=40, transient=4, dt=dt)
    rb = emulator_lyapunov_spectrum(em, b, n_steps=40, transient=4, dt=dt)
    np.testing.assert_allclose(ra.spectrum, rb.spectrum, rtol=1e-8)
    assert np.all(np.isfinite(ra.spectrum)) and ra.lambda_1 >= 0
