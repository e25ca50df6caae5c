"""The latitudinal energy-balance model against physics it must reproduce.

* diffusion: conservative to round-off; P2(sin φ) is an eigenfunction of the spherical
  Laplacian with eigenvalue −6, reached at second order in Δφ;
* climlab's annual EBM (P2 insolation, T = 12 − 40 P2) puts the ice edge near ±70°;
  S0 = 1200 gives a snowball at the analytic temperature ((1 − ai) S0/4 − A)/B;
* an independent steady-state solve (scipy.optimize.root of the discretised equations,
  written out here from the formulas) agrees with the time-stepped equilibrium;
* with the ice-albedo feedback off, Gregory regression of an abrupt-2× run gives the
  equilibrium warming of two constant-CO₂ runs, F₂ₓ/B; with it on the two differ (recorded);
* the heat budget (the accumulated heating carried in the state) closes to round-off with
  RK4, Euler–Maruyama, IMEX (ARS(2,2,2)) and the semi-implicit Euler–Maruyama, and a leaky
  (non-conservative) diffusion shows up in it;
* the split form L x + N equals the tendency written out directly; IMEX at climlab's step
  (1/90 yr) follows a fine-step RK4 reference; per-member CO₂ levels warm each member by F/B;
* noise is per member and per step (same bits in any block); the pipeline writes the
  variables with units.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import root

import dynlab
from dynlab.config import compose
from dynlab.pipeline.simulate import simulate
from simulators import TimeGrid, make_integrator, make_system
from simulators.climate import EnergyBalance1D, ice_edge_latitude, legendre_p2

pytestmark = pytest.mark.usefixtures("single_thread")
RK4 = make_integrator("rk4")
EM = make_integrator("euler_maruyama")
IMEX = make_integrator("imex")
IMEX_EULER = make_integrator("imex_euler")
F2X = 5.35 * math.log(2.0)


@pytest.fixture
def single_thread():
    # (member, lat) tensors are small: extra threads only add synchronisation
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ebm(**params) -> EnergyBalance1D:
    return make_system("ebm_1d", **params)


def run(system, dt, t_end, save_every=1.0, spinup=0.0, integrator=RK4, members=1, **kw):
    grid = TimeGrid(dt=dt, save_every=save_every, t_end=t_end, spinup=spinup)
    return system.simulate(integrator, grid, seed=0, members=range(members), **kw)


# -- diffusion --------------------------------------------------------------------------------
def test_diffusion_conserves_heat_and_sends_it_down_the_gradient():
    system = ebm(n_lat=90)
    T = 30 * torch.randn(5, 90, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    conv = system.diffusive_convergence(T)
    assert system.global_mean(conv).abs().max() < 1e-13 * conv.abs().max()
    assert system.diffusive_convergence(torch.full((2, 90), 7.0, dtype=torch.float64)).abs().max() == 0
    warm_equator = torch.as_tensor(np.cos(np.radians(system.lat)), dtype=torch.float64)
    conv = system.diffusive_convergence(warm_equator)
    assert conv[45] < 0 and conv[0] > 0 and conv[-1] > 0  # the equator loses heat to the poles


def test_diffusion_of_p2_converges_to_the_legendre_eigenvalue():
    errors = []
    for n in (30, 60, 120):
        system = ebm(n_lat=n, D=1.0)
        p2 = torch.as_tensor(legendre_p2(np.sin(np.radians(system.lat))), dtype=torch.float64)
        # (1/cos φ) ∂φ(cos φ ∂φ P2) = −n(n+1) P2 = −6 P2
        errors.append((system.diffusive_convergence(p2) + 6 * p2).abs().max().item())
    assert errors[0] / errors[1] == pytest.approx(4, rel=0.1) and errors[1] / errors[2] == pytest.approx(4, rel=0.1)


# -- climlab's annual EBM -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def annual_equilibrium():
    """climlab's default annual-mean EBM (90 bands, 10 m, P2 insolation) run 12 years."""
    torch.set_num_threads(1)
    system = ebm(insolation="annual_p2")
    return system, run(system, dt=0.002, t_end=12.0)


