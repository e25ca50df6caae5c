"""``assert_*`` helpers for users' own test suites, built on :mod:`dynlab.eval`'s metric code.

>>> from dynlab.testing import assert_emulator_contract, assert_forecast_skill
>>> assert_emulator_contract(my_emulator, x)                          # doctest: +SKIP
>>> assert_forecast_skill(my_emulator, ds, test_members=[0, 1], min_vpt=0.2)  # doctest: +SKIP

Each raises ``AssertionError`` with a message that states the measured value
and the bound it broke.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .emulators.base import AbstractEmulator
from .eval import metrics as M

__all__ = ["assert_emulator_contract", "assert_forecast_skill", "assert_conserves", "assert_climate",
           "assert_lyapunov_close", "assert_stationary_distribution_close"]


def assert_emulator_contract(emulator: AbstractEmulator, x: torch.Tensor, *, atol: float = 1e-8,
                             rollout_steps: int = 3) -> None:
    """Check the Emulator contract on a batch ``x`` ``(B, L, D)``.

    * ``forward(x)`` has shape ``(B, L, D)``;
    * teacher-forced and recurrent modes agree: ``forward(x)[:, t]`` equals the
      output of ``step`` after feeding ``x_0 … x_t`` (max abs difference ≤ ``atol``);
    * ``rollout(x, n)`` equals stepping by hand (warm up on ``x``, feed predictions back).

    Use float64 emulators and inputs for tight ``atol``.
    """
    if x.ndim != 3 or x.shape[-1] != emulator.n_features:
        raise ValueError(f"x must have shape (B, L, {emulator.n_features}), got {tuple(x.shape)}")
    B, L, D = x.shape
    with torch.no_grad():
        y = emulator(x)
        assert tuple(y.shape) == (B, L, D), f"forward returned shape {tuple(y.shape)}, expected {(B, L, D)}"
        state = emulator.initial_state(B, device=x.device, dtype=x.dtype)
        stepped = []
        for t in range(L):
            out, state = emulator.step(x[:, t], state)
            assert tuple(out.shape) == (B, D), f"step returned shape {tuple(out.shape)}, expected {(B, D)}"
            stepped.append(out)
        stepped = torch.stack(stepped, dim=1)
        diff = float((y - stepped).abs().max())
        assert diff <= atol, (f"teacher-forced forward and recurrent step disagree: max |difference| = {diff:.3g} "
                              f"> atol = {atol:.3g}")
        roll = emulator.rollout(x, rollout_steps)
        assert tuple(roll.shape) == (B, rollout_steps, D), \
            f"rollout returned shape {tuple(roll.shape)}, expected {(B, rollout_steps, D)}"
        by_hand, pred = [stepped[:, -1]], stepped[:, -1]
        for _ in range(rollout_steps - 1):
            pred, state = emulator.step(pred, state)
            by_hand.append(pred)
        diff = float((roll - torch.stack(by_hand, dim=1)).abs().max())
        assert diff <= atol, f"rollout differs from stepping by hand: max |difference| = {diff:.3g} > atol = {atol:.3g}"


def assert_forecast_skill(emulator: AbstractEmulator, ds, *, test_members: Sequence | None = None,
                          train_members: Sequence | None = None, context: int = 10, horizon: int = 20,
                          starts_per_member: int = 2, codec=None, min_vpt: float | None = None,
                          max_rmse_lead1: float | None = None, beat_persistence: bool = True,
                          threshold: float = M.VPT_THRESHOLD):
    """Forecast the test members of ``ds`` and check the emulator's skill.

    Checks (each optional): the median valid prediction time (model time) is at
    least ``min_vpt``; the lead-1 RMSE is at most ``max_rmse_lead1``; the RMSE is
    below persistence's at lead 1 (``beat_persistence``). Returns the metrics
    dataset. The reference scales (λ₁, integrator agreement) are not computed here.
    """
    from .emulators.baselines import Persistence
    from .eval.forecast import prepare_evaluation, score_emulator

    members = list(ds["member"].values.tolist())
    test_members = list(test_members) if test_members is not None else members[-max(1, len(members) // 5):]
    setup = prepare_evaluation(ds, test_members, codec=codec or getattr(emulator, "codec", None), context=context,
                               horizon=horizon, starts_per_member=starts_per_member, long_rollout=0,
                               train_members=train_members, threshold=threshold, lyapunov=False, agreement=False)
    scores = score_emulator(emulator, setup)
    vpt = float(np.median(scores["vpt"].values))
    rmse1 = float(scores["rmse"].values[0])
    if min_vpt is not None:
        assert vpt >= min_vpt, f"median valid prediction time {vpt:.4g} < min_vpt = {min_vpt:.4g} (model time)"
    if max_rmse_lead1 is not None:
        assert rmse1 <= max_rmse_lead1, f"lead-1 RMSE {rmse1:.4g} > max_rmse_lead1 = {max_rmse_lead1:.4g}"
    if beat_persistence:
        persistence = float(score_emulator(Persistence(emulator.n_features), setup)["rmse"].values[0])
        assert rmse1 < persistence, f"lead-1 RMSE {rmse1:.4g} does not beat persistence's {persistence:.4g}"
    return scores


def assert_conserves(emulator: AbstractEmulator, context: torch.Tensor, steps: int,
                     invariant: Callable[[torch.Tensor], torch.Tensor], *, rtol: float | None = 1e-3,
                     relative: bool = True, dt: float = 1.0, max_drift_slope: float | None = None,
                     max_oscillation: float | None = None) -> np.ndarray:
    """Roll out from ``context`` ``(B, C, D)`` and check an invariant's drift.

    ``invariant`` maps states ``(..., D)`` to ``(...)`` (e.g. an energy). The drift
    :math:`\\max_t |I_t − I_0|` (relative to :math:`|I_0|` by default), with
    :math:`I_0` at the last context state, must be ≤ ``rtol`` for every member
    (``rtol=None`` skips this check). Optionally, with steps ``dt`` apart in model
    time (:func:`dynlab.eval.physics.linear_drift`): the least-squares drift slope
    :math:`|b|` of :math:`I_t − I_0` on t must be ≤ ``max_drift_slope`` and the
    detrended oscillation amplitude ≤ ``max_oscillation`` (both relative to
    :math:`|I_0|` when ``relative``). For a system's own invariant use
    :func:`dynlab.eval.physics.invariant_of`. Returns the drifts ``(B,)``.
    """
    with torch.no_grad():
        forecast = emulator.rollout(context, steps)
        path = torch.cat((context[:, -1:], forecast), dim=1)  # (B, 1 + steps, D)
        values = invariant(path)
    if tuple(values.shape) != tuple(path.shape[:2]):
        raise ValueError(f"invariant must map (B, T, D) states to (B, T), got shape {tuple(values.shape)}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number > 0 (model time between steps), got {dt!r}")
    drift = M.conservation_drift(values, relative=relative)
    worst = int(np.argmax(drift))
    if rtol is not None:
        assert drift[worst] <= rtol, (f"invariant drifts by {drift[worst]:.3g} (member {worst}, over {steps} steps) "
                                      f"> rtol = {rtol:.3g}")
    if max_drift_slope is not None or max_oscillation is not None:
        from .eval.physics import linear_drift

        v = values.detach().cpu().double().numpy()
        slope, amplitude = linear_drift(v, float(dt) * np.arange(v.shape[1]))
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                slope, amplitude = np.abs(slope) / np.abs(v[:, 0]), amplitude / np.abs(v[:, 0])
        slope, amplitude = np.nan_to_num(np.abs(slope), nan=np.inf), np.nan_to_num(amplitude, nan=np.inf)
        kind = "relative " if relative else ""
        if max_drift_slope is not None:
            w = int(np.argmax(slope))
            assert slope[w] <= max_drift_slope, (f"invariant's {kind}drift slope is {slope[w]:.3g} per unit time "
                                                 f"(member {w}) > max_drift_slope = {max_drift_slope:.3g}")
        if max_oscillation is not None:
            w = int(np.argmax(amplitude))
            assert amplitude[w] <= max_oscillation, (f"invariant's {kind}oscillation about its trend is "
                                                     f"{amplitude[w]:.3g} (member {w}) > max_oscillation = "
                                                     f"{max_oscillation:.3g}")
    return drift


def assert_climate(emulator: AbstractEmulator, ds, *, test_members: Sequence | None = None,
                   train_members: Sequence | None = None, context: int = 10, long_rollout: int = 500,
                   max_wasserstein: float | dict[str, float] | None = 0.5, codec=None,
                   max_ratio_to_floor: float | dict[str, float] | None = None, transient: int = 0,
                   lattice: Sequence[str] = (), max_lag: int = 20, nperseg: int = 64) -> Any:
    """Free rollouts from the test members must reproduce each variable's marginal:
    Wasserstein-1 ≤ ``max_wasserstein`` (a number, or one per variable; None: skip). Returns ``{variable: W1}``.

    With ``max_ratio_to_floor`` the emulator's climate is also checked against truth-vs-truth
    noise floors (:func:`dynlab.eval.climate.climate_scores`): the emulator is rolled out
    ``long_rollout`` saves from each test member, the dataset's reference system from as many
    training members twice over (truth sets A and B, disjoint), the first ``transient`` saves
    are dropped, and every ratio (W1, sliced W1, ACF over lags 0..``max_lag``, temporal
    spectrum, spatial spectrum of the ``lattice`` variables) must be ≤ the bound (a number,
    or ``{score: bound}`` with scores from ``CLIMATE_SCORES``). Then the climate dataset is returned.
    """
    from .eval.forecast import prepare_evaluation, score_emulator

    members = list(ds["member"].values.tolist())
    test_members = list(test_members) if test_members is not None else members[-max(1, len(members) // 5):]
    setup = prepare_evaluation(ds, test_members, codec=codec or getattr(emulator, "codec", None), context=context,
                               horizon=1, starts_per_member=1, long_rollout=long_rollout,
                               train_members=train_members, lyapunov=False, agreement=False)
    w1 = {}
    if max_wasserstein is not None:
        scores = score_emulator(emulator, setup)
        w1 = {str(v): float(d) for v, d in zip(scores["variable"].values, scores["wasserstein"].values)}
    for name, value in w1.items():
        bound = max_wasserstein[name] if isinstance(max_wasserstein, dict) else max_wasserstein
        assert np.isfinite(value) and value <= bound, \
            f"Wasserstein-1 distance of {name} is {value:.4g} > max_wasserstein = {bound:.4g}"
    if max_ratio_to_floor is not None:
        from .eval.climate import check_ratio_bounds, ratio_items, reference_climate_scores

        bounds = check_ratio_bounds(max_ratio_to_floor)  # before the reference rollouts
        scores = reference_climate_scores(emulator, ds, setup, transient, lattice=lattice, max_lag=max_lag,
                                          nperseg=nperseg)
        for key, name, value in ((k, n, v) for k in bounds for n, v in ratio_items(scores, k, lattice)):
            assert value <= bounds[key], (f"{key} of {name} is {value:.4g} times its truth-vs-truth floor > "
                                          f"max_ratio_to_floor = {bounds[key]:.4g} ({scores.attrs['climate_runs']} "
                                          f"runs x {scores.attrs['climate_saves']} saves)")
        return scores
    return w1


def assert_lyapunov_close(emulator_spectrum: Any, system_spectrum: Any, *, k: int | None = None,
                          rtol: float = 0.1, atol: float = 0.05, sum_rtol: float | None = 0.05) -> np.ndarray:
    r"""The emulator's leading ``k`` Lyapunov exponents must match the system's.

    Both spectra (``(m,)`` arrays, or :class:`dynlab.eval.lyapunov.LyapunovResult`) are
    sorted decreasingly; each of the leading ``k`` (default: the shorter length) must
    satisfy :math:`|λ̂_i − λ_i| ≤ \text{atol} + \text{rtol}\,|λ_i|`, and, where
    ``sum_rtol`` is set, their sums :math:`|Σλ̂ − Σλ| ≤ \text{sum\_rtol}\,|Σλ|`
    (the sum is the mean phase-space contraction rate). Returns the differences ``(k,)``.
    """
    em = np.sort(np.asarray(getattr(emulator_spectrum, "spectrum", emulator_spectrum), dtype=np.float64))[::-1]
    ref = np.sort(np.asarray(getattr(system_spectrum, "spectrum", system_spectrum), dtype=np.float64))[::-1]
    if em.ndim != 1 or ref.ndim != 1 or not em.size or not ref.size:
        raise ValueError(f"spectra must be non-empty 1-d arrays, got shapes {em.shape} and {ref.shape}")
    n = min(em.size, ref.size) if k is None else k
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= min(em.size, ref.size):
        raise ValueError(f"k must be an integer in [1, {min(em.size, ref.size)}], got {k!r}")
    for name, value in (("rtol", rtol), ("atol", atol)) + ((("sum_rtol", sum_rtol),) if sum_rtol is not None else ()):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    em, ref = em[:n], ref[:n]
    diff = em - ref
    bound = atol + rtol * np.abs(ref)
    bad = np.flatnonzero(~(np.abs(diff) <= bound))
    assert not bad.size, (f"Lyapunov exponent {bad[0] + 1} is {em[bad[0]]:.4g}, the system's {ref[bad[0]]:.4g} "
                          f"(|difference| {abs(diff[bad[0]]):.3g} > atol + rtol·|λ| = {bound[bad[0]]:.3g})")
    if sum_rtol is not None:
        s_em, s_ref = float(em.sum()), float(ref.sum())
        assert abs(s_em - s_ref) <= sum_rtol * abs(s_ref), \
            (f"sum of the leading {n} exponents is {s_em:.4g}, the system's {s_ref:.4g} "
             f"(> sum_rtol = {sum_rtol:.3g} relative)")
    return diff


def assert_stationary_distribution_close(estimate: Any, truth: Any, *, max_tv: float | None = None,
                                         floor: float | None = None, max_ratio: float = 3.0) -> float:
    """The stationary law of an estimated rate matrix ``(N, N)`` (or a
    :class:`dynlab.eval.jump.RateEstimate`) must lie within total variation ``max_tv``
    (default 0.02) of the true generator's, or, given the sampling ``floor`` of that distance
    (:func:`dynlab.eval.jump.sampling_floor`'s ``stationary_tv``), within ``max_ratio × floor``:
    no further from the truth than a few times what the data's own noise explains. Give one of
    ``max_tv`` and ``floor``. Returns the total variation distance."""
    from .eval.jump import RateEstimate, stationary_law, total_variation

    if max_tv is not None and floor is not None:
        raise ValueError(f"give max_tv ({max_tv!r}) or floor ({floor!r}), not both")
    for name, value in (("max_tv", max_tv), ("floor", floor), ("max_ratio", max_ratio)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not np.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    bound = max_ratio * floor if floor is not None else (0.02 if max_tv is None else max_tv)
    what = (f"max_ratio x floor = {max_ratio:.3g} x {floor:.4g}" if floor is not None else "max_tv")
    if isinstance(estimate, RateEstimate):
        estimate = estimate.rate_matrix
    p, q = stationary_law(estimate), stationary_law(truth)
    tv = total_variation(p, q)
    worst = int(np.argmax(np.abs(p - q)))
    assert tv <= bound, (f"stationary law differs by total variation {tv:.4g} > {what} = {bound:.4g} "
                         f"(state {worst}: {p[worst]:.4g} vs the truth's {q[worst]:.4g})")
    return tv


__all__ += ["assert_budget_closed", "assert_climate_sensitivity_close"]


def assert_budget_closed(emulator: AbstractEmulator, system, codec, context: torch.Tensor, steps: int,
                         save_interval: float, *, max_residual_flux: float = 0.05, t0: float = 0.0,
                         forcing: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The emulator's global energy budget closes: along a rollout of ``steps`` steps from
    ``context`` ``(B, C, D)``, the heat-content change minus the time integral of the
    system's :math:`N_{toa}` on the emulator's states, over the duration, is at most
    ``max_residual_flux`` W m⁻² in magnitude for every member
    (:func:`dynlab.eval.physics.energy_budget`, whose dict it returns)."""
    from .eval.physics import energy_budget

    if isinstance(max_residual_flux, bool) or not isinstance(max_residual_flux, (int, float)) \
            or not max_residual_flux > 0:
        raise ValueError(f"max_residual_flux must be a number > 0 (W m-2), got {max_residual_flux!r}")
    budget = energy_budget(emulator, system, codec, context, steps, save_interval, t0=t0, forcing=forcing)
    flux = np.nan_to_num(np.abs(budget["residual_flux"]), nan=np.inf)
    worst = int(np.argmax(flux))
    assert flux[worst] <= max_residual_flux, (
        f"energy budget residual is {budget['residual_flux'][worst]:.4g} W m-2 (member {worst}, heat change "
        f"{budget['heat_change'][worst]:.4g} J m-2 vs TOA integral {budget['toa_integral'][worst]:.4g} J m-2) "
        f"> max_residual_flux = {max_residual_flux:.4g} W m-2")
    return budget


def assert_climate_sensitivity_close(emulator: AbstractEmulator, system, codec, context: torch.Tensor,
                                     steps: int, save_interval: float, *, reference: Any,
                                     co2_multiple: float = 4.0, rtol: float = 0.05,
                                     tau_rtol: float | None = None,
                                     forcing: torch.Tensor | None = None, base: Any = None) -> dict[str, np.ndarray]:
    """After an abrupt ``co2_multiple``× step (``system`` and ``emulator`` carry the raised CO₂;
    ``context`` ends at the base state), the emulator's effective sensitivity by Gregory
    regression (ΔT where its implied net heating vanishes) is within ``rtol`` (relative) of
    ``reference``: a number (K, the same step's warming) or a reference emulator run the same
    way; with ``tau_rtol`` and a reference emulator, its adjustment e-folding time too
    (:func:`dynlab.eval.physics.climate_response`; a seasonal model is averaged over years and
    needs ``base``, the control climate's annual mean, :func:`~dynlab.eval.physics.control_temperature`).
    Returns the emulator's response."""
    from .eval.physics import climate_response

    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"rtol must be a number > 0, got {rtol!r}")
    if tau_rtol is not None and not (isinstance(tau_rtol, (int, float)) and tau_rtol > 0):
        raise ValueError(f"tau_rtol must be a number > 0 or None, got {tau_rtol!r}")
    got = climate_response(emulator, system, codec, context, steps, save_interval, co2_multiple=co2_multiple,
                           forcing=forcing, base=base)
    if isinstance(reference, AbstractEmulator):
        want = climate_response(reference, system, codec, context, steps, save_interval, co2_multiple=co2_multiple,
                                forcing=forcing, base=base)
        ecs_ref, tau_ref = want["ecs"], want["tau"]
    elif isinstance(reference, (int, float)) and not isinstance(reference, bool) and np.isfinite(reference):
        if tau_rtol is not None:
            raise ValueError("tau_rtol needs a reference emulator (the adjustment time of the reference run)")
        ecs_ref, tau_ref = np.full_like(got["ecs"], float(reference)), None
    else:
        raise ValueError(f"reference must be a finite number (K) or an emulator, got {type(reference).__name__}")
    err = np.nan_to_num(np.abs(got["ecs"] - ecs_ref) / np.abs(ecs_ref), nan=np.inf)
    w = int(np.argmax(err))
    assert err[w] <= rtol, (f"effective climate sensitivity (Gregory, {co2_multiple:g}x) is {got['ecs'][w]:.4g} K "
                            f"(member {w}) vs reference {ecs_ref[w]:.4g} K: relative error {err[w]:.3g} "
                            f"> rtol = {rtol:.3g}")
    if tau_rtol is not None:
        err = np.nan_to_num(np.abs(got["tau"] - tau_ref) / np.abs(tau_ref), nan=np.inf)
        w = int(np.argmax(err))
        assert err[w] <= tau_rtol, (f"adjustment e-folding time is {got['tau'][w]:.4g} vs reference "
                                    f"{tau_ref[w]:.4g} (member {w}): relative error {err[w]:.3g} "
                                    f"> tau_rtol = {tau_rtol:.3g}")
    return got


