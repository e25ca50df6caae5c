r"""Model-based early warning: OU null vs linearised saddle-node, fitted by maximum likelihood.

After Boettiger & Hastings (2012, *J. R. Soc. Interface* 9: 2527), with the
consistent moment equations of ``shared/PHYSICS.md``. Both likelihoods are
conditional on the first point, over a regular grid :math:`t_n = nΔt` from 0.

* **OU** :math:`dX = r(θ − X)dt + σ dB`: Gaussian transitions with mean
  :math:`θ + (x_n − θ)e^{−rΔt}` and variance :math:`σ^2(1 − e^{−2rΔt})/(2r)`.
  Its MLE is closed form: the least-squares AR(1) :math:`x_{n+1} = a + b x_n + e`
  gives :math:`r = −\ln b/Δt`, :math:`θ = a/(1 − b)`,
  :math:`σ^2 = 2r\,\hat s^2/(1 − b^2)`; it exists when 0 < b < 1 (``converged``).
* **LSN** :math:`dX = 2\sqrt{R}(θ + \sqrt R − X)dt + σ\sqrt{θ + \sqrt R}\,dB`,
  :math:`R(t) = R_0 + m t`: the moment equations
  :math:`\dot E = 2\sqrt R(\sqrt R + θ − E)`, :math:`\dot V = −4\sqrt R V + σ^2(\sqrt R + θ)`
  are solved over each step with R held at its mid-step value
  :math:`R_0 + m(t_n + Δt/2)` (exact for m = 0, so the LSN nests the OU exactly:
  :math:`r = 2\sqrt{R_0}`, :math:`θ_{OU} = θ + \sqrt{R_0}`, :math:`σ_{OU} = σ\sqrt{θ_{OU}}`;
  the error of freezing R over a step is :math:`O(m^2Δt^3)`):
  :math:`E = θ + s + (x_n − θ − s)e^{−2sΔt}`, :math:`V = σ^2(θ + s)(1 − e^{−4sΔt})/(4s)`,
  :math:`s = \sqrt{R}`. Fitted by a batched Levenberg–Marquardt–damped Newton
  iteration on :math:`(\ln R_0, m, θ, \ln σ)` from the OU optimum (so the LSN
  likelihood is never below the OU's unless a fit fails), with autograd Hessians.

The likelihood ratio :math:`δ = −2(\log L_{OU} − \log L_{LSN}) ≥ 0` is
asymptotically :math:`χ^2_1` under the OU null (m unconstrained).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["OUFit", "LSNFit", "fit_ou", "fit_lsn", "ou_loglik", "lsn_loglik", "simulate_ou", "simulate_lsn",
           "likelihood_ratio"]

LOG_2PI = math.log(2 * math.pi)


def _gauss_loglik(x_next, mean, var, w=None):
    terms = LOG_2PI + torch.log(var) + (x_next - mean) ** 2 / var
    return -0.5 * (terms if w is None else torch.where(w, terms, torch.zeros_like(terms))).sum(-1)


def step_mask(x: torch.Tensor, lengths=None) -> torch.Tensor:
    """Which transitions ``n → n+1`` ``(B, T−1)`` lie inside each series' first ``lengths`` points."""
    n = torch.arange(x.shape[-1] - 1, device=x.device)
    if lengths is None:
        return torch.ones(x.shape[0], x.shape[-1] - 1, dtype=torch.bool, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device)
    if lengths.shape != (x.shape[0],) or (lengths < 5).any() or (lengths > x.shape[-1]).any():
        raise ValueError(f"lengths must have shape ({x.shape[0]},) with 5 <= lengths <= T={x.shape[-1]}")
    return n[None, :] < (lengths[:, None] - 1)


def ou_loglik(x: torch.Tensor, dt: float, r, theta, sigma, lengths=None) -> torch.Tensor:
    """Conditional log-likelihood of ``x`` ``(B, T)`` under OU ``(B,)`` parameters: ``(B,)``
    (over each series' first ``lengths`` points if given)."""
    r, theta, sigma = (torch.as_tensor(v, dtype=x.dtype)[..., None] for v in (r, theta, sigma))
    decay = torch.exp(-r * dt)
    var = sigma ** 2 * (-torch.expm1(-2 * r * dt)) / (2 * r)
    return _gauss_loglik(x[..., 1:], theta + (x[..., :-1] - theta) * decay, var.expand_as(x[..., 1:]),
                         step_mask(x, lengths))