def test_annual_ebm_ice_edge_near_70(annual_equilibrium):
    system, out = annual_equilibrium
    T = out["T"][0, -1]
    north, south = ice_edge_latitude(T, system.lat), ice_edge_latitude(T, system.lat, hemisphere="south")
    print(f"\nannual EBM ice edge: {north:.3f} N, {south:.3f} S; T_global {out['T_global'][0, -1]:.4f} degC")
    assert 67.0 < north < 73.0 and south == pytest.approx(north, abs=1e-9)
    assert abs(out["N_toa"][0, -1]) < 1e-5  # equilibrated
    assert 13.5 < out["T_global"][0, -1] < 15.0
    assert (out["T"][0, -1] < -10).sum() == 2 * 10  # bands 71–89° of each hemisphere


def discretised_steady_state_residual(lat_edges, T, *, S0=1365.2, s2=-0.482, A=210.0, B=2.0, D=0.555,
                                      a0=0.3, a2=0.078, ai=0.62, Tf=-10.0):
    """The annual EBM's finite-volume equations written out from the formulas: W m-2 per band."""
    phi_e = np.radians(lat_edges)
    lat = 0.5 * (lat_edges[1:] + lat_edges[:-1])
    x = np.sin(np.radians(lat))
    P2 = 1.5 * x * x - 0.5
    S = S0 / 4 * (1 + s2 * P2)
    albedo = np.where(T < Tf, ai, a0 + a2 * P2)
    dphi = phi_e[1] - phi_e[0]
    edge_flux = np.concatenate([[0.0], D * np.cos(phi_e[1:-1]) * np.diff(T) / dphi, [0.0]])
    return (1 - albedo) * S - (A + B * T) + np.diff(edge_flux) / np.diff(np.sin(phi_e))


def test_independent_steady_state_solve_agrees(annual_equilibrium):
    system, out = annual_equilibrium
    edges = np.linspace(-90, 90, 91)
    lat = 0.5 * (edges[1:] + edges[:-1])
    start = 12 - 40 * (1.5 * np.sin(np.radians(lat)) ** 2 - 0.5)
    sol = root(lambda T: discretised_steady_state_residual(edges, T), start, method="hybr", tol=1e-12)
    assert sol.success, sol.message
    stepped = out["T"][0, -1].numpy()
    print(f"\nsteady state: max |T_root - T_stepped| = {np.abs(sol.x - stepped).max():.2e} K")
    np.testing.assert_allclose(stepped, sol.x, atol=1e-5)
    assert np.abs(discretised_steady_state_residual(edges, stepped)).max() < 1e-4


def test_snowball_below_s0_1200():
    system = ebm(insolation="annual_p2", n_lat=30, solar_constant=1200.0)
    out = run(system, dt=0.0125, t_end=10.0)
    T = out["T"][0, -1]
    assert (T < -10).all() and ice_edge_latitude(T, system.lat) == 0.0
    # all ice: <T> = ((1 − ai) S0/4 − A)/B, up to the O(Δφ²) grid mean of P2
    assert out["T_global"][0, -1] == pytest.approx(((1 - 0.62) * 300.0 - 210.0) / 2.0, abs=0.05)
    warm = run(ebm(insolation="annual_p2", n_lat=30), dt=0.0125, t_end=3.0)
    assert ice_edge_latitude(warm["T"][0, -1], system.lat) > 60  # the same start with S0 = 1365.2 is no snowball


