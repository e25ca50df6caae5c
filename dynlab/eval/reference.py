r"""Reference-physics scales for the forecast scores: λ₁ and the integrator agreement horizon.

* :func:`leading_lyapunov_exponent`: λ₁ of the reference system by the QR method
  (:func:`simulators.lyapunov_spectrum`, one exponent), on the RK4 map with the
  exact tangent map where the system has an analytic ``jvp``
  (:func:`simulators.rk4_tangent_step`). One Lyapunov time is 1/λ₁. Results are
  cached in memory and in ``$DYNLAB_CACHE_DIR/lyapunov.json`` (default
  ``~/.cache/dynlab``), keyed by the system, its parameters and the numerical
  settings; λ₁ is a property of the attractor, so the initial states do not
  enter the key.
* :func:`reference_agreement_time`: how long two accurate reference integrators
  agree. From the same initial states, RK4 at the dataset's step and adaptive
  Dormand–Prince at tight tolerance are run over the forecast horizon, and the
  agreement time is the last lead up to which their normalised difference stays
  within the VPT threshold (the last valid time). A valid prediction time beyond it is not meaningful
  (PHYSICS.md, Emulator scores) and is capped there.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simulators import AbstractSystem, make_integrator, rk4_tangent_step

from .metrics import VPT_THRESHOLD, last_valid_time, normalized_error

__all__ = ["leading_lyapunov_exponent", "lyapunov_estimate", "LyapunovEstimate", "reference_agreement_time",
           "cache_dir", "FAST_SCALE_SYSTEMS"]

#: systems whose λ₁ is set by fast variables the emulators do not resolve:
#: their valid prediction times are reported in model time only
FAST_SCALE_SYSTEMS = frozenset({"lorenz96_two_scale"})

_MEMORY_CACHE: dict[str, Any] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("DYNLAB_CACHE_DIR") or Path.home() / ".cache" / "dynlab")


def _cache_key(system: AbstractSystem, dt: float, steps: int, transient: int, qr_every: int) -> str:
    params = json.dumps(system.params.as_dict(), sort_keys=True)
    return f"{system.name}|{params}|dt={dt!r}|steps={steps}|transient={transient}|qr={qr_every}"


def _read_disk_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class LyapunovEstimate:
    """λ₁ (per unit model time) with its standard error over ``n`` (member, time block) samples."""

    value: float
    stderr: float
    n: int

    def significant(self, sigmas: float = 3.0) -> bool:
        """λ₁ exceeds ``sigmas`` standard errors above zero (a chaotic system, clearly)."""
        return math.isfinite(self.value) and math.isfinite(self.stderr) and self.value > sigmas * self.stderr \
            and self.value > 0


def lyapunov_estimate(system: AbstractSystem, x0: torch.Tensor, *, dt: float, time: float = 50.0,
                      transient_time: float = 5.0, qr_every: int = 10, blocks: int = 10,
                      use_cache: bool = True) -> LyapunovEstimate:
    r"""λ₁ of ``system`` with a standard error, from a renormalised tangent vector.

    One tangent vector v is carried along each member's RK4 trajectory (exact
    tangent map with an analytic ``jvp``, forward-mode AD otherwise) and
    renormalised every ``qr_every`` steps; the averaging time is cut into
    ``blocks`` blocks, and each (member, block) gives a growth rate
    :math:`λ_{mb} = \sum \log\|v\| / T_b`. The estimate is their mean and the
    standard error is :math:`\mathrm{sd}(λ_{mb})/\sqrt{n}`. For a non-chaotic
    system the block rates scatter about zero (the log-norm of v stays bounded),
    so λ₁ does not pass :meth:`LyapunovEstimate.significant`.

    Args:
        system: a deterministic reference system.
        x0: states on (or near) the attractor, ``(B, *state_shape)``.
        dt: RK4 step; time, transient_time: averaging time and alignment time.
        use_cache: read and write the cache (module docstring).
    """
    if system.is_stochastic:
        raise ValueError(f"system {system.name!r} is stochastic; its Lyapunov exponent is not defined here")
    for name, value in (("dt", dt), ("time", time)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if isinstance(transient_time, bool) or not isinstance(transient_time, (int, float)) or transient_time < 0:
        raise ValueError(f"transient_time must be a number >= 0, got {transient_time!r}")
    for name, value in (("qr_every", qr_every), ("blocks", blocks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    steps, transient = max(1, round(time / dt)), round(transient_time / dt)
    blocks = min(blocks, max(1, steps // qr_every))
    key = _cache_key(system, float(dt), steps, transient, qr_every) + f"|blocks={blocks}"
    path = cache_dir() / "lyapunov.json"
    if use_cache:
        hit = _MEMORY_CACHE.get(key) or _read_disk_cache(path).get(key)
        if isinstance(hit, dict):
            _MEMORY_CACHE[key] = hit
            return LyapunovEstimate(float(hit["value"]), float(hit["stderr"]), int(hit["n"]))
    x = torch.as_tensor(x0, dtype=torch.float64).reshape(x0.shape[0], -1)
    if x.shape[0] < 1 or x.shape[1] != math.prod(system.state_shape):
        raise ValueError(f"x0 must have shape (B >= 1, {', '.join(map(str, system.state_shape))}), "
                         f"got {tuple(x0.shape)}")
    shape = system.state_shape

    def field(t, flat):
        return system.vector_field(t, flat.reshape(*flat.shape[:-1], *shape)).reshape(flat.shape)

    jvp = getattr(system, "jvp", None)
    if jvp is not None and len(shape) == 1:
        tangent = rk4_tangent_step(field, jvp, dt)
    else:
        rk4 = make_integrator("rk4")

        def step(s):
            return rk4.step(system, 0.0, s.reshape(-1, *shape), dt).reshape(s.shape)

        def tangent(xs, V):
            out, JV = torch.func.jvp(step, (xs,), (V[..., 0],))
            return out, JV[..., None]

    B = x.shape[0]
    v = torch.ones(B, x.shape[1], 1, dtype=torch.float64) / math.sqrt(x.shape[1])
    # block edges on re-normalisation steps, so each block's growth is its own
    edges = np.minimum(qr_every * np.linspace(0, math.ceil(steps / qr_every), blocks + 1).round().astype(int), steps)
    edges = np.unique(edges)
    blocks = len(edges) - 1
    growth = np.zeros((B, blocks))
    block = -1
    with torch.no_grad():
        for n in range(1, transient + steps + 1):
            x, v = tangent(x, v)
            if n % qr_every == 0 or n == transient + steps or n == transient:
                norm = torch.linalg.vector_norm(v, dim=(1, 2))
                v = v / norm[:, None, None]
                if n > transient:
                    block = int(np.searchsorted(edges, n - transient, side="left")) - 1
                    growth[:, max(block, 0)] += torch.log(norm).cpu().numpy()
    samples = growth / (np.diff(edges)[None, :] * dt)  # (B, blocks)
    flat = samples.ravel()
    flat = flat[np.isfinite(flat)]
    value = float(flat.mean()) if flat.size else float("nan")
    stderr = float(flat.std(ddof=1) / math.sqrt(flat.size)) if flat.size > 1 else float("nan")
    est = LyapunovEstimate(value, stderr, int(flat.size))
    if use_cache:
        entry = {"value": est.value, "stderr": est.stderr, "n": est.n}
        _MEMORY_CACHE[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            disk = _read_disk_cache(path)
            disk[key] = entry
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(disk, indent=1, sort_keys=True))
            tmp.replace(path)
        except OSError:  # a read-only home is no reason to fail an evaluation
            pass
    return est


def leading_lyapunov_exponent(system: AbstractSystem, x0: torch.Tensor, *, dt: float, time: float = 50.0,
                              transient_time: float = 5.0, qr_every: int = 10, use_cache: bool = True) -> float:
    """λ₁ of ``system`` (per unit model time), averaged over the members of ``x0``
    (:func:`lyapunov_estimate`'s value)."""
    return lyapunov_estimate(system, x0, dt=dt, time=time, transient_time=transient_time, qr_every=qr_every,
                             use_cache=use_cache).value


def reference_agreement_time(system: AbstractSystem, x0: torch.Tensor, *, dt: float, steps_per_save: int,
                             horizon: int, scale: float, to_features: Any = None,
                             threshold: float = VPT_THRESHOLD, rtol: float = 1e-9,
                             atol: float = 1e-11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When RK4 (step ``dt``) and Dormand–Prince (``rtol``, ``atol``) part ways.

    Args:
        system: the deterministic reference system.
        x0: initial states ``(N, *state_shape)`` (float64 is used).
        dt: RK4 step; outputs every ``steps_per_save`` steps.
        horizon: number of saved steps H.
        scale: the climate scale σ_clim that normalises the difference.
        to_features: maps states ``(..., *state_shape)`` to the compared features
            ``(..., D)`` (default: the flattened state).
        threshold: ε of the valid prediction time.

    Returns:
        ``(times (N,), censored (N,), error (N, H))``: the last lead time up to which
        ``‖x_rk4 − x_dopri5‖/σ_clim ≤ ε`` (the last valid time, as for the VPT; the horizon
        ``H·dt·steps_per_save`` with ``censored`` True where they agree throughout) and the
        normalised difference.
    """
    if system.is_stochastic:
        raise ValueError(f"system {system.name!r} is stochastic; two integrators of it do not agree path by path")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    x = torch.as_tensor(x0, dtype=torch.float64)
    kw = dict(t0=0.0, dt=dt, n_steps=horizon * steps_per_save, save_every=steps_per_save)
    a = make_integrator("rk4").integrate(system, x, **kw)  # (H, N, *state)
    b = make_integrator("dopri5", rtol=rtol, atol=atol).integrate(system, x, **kw)
    if to_features is None:
        to_features = lambda s: s.reshape(*s.shape[:s.ndim - len(system.state_shape)], -1)  # noqa: E731
    fa, fb = to_features(a).transpose(0, 1), to_features(b).transpose(0, 1)  # (N, H, D)
    err = normalized_error(fa, fb, scale)
    times, censored = last_valid_time(err, threshold, dt * steps_per_save)
    return times, censored, err