def _lsn_moments(x: torch.Tensor, dt: float, R0, m, theta, sigma):
    n = torch.arange(x.shape[-1] - 1, dtype=x.dtype, device=x.device)
    R = R0[..., None] + m[..., None] * (n + 0.5) * dt                    # (B, T-1) mid-step R
    s = torch.sqrt(R)
    level = theta[..., None] + s
    mean = level + (x[..., :-1] - level) * torch.exp(-2 * s * dt)
    var = sigma[..., None] ** 2 * level * (-torch.expm1(-4 * s * dt)) / (4 * s)
    return mean, var, R, level


def lsn_loglik(x: torch.Tensor, dt: float, R0, m, theta, sigma, lengths=None) -> torch.Tensor:
    """Conditional log-likelihood under the LSN ``(B,)`` parameters: ``(B,)``; −inf where R or
    θ + √R leaves (0, ∞) on the series."""
    R0, m, theta, sigma = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (R0, m, theta, sigma))
    mean, var, R, level = _lsn_moments(x, dt, R0, m, theta, sigma)
    w = step_mask(x, lengths)
    ok = ((R > 0) | ~w).all(-1) & ((level > 0) | ~w).all(-1)
    ll = _gauss_loglik(x[..., 1:], torch.where(w, mean, x[..., 1:]), torch.where(w, var, torch.ones_like(var)), w)
    return torch.where(ok & torch.isfinite(ll), ll, torch.full_like(ll, -math.inf))


@dataclass
class OUFit:
    """OU MLE per series: ``r, theta, sigma, loglik, converged`` each ``(B,)``; ``stderr`` ``(B, 3)``."""

    r: torch.Tensor
    theta: torch.Tensor
    sigma: torch.Tensor
    loglik: torch.Tensor
    converged: torch.Tensor
    stderr: torch.Tensor


@dataclass
class LSNFit:
    """LSN MLE per series: ``R0, m, theta, sigma, loglik, converged, iterations`` each ``(B,)``;
    ``stderr`` ``(B, 4)`` for (R0, m, theta, sigma) by the inverse observed information."""

    R0: torch.Tensor
    m: torch.Tensor
    theta: torch.Tensor
    sigma: torch.Tensor
    loglik: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    stderr: torch.Tensor


def _check_series(x, dt):
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[-1] < 5:
        raise ValueError(f"x must be a tensor (B, T) with T >= 5, got {getattr(x, 'shape', type(x).__name__)}")
    if not torch.isfinite(x).all():
        raise ValueError("x must be finite (cut series at their transition, do not pad with NaN)")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")


def _ou_nll(p, x, dt, w):
    """Negative log-likelihood ``(B,)`` of the OU at ``p = (ln r, θ, ln σ)`` ``(B, 3)``."""
    r, theta, sigma = torch.exp(p[:, :1]), p[:, 1:2], torch.exp(p[:, 2:3])
    decay = torch.exp(-r * dt)
    var = sigma ** 2 * (-torch.expm1(-2 * r * dt)) / (2 * r)
    mean = theta + (x[:, :-1] - theta) * decay
    return -_gauss_loglik(x[:, 1:], mean, var.expand_as(mean), w)


def _grad_hess(nll, p, x, dt, w):
    """Per-series gradient ``(B, k)`` and Hessian ``(B, k, k)`` of a batched negative
    log-likelihood (series are independent, so derivatives of the sum are per series);
    plain reverse mode, one double-backward pass per parameter."""
    with torch.enable_grad():
        q = p.detach().requires_grad_(True)
        value = nll(q, x, dt, w)
        (g,) = torch.autograd.grad(value.sum(), q, create_graph=True)
        rows = [torch.autograd.grad(g[:, k].sum(), q, retain_graph=k < p.shape[1] - 1)[0] for k in range(p.shape[1])]
    return g.detach(), torch.stack(rows, 1).detach()


def _stderr(nll, p, x, dt, w):
    _, H = _grad_hess(nll, p, x, dt, w)
    H = 0.5 * (H + H.transpose(-1, -2))
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    cov = torch.linalg.solve(H + 1e-300 * eye, eye.expand_as(H))
    return torch.sqrt(torch.clamp(torch.diagonal(cov, dim1=-2, dim2=-1), min=0)), H