# -- climate sensitivity: Gregory regression against equilibrium runs ---------------------------
def sensitivities(feedback: bool, n_lat=30, depth=50.0, dt=0.05, spinup=40.0):
    """(Gregory x-intercept over years 1–20 of abrupt 2×, equilibrium 2× − 1× of constant runs)."""
    def system(**kw):
        return ebm(insolation="annual_p2", n_lat=n_lat, mixed_layer_depth=depth, ice_albedo_feedback=feedback, **kw)
    control = run(system(scenario="constant"), dt=dt, t_end=0.0, spinup=spinup)
    doubled = run(system(scenario="constant", co2_multiple=2.0), dt=dt, t_end=0.0, spinup=spinup)
    equilibrium = float(doubled["T_global"][0, -1] - control["T_global"][0, -1])
    abrupt = run(system(scenario="abrupt_2x"), dt=dt, t_end=20.0, save_every=0.25, spinup=spinup)
    Tg, N = abrupt["T_global"][0].numpy(), abrupt["N_toa"][0].numpy()
    # annual means of years 1..20 (trapezoid over the saves of each year), anomalies from the control
    years = Tg[:-1].reshape(20, 4), Tg[1:].reshape(20, 4)
    T_ann = 0.5 * (years[0] + years[1]).mean(1) - float(control["T_global"][0, -1])
    N_ann = 0.5 * (N[:-1].reshape(20, 4) + N[1:].reshape(20, 4)).mean(1)
    slope, intercept = np.polyfit(T_ann, N_ann, 1)
    return -intercept / slope, equilibrium, intercept, slope


def test_gregory_matches_equilibrium_without_ice_feedback(record_property):
    gregory, equilibrium, forcing, slope = sensitivities(feedback=False)
    print(f"\nfeedback off: Gregory {gregory:.4f} K (F {forcing:.3f} W m-2, lambda {slope:.3f}), "
          f"equilibrium {equilibrium:.4f} K")
    record_property("ecs_gregory_no_ice_feedback", gregory)
    record_property("ecs_equilibrium_no_ice_feedback", equilibrium)
    assert equilibrium == pytest.approx(F2X / 2.0, rel=1e-3)  # ΔT = F/B with the albedo fixed
    assert gregory == pytest.approx(equilibrium, rel=0.05)
    assert slope == pytest.approx(-2.0, rel=0.01) and forcing == pytest.approx(F2X, rel=0.02)


def test_ice_albedo_feedback_amplifies_warming(record_property):
    gregory, equilibrium, forcing, slope = sensitivities(feedback=True)
    print(f"\nfeedback on: Gregory {gregory:.4f} K (F {forcing:.3f} W m-2, lambda {slope:.3f}), "
          f"equilibrium {equilibrium:.4f} K (the polar ice retreats, so the two differ)")
    record_property("ecs_gregory_ice_feedback", gregory)
    record_property("ecs_equilibrium_ice_feedback", equilibrium)
    assert equilibrium > 1.5 * F2X / 2.0 and gregory > 1.5 * F2X / 2.0
    assert -2.0 < slope < 0


@pytest.mark.slow
def test_sensitivities_at_climlab_resolution(record_property):
    """90 bands, 10 m (climlab's default grid); both methods with and without the feedback."""
    for feedback in (False, True):
        gregory, equilibrium, forcing, slope = sensitivities(feedback, n_lat=90, depth=10.0, dt=0.002, spinup=15.0)
        print(f"\nn_lat=90, feedback {feedback}: Gregory {gregory:.4f} K, equilibrium {equilibrium:.4f} K")
        record_property(f"ecs_90_{feedback}", (gregory, equilibrium))
        if not feedback:
            assert gregory == pytest.approx(equilibrium, rel=0.05)


# -- budget -------------------------------------------------------------------------------------
def budget_scale(system, out) -> float:
    """Largest heat-content change between saved states (J m-2)."""
    return float((system.heat_capacity * out["T_global"].diff(dim=1)).abs().max())