__all__ += ["assert_transient_response_close"]


def assert_transient_response_close(emulator: AbstractEmulator, system, codec, context: torch.Tensor, steps: int,
                                    save_interval: float, *, reference: Any, rtol: float = 0.05,
                                    base: Any = None) -> np.ndarray:
    """Under the compound CO₂ ramp of ``system`` (``scenario=ramp_1pct`` or ``ramp_2pct``, from
    t = 0; ``context`` ends at the state before it), the emulator's transient climate response
    (mean warming over the 20 years centred on the doubling time,
    :func:`dynlab.eval.physics.transient_response`; annual means for a seasonal model) is within
    ``rtol`` (relative) of ``reference``: a number (K) or a reference emulator run the same way.
    ``base`` ``(B,)``: the temperature before the ramp (default the first state's). Returns the
    emulator's TCR ``(B,)``."""
    from .eval.physics import _ramp_rate, _series, rollout_states, transient_response

    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"rtol must be a number > 0, got {rtol!r}")
    rate = _ramp_rate(system)
    if rate is None:
        raise ValueError(f"system {system.name!r} is not under a compound CO2 ramp from t = 0 "
                         f"(scenario {system.params.scenario!r})")

    def tcr(em: AbstractEmulator) -> np.ndarray:
        T, _, t, _ = _series(system, rollout_states(em, system, codec, context, steps), save_interval)
        return transient_response(T, t, T[:, 0] if base is None else base, rate=rate)

    got = tcr(emulator)
    if isinstance(reference, AbstractEmulator):
        want = tcr(reference)
    elif isinstance(reference, (int, float)) and not isinstance(reference, bool) and np.isfinite(reference):
        want = np.full_like(got, float(reference))
    else:
        raise ValueError(f"reference must be a finite number (K) or an emulator, got {type(reference).__name__}")
    err = np.nan_to_num(np.abs(got - want) / np.abs(want), nan=np.inf)
    w = int(np.argmax(err))
    assert err[w] <= rtol, (f"transient climate response is {got[w]:.4g} K (member {w}) vs reference "
                            f"{want[w]:.4g} K: relative error {err[w]:.3g} > rtol = {rtol:.3g}")
    return got