def fit_ou(x: torch.Tensor, dt: float, lengths=None) -> OUFit:
    """Closed-form OU MLE of each row of ``x`` ``(B, T)`` (module docstring), with standard errors
    of (r, θ, σ) from the observed information. ``lengths`` ``(B,)``: use only each series'
    first ``lengths`` points (series of different lengths in one batch)."""
    _check_series(x, dt)
    x = x.to(torch.float64)
    w = step_mask(x, lengths)
    wf = w.to(x.dtype)
    count = wf.sum(-1)
    a_, b_ = x[:, :-1], x[:, 1:]
    ma, mb = (wf * a_).sum(-1) / count, (wf * b_).sum(-1) / count
    b = (wf * (a_ - ma[:, None]) * (b_ - mb[:, None])).sum(-1) / (wf * (a_ - ma[:, None]) ** 2).sum(-1)
    a = mb - b * ma
    s2 = (wf * (b_ - a[:, None] - b[:, None] * a_) ** 2).sum(-1) / count
    converged = (b > 0) & (b < 1) & (s2 > 0)
    bb = torch.where(converged, b, torch.full_like(b, 0.5))
    r = -torch.log(bb) / dt
    theta = a / (1 - bb)
    sigma = torch.sqrt(2 * r * s2 / (1 - bb ** 2))
    ll = ou_loglik(x, dt, r, theta, sigma, lengths)
    p = torch.stack([torch.log(r), theta, torch.log(sigma)], -1)
    se, _ = _stderr(_ou_nll, p, x, dt, w)
    se = se * torch.stack([r, torch.ones_like(r), sigma], -1)           # delta method back to (r, θ, σ)
    nan = torch.full_like(r, math.nan)
    fix = lambda v: torch.where(converged, v, nan)                       # noqa: E731
    return OUFit(fix(r), fix(theta), fix(sigma), torch.where(converged, ll, nan), converged,
                 torch.where(converged[:, None], se, nan[:, None]))


def _lsn_nll(p, x, dt, w):
    """Negative log-likelihood ``(B,)`` of the LSN at ``p = (ln R0, m, θ, ln σ)`` ``(B, 4)``;
    +inf where R or θ + √R leaves (0, ∞) on the series."""
    R0, m, theta, sigma = torch.exp(p[:, :1]), p[:, 1:2], p[:, 2:3], torch.exp(p[:, 3:4])
    n = torch.arange(x.shape[-1] - 1, dtype=x.dtype, device=x.device)
    R = R0 + m * (n + 0.5) * dt
    s = torch.sqrt(torch.clamp(R, min=1e-300))
    level = theta + s
    lv = torch.clamp(level, min=1e-300)
    mean = level + (x[:, :-1] - level) * torch.exp(-2 * s * dt)
    var = sigma ** 2 * lv * (-torch.expm1(-4 * s * dt)) / (4 * s)
    nll = -_gauss_loglik(x[:, 1:], mean, var, w)
    bad = ((R <= 0) & w).any(-1) | ((level <= 0) & w).any(-1)
    return torch.where(bad, torch.full_like(nll, math.inf), nll)


def fit_lsn(x: torch.Tensor, dt: float, *, init: OUFit | None = None, lengths=None, max_iter: int = 100,
            tol: float = 1e-9) -> LSNFit:
    r"""Batched MLE of the LSN for each row of ``x`` ``(B, T)``, started from the OU fit.

    Damped Newton (Levenberg–Marquardt): solve :math:`(H + λ\,\mathrm{diag}(H))d = −g`, accept
    the step if it lowers the negative log-likelihood (then λ ← λ/10, else λ ← 10λ), per
    series. ``converged``: the Newton decrement :math:`g^T H^{-1} g/2 < ` ``tol`` with H positive
    definite, reached within ``max_iter`` iterations; series whose OU fit failed start from
    θ_OU = mean, r from the lag-1 autocorrelation clipped into (0, 1).
    """
    _check_series(x, dt)
    x = x.to(torch.float64)
    w = step_mask(x, lengths)
    ou = init if init is not None else fit_ou(x, dt, lengths)
    # OU start mapped onto the LSN with m = 0: 2√R0 = r, θ + √R0 = θ_OU, σ√θ_OU = σ_OU
    r = torch.where(ou.converged, ou.r, torch.full_like(ou.r, 1.0 / (x.shape[-1] * dt)))
    wf = w.to(x.dtype)
    th_ou = torch.where(ou.converged, ou.theta, (wf * x[:, 1:]).sum(-1) / wf.sum(-1))
    sd = torch.sqrt((wf * x[:, 1:].sub(x[:, :-1]) ** 2).sum(-1) / wf.sum(-1))
    sig_ou = torch.where(ou.converged, ou.sigma, sd / math.sqrt(dt))
    R0 = (r / 2) ** 2
    theta = th_ou - r / 2
    sigma = sig_ou / torch.sqrt(torch.clamp(th_ou, min=1e-12))
    p = torch.stack([torch.log(R0), torch.zeros_like(R0), theta, torch.log(sigma)], -1)
    f = _lsn_nll
    B = x.shape[0]
    lam = torch.full((B,), 1e-3, dtype=x.dtype)
    nll = f(p, x, dt, w)
    done = ~torch.isfinite(nll)                                          # failed starts stay put
    converged = torch.zeros(B, dtype=torch.bool)
    iterations = torch.zeros(B, dtype=torch.int64)
    eye = torch.eye(4, dtype=x.dtype)
    for it in range(max_iter):
        active = ~done
        if not active.any():
            break
        idx = active.nonzero().squeeze(-1)
        pa, xa = p[idx], x[idx]
        g, H = _grad_hess(_lsn_nll, pa, xa, dt, w[idx])
        H = 0.5 * (H + H.transpose(-1, -2))
        Hd = torch.diagonal(H, dim1=-2, dim2=-1).abs().clamp_min(1e-12)
        try:
            chol, info = torch.linalg.cholesky_ex(H)
            pd = info == 0
            newton = torch.cholesky_solve(-g[..., None], chol)[..., 0]
        except RuntimeError:  # pragma: no cover
            pd = torch.zeros(len(idx), dtype=torch.bool)
            newton = torch.zeros_like(g)
        decrement = torch.where(pd, -(g * newton).sum(-1) / 2, torch.full_like(g[:, 0], math.inf))
        small = pd & (decrement < tol)
        converged[idx[small]] = True
        done[idx[small]] = True
        iterations[idx] += 1
        step_ids = ~small
        if not step_ids.any():
            continue
        sid = idx[step_ids]
        A = H[step_ids] + lam[sid][:, None, None] * torch.diag_embed(Hd[step_ids])
        d = torch.linalg.solve(A + 1e-12 * eye, -g[step_ids][..., None])[..., 0]
        trial = p[sid] + d
        new = f(trial, x[sid], dt, w[sid])
        better = torch.isfinite(new) & (new <= nll[sid])
        p[sid[better]] = trial[better]
        nll[sid[better]] = new[better]
        lam[sid] = torch.where(better, lam[sid] / 10, lam[sid] * 10).clamp(1e-12, 1e12)
        stuck = lam[sid] >= 1e12
        done[sid[stuck]] = True
    R0, m, theta, sigma = torch.exp(p[:, 0]), p[:, 1], p[:, 2], torch.exp(p[:, 3])
    se, _ = _stderr(_lsn_nll, p, x, dt, w)
    se = se * torch.stack([R0, torch.ones_like(R0), torch.ones_like(R0), sigma], -1)
    return LSNFit(R0, m, theta, sigma, -nll, converged, iterations, se)