@pytest.mark.parametrize("integrator, params, dt", [
    (RK4, dict(), 0.005),
    (EM, dict(noise=2.0), 0.005),
    (IMEX, dict(), 0.02),          # 3.5x rk4's stability limit at n_lat=30
    (IMEX_EULER, dict(noise=2.0), 0.02),
])
def test_budget_closes_to_round_off(integrator, params, dt):
    system = ebm(n_lat=30, scenario="ramp_2pct", qflux_amplitude=15.0, **params)
    out = run(system, dt=dt, t_end=2.0, save_every=0.1, spinup=0.5, integrator=integrator, members=3)
    residual = out["budget_residual"]
    scale = budget_scale(system, out)
    print(f"\n{integrator.name}: max |budget residual| {residual.abs().max():.2e} J m-2 "
          f"against heat-content changes up to {scale:.2e} J m-2")
    assert (residual[:, 0] == 0).all()
    assert residual.abs().max() < 1e-9 * scale
    assert scale > 1e6  # the check is not vacuous: the seasonal cycle moves heat in and out


def advective_form_diffusion(system):
    """∂²T/∂φ² − tan φ ∂T/∂φ by centred differences: consistent but not conservative."""
    phi = torch.as_tensor(np.radians(system.lat), dtype=torch.float64)
    dphi = system.grid.dphi
    D = system.params.D

    def convergence(T):
        padded = torch.cat((T[..., :1], T, T[..., -1:]), dim=-1)  # no gradient through the poles
        second = (padded[..., 2:] - 2 * T + padded[..., :-2]) / dphi ** 2
        first = (padded[..., 2:] - padded[..., :-2]) / (2 * dphi)
        return D * (second - torch.tan(phi) * first)
    return convergence


def test_a_leaky_diffusion_shows_in_the_budget(monkeypatch):
    """The advective form of the diffusion, written as a tridiagonal operator, is consistent
    but not conservative: the budget residual shows the leak."""
    from simulators.split import BorderedOperator, TridiagonalOperator

    system = ebm(n_lat=30, insolation="annual_p2")
    phi = np.radians(system.lat)
    dphi, D, B, C = system.grid.dphi, system.params.D, system.params.B, system.heat_capacity_years
    lower = D * (1 / dphi ** 2 + np.tan(phi) / (2 * dphi))
    upper = D * (1 / dphi ** 2 - np.tan(phi) / (2 * dphi))
    lower[0] = upper[-1] = 0.0
    diag = -(lower + upper) - B
    t = lambda a: torch.as_tensor(a / C, dtype=torch.float64)  # noqa: E731
    leaky = BorderedOperator(TridiagonalOperator(t(lower), t(diag), t(upper)),
                             torch.as_tensor(-B * system.grid.area / C, dtype=torch.float64))
    monkeypatch.setattr(system, "linear_operator", lambda dtype=torch.float64, device="cpu": leaky)
    out = run(system, dt=0.005, t_end=1.0, save_every=0.1)
    scale = budget_scale(system, out)
    print(f"\nleaky diffusion: max |budget residual| {out['budget_residual'].abs().max():.2e} J m-2 "
          f"(scale {scale:.2e})")
    assert out["budget_residual"].abs().max() > 1e-4 * scale


# -- seasonal model, forcing, noise --------------------------------------------------------------
def test_seasonal_cycle_has_the_right_phase_and_amplitude():
    system = ebm(n_lat=30)
    out = run(system, dt=0.01, t_end=1.0, save_every=0.05, spinup=5.0)
    T = out["T"][0].numpy()  # (21, 30)
    north, south, equator = np.argmin(np.abs(system.lat - 63)), np.argmin(np.abs(system.lat + 63)), 15
    feb, aug = 2, 12  # t = 0.1 and 0.6 years
    assert T[aug, north] > T[feb, north] + 10 and T[feb, south] > T[aug, south] + 10
    amp = T.max(0) - T.min(0)
    assert amp[north] > 3 * amp[equator]
    # the seasonal model also has polar ice in winter
    assert (T[feb, -3:] < -10).all()


