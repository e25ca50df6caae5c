"""Small ensembles: RK4 and dopri5 with their loops in one (compiled) call.

Default suite: the chunked code paths in eager mode (the same step and attempt
functions the compiled graphs contain), against the per-step eager path
(bit for bit), exact solutions, scipy's DOP853 and torchdiffeq. The
``torch.compile`` checks take minutes on a loaded machine and are ``slow``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from simulators import CounterRNG, make_integrator, make_system
from simulators.core import AbstractSystem, Params, Variable
from simulators.integrators import compiled as compiled_mod
from simulators.integrators.compiled import CHUNK_SAVES, CompiledFunction, fixed_step_chunk
from simulators.integrators.dormand_prince import B, B_HAT, C, A, E, dormand_prince_chunk, initial_step


class Forced(AbstractSystem):
    """dx/dt = cos(t) − a·x on one component: exact solution, uses t."""

    name = "test_forced"

    class Params(Params):
        pass

    @property
    def state_shape(self):
        return (1,)

    def vector_field(self, t, x):
        return torch.cos(torch.as_tensor(t, dtype=torch.float64)) - 0.5 * x

    def sample_initial(self, rng, dtype=torch.float64, device="cpu"):
        return torch.ones(len(rng.members), 1, dtype=dtype, device=device)

    @property
    def variables(self):
        return (Variable("x", ("time",), "1", "x"),)

    def observables(self, x):
        return {"x": x[..., 0]}

    @staticmethod
    def exact(t, x0, t0):
        # x' + x/2 = cos t  ->  x = (cos t/2 + sin t)/(5/4) + C e^{-t/2}
        part = lambda s: (0.5 * np.cos(s) + np.sin(s)) / 1.25  # noqa: E731
        return part(t) + (x0 - part(t0)) * np.exp(-0.5 * (t - t0))


def _initial(system, m):
    return system.sample_initial(CounterRNG(3, range(m)))


SYSTEMS = {
    "lorenz96": lambda: make_system("lorenz96", K=40, F=8.0),
    "lorenz63": lambda: make_system("lorenz63"),
    "pendulum": lambda: make_system("pendulum"),
    "forced": lambda: Forced(),
}


# -- RK4 in blocks --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_rk4_blocks_eager_bit_identical_to_per_step_path(name):
    system = SYSTEMS[name]()
    x0 = _initial(system, 3)
    kw = dict(t0=0.37, dt=0.01, n_steps=7 * (CHUNK_SAVES + 3), save_every=7)  # two chunks, one padded
    ref = make_integrator("rk4").integrate(system, x0, **kw)
    got = make_integrator("rk4", blocks=True).integrate(system, x0, **kw)
    assert got.shape == ref.shape
    assert torch.equal(got, ref)


def test_rk4_graph_chunk_run_eagerly_matches_python_chunk():
    """The scan/while_loop form (what torch.compile sees) computes the same numbers."""
    system = make_system("lorenz63")
    rk4 = make_integrator("rk4")
    x0 = _initial(system, 2)
    args = (x0, torch.tensor(0.25, dtype=torch.float64), torch.tensor(4), torch.tensor([2, 0, 3]))
    graph = fixed_step_chunk(rk4.step, system, 0.01)(*args)
    python = fixed_step_chunk(rk4.step, system, 0.01, graph=False)(*args)
    assert torch.equal(graph, python)
    ref = rk4.integrate(system, x0, t0=0.25 + 4 * 0.01, dt=0.01, n_steps=5, save_every=1)
    assert torch.allclose(python[[0, 2]], ref[[1, 4]], rtol=0, atol=1e-14)


def test_rk4_blocks_callback_and_options():
    system = make_system("lorenz63")
    seen = []
    make_integrator("rk4", blocks=True).integrate(system, _initial(system, 1), t0=0.0, dt=0.01,
                                                  n_steps=40, save_every=4, callback=seen.append)
    assert seen == list(range(1, 11))
    assert make_integrator("rk4").options() == {}  # dataset identities of existing configs unchanged
    assert make_integrator("rk4", blocks=True).options() == {"blocks": True}
    assert make_integrator("rk4", blocks=True, compile=True).options() == {"compile": True, "blocks": True}
    with pytest.raises(ValueError, match="integrator.blocks"):
        make_integrator("rk4", blocks="yes")
    with pytest.raises(ValueError, match="multiple of save_every"):
        make_integrator("rk4", blocks=True).integrate(system, _initial(system, 1), t0=0.0, dt=0.01,
                                                      n_steps=10, save_every=3)


# -- compiled-function safety net -------------------------------------------------------

def test_compiled_function_falls_back_when_compile_disagrees(monkeypatch):
    wrong = lambda *a: a[0] + 1.0  # noqa: E731  (a "miscompiled" graph)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: wrong)
    f = CompiledFunction(lambda x: 2 * x, "test", compile=True)
    x = torch.arange(3.0)
    with pytest.warns(RuntimeWarning, match="disagrees with eager"):
        out = f(x)
    assert torch.equal(out, 2 * x) and f.fallback
    assert torch.equal(f(x), 2 * x)


def test_compiled_function_falls_back_when_compile_fails(monkeypatch):
    def broken(fn, **kw):
        def call(*a):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    system = make_system("lorenz63")
    x0 = _initial(system, 2)
    integ = make_integrator("rk4", blocks=True, compile=True)
    with pytest.warns(RuntimeWarning, match=r"no C\+\+ compiler"):
        got = integ.integrate(system, x0, t0=0.0, dt=0.01, n_steps=10, save_every=5)
    assert torch.equal(got, make_integrator("rk4").integrate(system, x0, t0=0.0, dt=0.01, n_steps=10, save_every=5))


def test_compiled_function_accepts_rounding_differences(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: (lambda x: fn(x) * (1 + 1e-15)))
    f = CompiledFunction(lambda x: 2 * x, "test", compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(torch.arange(3.0, dtype=torch.float64))
    assert not f.fallback and f.compile_seconds >= 0


def test_close_rejects_shape_and_nan_mismatch():
    a = torch.ones(3, dtype=torch.float64)
    assert compiled_mod._close(a, a.clone())
    assert compiled_mod._close(a, a + 1e-14)
    assert not compiled_mod._close(a, torch.ones(4, dtype=torch.float64))
    assert not compiled_mod._close(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 1.0]))
    assert not compiled_mod._close(a, a + 1e-6)


# -- Dormand–Prince -----------------------------------------------------------------------

def test_dormand_prince_tableau_order_conditions():
    """Row sums equal the nodes; b and b̂ satisfy the order conditions up to 5 and 4."""
    a = np.zeros((7, 7))
    for i, row in enumerate(A):
        a[i, :len(row)] = row
    c, b, bh = np.array(C), np.array(B), np.array(B_HAT)
    assert np.allclose(a.sum(1), c, atol=1e-15)
    for w, order in ((b, 5), (bh, 4)):
        for q in range(1, order + 1):  # bushy-tree conditions  sum b c^{q-1} = 1/q
            assert abs(w @ c ** (q - 1) - 1 / q) < 1e-14
        assert abs(w @ a @ c - 1 / 6) < 1e-14
    assert abs(b @ a @ a @ c - 1 / 24) < 1e-14 and abs(b @ (c * (a @ c)) - 1 / 8) < 1e-14
    assert np.allclose(np.array(E), b - bh) and abs(sum(E)) < 1e-15
    assert np.allclose(a[6, :6], b[:6])  # first same as last


def _dp(system, x0, *, rtol, atol, n_saves, every_t, t0=0.0, blocks=True):
    integ = make_integrator("dopri5", rtol=rtol, atol=atol, blocks=blocks)
    return integ, integ.integrate(system, x0, t0=t0, dt=every_t, n_steps=n_saves, save_every=1)


def test_dopri5_blocks_exact_solution_and_time_handling():
    system = Forced()
    x0 = _initial(system, 1)
    integ, out = _dp(system, x0, rtol=1e-10, atol=1e-12, n_saves=40, every_t=0.25, t0=0.3)
    t = 0.3 + 0.25 * np.arange(1, 41)
    exact = Forced.exact(t, 1.0, 0.3)
    assert np.abs(out[:, 0, 0].numpy() - exact).max() < 1e-9
    assert integ.last_stats["steps"] > 40 and integ.last_stats["rhs_evaluations"] > 6 * 40


def test_dopri5_blocks_hits_output_times_exactly():
    system = make_system("lorenz63")
    x0 = _initial(system, 1)
    chunk = dormand_prince_chunk(system, 1e-6, 1e-9, 10_000, graph=False)
    t = torch.tensor(0.1, dtype=torch.float64)
    k1 = system.vector_field(t, x0)
    h = torch.tensor(initial_step(system.vector_field, 0.1, x0, k1, 1e-6, 1e-9), dtype=torch.float64)
    targets = 0.1 + 0.07 * torch.arange(1, 12, dtype=torch.float64)
    *_, counts, xs, ts = chunk(t, x0, k1, h, torch.tensor(False), targets)
    assert torch.equal(ts, targets)  # bit for bit, no interpolation
    assert int(counts[0]) >= int(counts[1]) >= len(targets)


@pytest.mark.parametrize("name", ["lorenz63", "pendulum", "lorenz96"])
def test_dopri5_blocks_agree_with_scipy_dop853_and_torchdiffeq(name):
    system = SYSTEMS[name]()
    x0 = _initial(system, 1)
    span, n = (1.0, 10)
    integ, got = _dp(system, x0, rtol=1e-9, atol=1e-11, n_saves=n, every_t=span / n)
    times = np.linspace(span / n, span, n)
    f = lambda t, y: system.vector_field(t, torch.as_tensor(y)[None])[0].numpy()  # noqa: E731
    ref = solve_ivp(f, (0.0, span), x0[0].numpy(), method="DOP853", t_eval=times, rtol=1e-13, atol=1e-13).y.T
    scale = 1.0 + np.abs(ref).max()
    assert np.abs(got[:, 0].numpy() - ref).max() < 1e-6 * scale
    _, tde = _dp(system, x0, rtol=1e-9, atol=1e-11, n_saves=n, every_t=span / n, blocks=False)
    assert np.abs(got[:, 0].numpy() - tde[:, 0].numpy()).max() < 1e-6 * scale


def test_dopri5_blocks_error_follows_tolerance():
    """Tighter tolerance, smaller error (against a DOP853 reference), more steps."""
    system = make_system("lorenz63")
    x0 = _initial(system, 1)
    f = lambda t, y: system.vector_field(t, torch.as_tensor(y)[None])[0].numpy()  # noqa: E731
    ref = solve_ivp(f, (0.0, 1.0), x0[0].numpy(), method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    errors, steps = [], []
    for tol in (1e-4, 1e-7, 1e-10):
        integ, out = _dp(system, x0, rtol=tol, atol=tol, n_saves=1, every_t=1.0)
        errors.append(np.abs(out[-1, 0].numpy() - ref).max())
        steps.append(integ.last_stats["steps"])
    assert errors[0] > 10 * errors[1] > 100 * errors[2]
    assert steps[0] < steps[1] < steps[2]


def test_dopri5_blocks_batch_and_options():
    system = make_system("lorenz63")
    x0 = _initial(system, 3)
    _, out = _dp(system, x0, rtol=1e-6, atol=1e-9, n_saves=CHUNK_SAVES + 2, every_t=0.02)
    assert out.shape == (CHUNK_SAVES + 2, 3, 3) and torch.isfinite(out).all()
    assert make_integrator("dopri5").options() == {"rtol": 1e-7, "atol": 1e-9}
    assert make_integrator("dopri5", blocks=True, compile=True).options() == {
        "rtol": 1e-7, "atol": 1e-9, "blocks": True, "compile": True}
    with pytest.raises(ValueError, match="needs integrator.blocks"):
        make_integrator("dopri5", compile=True)
    with pytest.raises(ValueError, match="integrator.blocks"):
        make_integrator("dopri5", blocks=1)


class Blowup(Forced):
    """dx/dt = x², x(0) = 1: x = 1/(1 − t) blows up at t = 1."""

    def vector_field(self, t, x):
        return x * x


def test_dopri5_blocks_refuse_to_step_past_a_blowup():
    system = Blowup()
    with pytest.raises(RuntimeError, match="underflow"):
        _dp(system, _initial(system, 1), rtol=1e-6, atol=1e-9, n_saves=4, every_t=0.5)


# -- compiled (slow: torch.compile takes minutes on a loaded machine) -------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["lorenz96", "lorenz63", "pendulum"])
def test_rk4_compiled_blocks_bit_identical(name):
    system = SYSTEMS[name]()
    x0 = _initial(system, 2)
    kw = dict(t0=0.0, dt=0.01, n_steps=5 * (CHUNK_SAVES + 1), save_every=5)
    integ = make_integrator("rk4", blocks=True, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
        got = integ.integrate(system, x0, **kw)
    assert integ.compile_seconds > 0
    assert torch.equal(got, make_integrator("rk4").integrate(system, x0, **kw))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lorenz96", "pendulum"])
def test_dopri5_compiled_blocks_match_eager_blocks(name):
    system = SYSTEMS[name]()
    x0 = _initial(system, 1)
    kw = dict(t0=0.0, dt=0.05, n_steps=CHUNK_SAVES + 4, save_every=1)
    integ = make_integrator("dopri5", rtol=1e-8, atol=1e-10, blocks=True, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = integ.integrate(system, x0, **kw)
    ref = make_integrator("dopri5", rtol=1e-8, atol=1e-10, blocks=True).integrate(system, x0, **kw)
    assert integ.compile_seconds > 0
    assert float((got - ref).abs().max()) < 1e-9 * (1 + float(ref.abs().max()))


@pytest.mark.slow
def test_each_integrator_keeps_its_own_compile_cache(monkeypatch):
    """Dynamo's recompile limit is per code object: integrators must not share one."""
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    system = make_system("lorenz63")
    for m in (1, 2):
        x0 = _initial(system, m)
        integ = make_integrator("rk4", blocks=True, compile=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            got = integ.integrate(system, x0, t0=0.0, dt=0.01, n_steps=20, save_every=10)
        assert torch.equal(got, make_integrator("rk4").integrate(system, x0, t0=0.0, dt=0.01, n_steps=20,
                                                                  save_every=10))


def test_option_schemas_match_the_constructors():
    import dataclasses
    import inspect

    for name in ("rk4", "dopri5"):
        cls = type(make_integrator(name))
        fields = {f.name: f.default for f in dataclasses.fields(cls.Options)}
        params = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
        assert fields == params
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls.Options))