def likelihood_ratio(x: torch.Tensor, dt: float, lengths=None, **fit_kwargs) -> tuple[torch.Tensor, OUFit, LSNFit]:
    """:math:`δ = −2(\\log L_{OU} − \\log L_{LSN})` per row of ``x`` ``(B, T)`` (each over its first
    ``lengths`` points if given) and both fits. NaN where the OU fit did not converge."""
    ou = fit_ou(x, dt, lengths)
    lsn = fit_lsn(x, dt, init=ou, lengths=lengths, **fit_kwargs)
    return -2 * (ou.loglik - lsn.loglik), ou, lsn


def simulate_ou(x0: torch.Tensor, n_steps: int, dt: float, r, theta, sigma, generator: torch.Generator) -> torch.Tensor:
    """Exact OU paths ``(B, n_steps + 1)`` from ``x0`` ``(B,)`` (parameters ``(B,)``)."""
    r, theta, sigma = (torch.as_tensor(v, dtype=torch.float64) for v in (r, theta, sigma))
    decay = torch.exp(-r * dt)
    sd = torch.sqrt(sigma ** 2 * (-torch.expm1(-2 * r * dt)) / (2 * r))
    z = torch.randn(x0.shape[0], n_steps, generator=generator, dtype=torch.float64)
    out = [x0.to(torch.float64)]
    for k in range(n_steps):
        out.append(theta + (out[-1] - theta) * decay + sd * z[:, k])
    return torch.stack(out, -1)


def simulate_lsn(x0: torch.Tensor, n_steps: int, dt: float, R0, m, theta, sigma, generator: torch.Generator) -> torch.Tensor:
    """Paths ``(B, n_steps + 1)`` of the LSN with the same mid-step-frozen transitions as
    :func:`lsn_loglik` (so the fit is the exact MLE of the model simulated)."""
    R0, m, theta, sigma = (torch.as_tensor(v, dtype=torch.float64) for v in (R0, m, theta, sigma))
    z = torch.randn(x0.shape[0], n_steps, generator=generator, dtype=torch.float64)
    out = [x0.to(torch.float64)]
    for k in range(n_steps):
        s = torch.sqrt(torch.clamp(R0 + m * (k + 0.5) * dt, min=1e-300))
        level = theta + s
        mean = level + (out[-1] - level) * torch.exp(-2 * s * dt)
        var = sigma ** 2 * torch.clamp(level, min=0) * (-torch.expm1(-4 * s * dt)) / (4 * s)
        out.append(mean + torch.sqrt(var) * z[:, k])
    return torch.stack(out, -1)