def test_co2_forcing_warms_and_qflux_moves_heat_poleward():
    base = run(ebm(n_lat=30, insolation="annual_p2", ice_albedo_feedback=False), dt=0.01, t_end=10.0)
    warm = run(ebm(n_lat=30, insolation="annual_p2", ice_albedo_feedback=False, scenario="abrupt_4x"),
               dt=0.01, t_end=10.0)
    assert (warm["T"][0, -1] - base["T"][0, -1]).min() > 3.0  # 7.4 W m-2 / 2: warmer everywhere
    assert float(warm["forcing"][0, -1]) == pytest.approx(2 * F2X)
    assert float(warm["co2"][0, -1]) == pytest.approx(1120.0)
    q = run(ebm(n_lat=30, insolation="annual_p2", ice_albedo_feedback=False, qflux_amplitude=20.0),
            dt=0.01, t_end=10.0)
    dT = (q["T"][0, -1] - base["T"][0, -1]).numpy()
    assert dT[0] > 1.0 and dT[-1] > 1.0 and dT[15] < -1.0  # poles warmer, equator cooler
    assert abs(float(q["T_global"][0, -1] - base["T_global"][0, -1])) < 0.05  # P2 moves heat, adds ~none


def test_noise_is_per_member_and_block_independent():
    system = ebm(n_lat=30, noise=3.0, initial_spread=1.0)
    assert system.is_stochastic and system.default_integrator == "euler_maruyama"
    full = run(system, dt=0.005, t_end=0.5, save_every=0.1, spinup=0.1, integrator=EM, members=4)
    grid = TimeGrid(dt=0.005, save_every=0.1, t_end=0.5, spinup=0.1)
    part = system.simulate(EM, grid, seed=0, members=range(2, 4))
    for name in full:
        assert torch.equal(full[name][2:], part[name]), name
    assert not torch.equal(full["T"][0], full["T"][1])
    other_seed = system.simulate(EM, grid, seed=1, members=range(2, 4))
    assert not torch.equal(other_seed["T"], part["T"])


def test_split_form_is_the_tendency_written_out():
    """L x + N (what every integrator sees) equals (heating + diffusive convergence)/C on the
    bands, and the area-weighted heating/C for the accumulated term."""
    system = ebm(n_lat=18, scenario="ramp_1pct", qflux_amplitude=10.0)
    gen = torch.Generator().manual_seed(0)
    T = torch.as_tensor(np.linspace(-30, 28, 18), dtype=torch.float64).expand(3, -1) + \
        torch.randn(3, 18, generator=gen, dtype=torch.float64)
    x = torch.cat((T, torch.randn(3, 1, generator=gen, dtype=torch.float64)), dim=-1)
    for t in (0.0, 0.37, 1.5):
        f = system.vector_field(t, x)
        C = system.heat_capacity_years
        direct = (system.heating(t, T) + system.diffusive_convergence(T)) / C
        torch.testing.assert_close(f[:, :-1], direct, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f[:, -1], system.global_mean(system.heating(t, T)) / C, rtol=1e-12, atol=1e-14)
    assert system.observables(x)["T"].shape == (3, 18)


@pytest.mark.parametrize("ice", [False, True])
def test_imex_at_climlab_step_follows_a_fine_rk4_reference(ice):
    """Seasonal model on 90 bands, 1 year after a 3-year spin-up: IMEX at Δt = 1/90 yr (4.5x rk4's limit)
    against RK4 at Δt = 1/900 yr, at the same 90 sample times. Smooth (no ice feedback):
    within 1e-3 K at every sample. With the step-function ice albedo the right-hand side
    is discontinuous and every one-step method drops to first order (RK4 at 0.001 yr is
    itself 0.007 K from RK4 at 0.0005 yr): samples and the annual mean stay within 0.05 K."""
    system = ebm(ice_albedo_feedback=ice)
    assert 1 / 90 > 4 * system.max_stable_dt("rk4")
    ref = system.simulate(RK4, TimeGrid(dt=1 / 900, save_every=1 / 90, t_end=1.0, spinup=3.0), seed=0,
                          members=range(1))["T_global"][0]
    imex = system.simulate(IMEX, TimeGrid(dt=1 / 90, save_every=1 / 90, t_end=1.0, spinup=3.0), seed=0,
                           members=range(1))["T_global"][0]
    err = float((imex - ref).abs().max())
    annual = abs(float(imex[:-1].mean() - ref[:-1].mean()))
    print(f"\nimex at 1/90 yr, ice={ice}: max |T_global - rk4| {err:.2e} K, annual mean {annual:.2e} K")
    assert err < (0.05 if ice else 1e-3)
    assert annual < (0.05 if ice else 1e-3)


