"""The one driver and its hooks: time-only outputs, state diagnostics, per-member
parameters and the post-step projection reproduce what the former ``simulate``
overrides computed (checked against independent computations, bit for bit), and
the driver modules no longer import each other at run time."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import simulators
from simulators import CounterRNG, TimeGrid, make_integrator, make_system
from simulators.core import SYSTEMS, AbstractSystem
from simulators.random import STREAM_NOISE

ROOT = Path(simulators.__file__).parent


def _path_sampled(cls) -> bool:
    return str(getattr(cls, "default_integrator", "")).startswith("gillespie")


def test_no_time_stepped_system_overrides_simulate():
    stepped = {name: cls for name, cls in SYSTEMS.items() if not _path_sampled(cls)}
    assert {"lorenz96", "slab_ocean_0d", "ebm_1d", "may_grazing", "lsn", "pendulum"} <= set(stepped)
    overriding = sorted(name for name, cls in stepped.items() if cls.simulate is not AbstractSystem.simulate)
    assert overriding == []


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported at module level outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.ImportFrom) and sub.level:
                out.add("." * sub.level + (sub.module or ""))
    return out


def test_core_ensemble_and_integrators_do_not_import_each_other():
    assert _runtime_imports(ROOT / "core.py") <= {".random"}
    assert not {".core", "..core"} & _runtime_imports(ROOT / "ensemble.py")
    for name in ("base.py", "rk4.py", "euler_maruyama.py", "symplectic.py", "projected.py"):
        imports = _runtime_imports(ROOT / "integrators" / name)
        assert not {"..core", "..ensemble"} & imports, (name, imports)


def test_time_outputs_and_diagnostics_of_the_slab_ocean():
    """co2 and forcing are the scenario's at the saved times; N_toa = F + λT of the saved T;
    T is the integrator's trajectory from the sampled initial state."""
    slab = make_system("slab_ocean_0d", scenario="ramp_1pct", noise=0.3)
    grid = TimeGrid(dt=0.05, save_every=1.0, t_end=20.0, spinup=1.0)
    em = make_integrator("euler_maruyama")
    members = [0, 5, 7]
    out = slab.simulate(em, grid, seed=3, members=members)
    rng = CounterRNG(3, members)
    x = em.integrate(slab, slab.sample_initial(rng), t0=-1.0, dt=0.05, n_steps=20, save_every=20, rng=rng)[-1]
    traj = torch.cat((x[None], em.integrate(slab, x, t0=0.0, dt=0.05, n_steps=400, save_every=20,
                                            step0=20, rng=rng)))
    assert torch.equal(out["T"], traj[..., 0].T)
    co2 = torch.tensor([slab.scenario.co2(float(t)) for t in grid.times], dtype=torch.float64)
    forcing = torch.tensor([5.35 * math.log(float(c) / 280.0) for c in co2], dtype=torch.float64)
    assert torch.equal(out["co2"], co2.expand(3, -1))
    assert torch.allclose(out["forcing"], forcing.expand(3, -1), rtol=0, atol=1e-13)
    assert torch.equal(out["N_toa"], out["forcing"] + slab.params.feedback * out["T"])
    assert {v.name: v.role for v in slab.variables} == {"T": "state", "N_toa": "diagnostic",
                                                        "forcing": "forcing", "co2": "forcing"}


def test_projection_hook_is_euler_maruyama_reflected_at_zero():
    """May's output equals an explicit loop x ← |x + f h + σ √h ξ| on the member streams,
    and the grazing rate is c₀ + ċ max(t, 0) at the saved times."""
    may = make_system("may_grazing", c=2.3, c_rate=0.01, sigma=0.6, x0=0.05)
    grid = TimeGrid(dt=0.05, save_every=0.1, t_end=2.0, spinup=0.5)
    members = [1, 4]
    out = may.simulate(make_integrator("euler_maruyama"), grid, seed=2, members=members)
    rng = CounterRNG(2, members)
    x = torch.full((2, 1), 0.05, dtype=torch.float64)
    saved = []
    for n in range(10 + 40):
        t = -0.5 + n * 0.05
        xi = rng.normal((1,), step=n, stream=STREAM_NOISE, dtype=torch.float64)
        x = torch.abs(x + 0.05 * may.vector_field(t, x) + math.sqrt(0.05) * (0.6 * xi))
        if n >= 9 and (n - 9) % 2 == 0:
            saved.append(x[:, 0])
    assert torch.equal(out["x"], torch.stack(saved, dim=1))
    assert bool((out["x"] >= 0).all())
    assert torch.equal(out["c"], (2.3 + 0.01 * grid.times).expand(2, -1))


def test_member_parameters_hook_binds_the_drawn_values():
    pend = make_system("pendulum", randomize={"l": [0.5, 2.0], "friction": [0.0, 0.1]})
    grid = TimeGrid(dt=0.01, save_every=0.1, t_end=1.0)
    rk4 = make_integrator("rk4")
    members = [3, 9, 11]
    out = pend.simulate(rk4, grid, seed=4, members=members)
    rng = CounterRNG(4, members)
    values = pend.sample_parameters(rng)
    assert set(values) == {"l", "friction"} and torch.equal(out["l"], values["l"])
    bound = pend.bind(values)
    traj = rk4.integrate(bound, bound.sample_initial(rng), t0=0.0, dt=0.01, n_steps=100, save_every=10)
    assert torch.equal(out["q"][:, 1:], bound.split(traj)[0].transpose(0, 1))
    # each member runs with its own length: the small-angle periods differ
    assert len(set(out["l"].tolist())) == 3


def test_an_adaptive_integrator_is_refused_where_a_projection_is_needed():
    from simulators.ensemble import _stepper

    may = make_system("may_grazing")
    with pytest.raises(ValueError, match="may_grazing applies reflection of the state at x = 0.*dopri5"):
        _stepper(may, make_integrator("dopri5"))
    assert _stepper(make_system("lsn"), make_integrator("dopri5")).name == "dopri5"  # no projection: as given


def test_default_hooks_are_inert():
    l96 = make_system("lorenz96", K=8)
    assert l96.time_outputs(torch.zeros(3)) == {} and l96.diagnostics(torch.zeros(3), torch.zeros(1, 3, 8)) == {}
    assert l96.bind({}) is l96
    with pytest.raises(ValueError, match="no per-member parameters"):
        l96.bind({"F": torch.ones(2)})
