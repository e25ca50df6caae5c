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
                     invariant: Callable[[torch.Tensor], torch.Tensor], *, rtol: float = 1e-3,
                     relative: bool = True) -> np.ndarray:
    """Roll out from ``context`` ``(B, C, D)`` and check an invariant's drift.

    ``invariant`` maps states ``(..., D)`` to ``(...)`` (e.g. an energy). The drift
    :math:`\\max_t |I_t − I_0|` (relative to :math:`|I_0|` by default), with
    :math:`I_0` at the last context state, must be ≤ ``rtol`` for every member.
    Returns the drifts ``(B,)``.
    """
    with torch.no_grad():
        forecast = emulator.rollout(context, steps)
        path = torch.cat((context[:, -1:], forecast), dim=1)  # (B, 1 + steps, D)
        values = invariant(path)
    if tuple(values.shape) != tuple(path.shape[:2]):
        raise ValueError(f"invariant must map (B, T, D) states to (B, T), got shape {tuple(values.shape)}")
    drift = M.conservation_drift(values, relative=relative)
    worst = int(np.argmax(drift))
    assert drift[worst] <= rtol, (f"invariant drifts by {drift[worst]:.3g} (member {worst}, over {steps} steps) "
                                  f"> rtol = {rtol:.3g}")
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


def assert_stationary_distribution_close(estimate: Any, truth: Any, *, max_tv: float = 0.02) -> float:
    """The stationary law of an estimated rate matrix ``(N, N)`` (or a
    :class:`dynlab.eval.jump.RateEstimate`) must lie within total variation ``max_tv``
    of the true generator's. Returns the total variation distance."""
    from .eval.jump import RateEstimate, stationary_law, total_variation

    if isinstance(max_tv, bool) or not isinstance(max_tv, (int, float)) or not np.isfinite(max_tv) or max_tv < 0:
        raise ValueError(f"max_tv must be a finite number >= 0, got {max_tv!r}")
    if isinstance(estimate, RateEstimate):
        estimate = estimate.rate_matrix
    p, q = stationary_law(estimate), stationary_law(truth)
    tv = total_variation(p, q)
    worst = int(np.argmax(np.abs(p - q)))
    assert tv <= max_tv, (f"stationary law differs by total variation {tv:.4g} > max_tv = {max_tv:.4g} "
                          f"(state {worst}: {p[worst]:.4g} vs the truth's {q[worst]:.4g})")
    return tv