def test_per_member_co2_levels_warm_each_member_by_forcing_over_b():
    """randomize.co2_multiple draws a CO₂ level per member (stored on member); without the
    ice feedback the equilibrium global warming is F/B = 5.35 ln(k)/B."""
    base = dict(n_lat=18, insolation="annual_p2", ice_albedo_feedback=False)
    levels = ebm(scenario="constant", randomize={"co2_multiple": [1.0, 4.0]}, **base)
    out = run(levels, dt=0.02, t_end=20.0, save_every=20.0, members=4, integrator=IMEX)
    k = out["co2_multiple"]
    assert k.shape == (4,) and bool(((k > 1) & (k <= 4)).all()) and len(set(k.tolist())) == 4
    torch.testing.assert_close(out["co2"], 280.0 * k[:, None].expand(-1, 2))
    torch.testing.assert_close(out["forcing"], 5.35 * torch.log(k)[:, None].expand(-1, 2))
    ref = run(ebm(**base), dt=0.02, t_end=20.0, save_every=20.0, integrator=IMEX)
    warming = out["T_global"][:, -1] - ref["T_global"][0, -1]
    torch.testing.assert_close(warming, 5.35 * torch.log(k) / 2.0, rtol=0, atol=2e-3)
    # a member's run equals the fixed-level run at its drawn level
    one = run(ebm(scenario="constant", co2_multiple=float(k[2]), **base), dt=0.02, t_end=20.0, save_every=20.0,
              integrator=IMEX)
    torch.testing.assert_close(out["T"][2], one["T"][0], rtol=0, atol=1e-9)
    assert {v.name: v.role for v in levels.variables}["co2_multiple"] == "forcing"
    with pytest.raises(ValueError, match="randomize.co2_multiple.*does not use co2_multiple"):
        ebm(scenario="ramp_1pct", randomize={"co2_multiple": [1.0, 2.0]})


def test_float32():
    system = ebm(n_lat=30)
    out = run(system, dt=0.01, t_end=0.5, save_every=0.1, dtype=torch.float32)
    ref = run(system, dt=0.01, t_end=0.5, save_every=0.1)
    assert out["T"].dtype == torch.float32
    torch.testing.assert_close(out["T"].double(), ref["T"], rtol=0, atol=1e-3)


# -- errors ----------------------------------------------------------------------------------------
def test_unstable_step_and_other_integrators_are_refused():
    system = ebm()
    with pytest.raises(ValueError, match=r"time.dt=0.005 years is above the stability limit 0.002\d* .*n_lat=90"):
        run(system, dt=0.005, t_end=0.01, save_every=0.005)
    assert system.max_stable_dt("euler_maruyama") < system.max_stable_dt("rk4")
    assert ebm(mixed_layer_depth=20.0).max_stable_dt() == pytest.approx(2 * system.max_stable_dt(), rel=1e-3)
    with pytest.raises(ValueError, match="or integrator=imex"):
        run(system, dt=0.005, t_end=0.01, save_every=0.005)
    run(system, dt=0.005, t_end=0.01, save_every=0.005, integrator=IMEX)  # implicit diffusion: no limit
    with pytest.raises(ValueError, match="rk4 cannot integrate the stochastic system ebm_1d"):
        run(ebm(noise=1.0), dt=0.001, t_end=0.01, save_every=0.005)


@pytest.mark.parametrize("params, message", [
    (dict(n_lat=1), "n_lat must be an integer >= 2, got 1"),
    (dict(n_lat=30.5), "n_lat must be an integer >= 2, got 30.5"),
    (dict(insolation="daily"), "insolation must be one of seasonal, annual, annual_p2, got 'daily'"),
    (dict(mixed_layer_depth=-1.0), "mixed_layer_depth must be > 0, got -1.0"),
    (dict(D=-0.1), "D must be >= 0, got -0.1"),
    (dict(ai=1.2), "ai .* must be in \\[0, 1\\], got 1.2"),
    (dict(eccentricity=1.0), "eccentricity must be in \\[0, 1\\), got 1.0"),
    (dict(ice_albedo_feedback="yes"), "ice_albedo_feedback must be true or false, got 'yes'"),
    (dict(n_lat=4, qflux_profile=[1, 2, 3]), "qflux_profile must have n_lat=4 values, got 3"),
    (dict(noise=-2.0), "noise must be >= 0, got -2.0"),
    (dict(scenario="ramp_1pct", co2_multiple=2.0), "does not use co2_multiple"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        ebm(**params)


# -- pipeline ---------------------------------------------------------------------------------------
def test_pipeline_writes_the_variables_with_units(tmp_path):
    out = tmp_path / "ebm.zarr"
    simulate(compose("simulate", ["system=ebm_1d", "system.n_lat=18", "system.scenario=abrupt_2x",
                                  "ensemble.members=3", "time.dt=0.01", "time.save_every=0.1", "time.spinup=1",
                                  "time.t_end=1", f"out={out}", "progress=false"]), log=lambda m: None)
    ds = dynlab.open_dataset(out)
    assert ds.attrs["system"] == "ebm_1d" and ds.attrs["integrator"] == "rk4"
    assert ds.T.dims == ("member", "time", "lat") and ds.sizes == {"member": 3, "time": 11, "lat": 18}
    units = {"T": "degC", "T_global": "degC", "N_toa": "W m-2", "co2": "ppm", "forcing": "W m-2",
             "budget_residual": "J m-2"}
    for name, unit in units.items():
        assert ds[name].attrs["units"] == unit and ds[name].attrs["long_name"]
        if name != "T":
            assert ds[name].dims == ("member", "time")
    assert ds.lat.attrs["units"] == "degrees_north"
    np.testing.assert_allclose(ds.lat.values, np.arange(-85, 90, 10))
    assert ds.time.attrs["units"] == "year" and ds.time.dtype == np.float64
    np.testing.assert_allclose(ds.co2.values, 560.0)
    scale = float((ds.T_global.diff("time") * 4.18e7).__abs__().max())
    assert float(abs(ds.budget_residual).max()) < 1e-9 * scale
    # T_global is the area-weighted mean of T
    w = np.diff(np.sin(np.radians(np.arange(-90, 91, 10)))) / 2
    np.testing.assert_allclose(ds.T_global.values, (ds.T.values * w).sum(-1), rtol=1e-12)


def test_noisy_dataset_is_bit_identical_for_any_block_size(tmp_path):
    base = ["system=ebm_1d", "system.n_lat=18", "system.noise=2.0", "system.scenario=ramp_2pct",
            "ensemble.members=4", "time.dt=0.01", "time.save_every=0.1", "time.spinup=0.2", "time.t_end=0.5",
            "progress=false"]
    simulate(compose("simulate", [*base, f"out={tmp_path / 'a.zarr'}"]), log=lambda m: None)
    simulate(compose("simulate", [*base, "ensemble.chunk_members=1", "ensemble.block_size=1",
                                  f"out={tmp_path / 'b.zarr'}"]), log=lambda m: None)
    a, b = dynlab.open_dataset(tmp_path / "a.zarr"), dynlab.open_dataset(tmp_path / "b.zarr")
    assert a.attrs["integrator"] == "euler_maruyama"
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert float(abs(a.budget_residual).max()) < 1e-9 * float(abs(a.T_global.diff("time")).max() * 4.18e7)


def test_annual_preset_composes():
    cfg = compose("simulate", ["system=ebm_1d_annual", "system.scenario=ramp_1pct"])
    assert cfg.system.name == "ebm_1d" and cfg.system.insolation == "annual_p2" and cfg.time.dt == 0.002
    system = make_system(**{k: v for k, v in cfg.system.items()})
    assert system.max_stable_dt() > cfg.time.dt
