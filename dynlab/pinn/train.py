r"""Training a PINN: collocation, autograd derivatives, causal weights, windows, balancing.

For a window :math:`[t_a, t_b]` (length Δ) the network ``u(τ, x)`` takes
:math:`τ = (t − t_a)/Δ`. Residual points are drawn in ``chunks`` equal time
chunks (``points/chunks`` each; τ uniform in the chunk, x uniform in the
period), and the chunk losses :math:`L_i = \mathrm{mean}\,r^2` over chunk ``i``
enter

* with causal training (Wang, Sankaran & Perdikaris 2022), the weighted mean
  :math:`\frac1N\sum_i w_i L_i`, :math:`w_i = \exp(−ε\sum_{k<i}L_k)` held constant
  for the gradient (:class:`dynlab.train.causal.CausalWeighting`, absolute ε);
  ε climbs its ladder whenever :math:`\min_i w_i > 0.99`; when the last ε meets
  that bound the window is done (the stop rule);
* without it, the plain mean.

With ``exact_ic`` off the loss is :math:`λ_{ic} L_{ic} + λ_r L_r`; gradient-norm
balancing (Wang, Wang & Perdikaris 2023, "An expert's guide to training PINNs")
sets every ``every`` steps :math:`\hat λ_j = \sum_k \lVert∇L_k\rVert / \lVert∇L_j\rVert`
and :math:`λ_j ← α λ_j + (1 − α)\hat λ_j`. Time-marching: window ``j`` starts from
window ``j−1``'s end (a trigonometric interpolant of it on ``ic_points`` points
for a PDE, the end state for an ODE), warm-started from its weights.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from ..train.causal import CausalWeighting
from .config import PinnConfig
from .networks import FourierInterpolant, PinnNetwork
from .residuals import AbstractResidual

__all__ = ["PinnProblem", "PinnSolution", "train_pinn", "derivatives", "residual_values", "chunk_losses", "no_tf32"]


@dataclass
class PinnProblem:
    """One initial-value problem for a PINN.

    ``initial``: ``(D,)`` tensor (ODE) or a callable ``x -> u0(x)`` (PDE);
    ``x_min``/``length``: the periodic domain (None for an ODE).
    """

    residual: AbstractResidual
    t0: float
    t1: float
    initial: Any
    d_out: int
    x_min: float | None = None
    length: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.t0) and math.isfinite(self.t1) and self.t1 > self.t0):
            raise ValueError(f"the time domain must satisfy t0 < t1, got [{self.t0}, {self.t1}]")
        if (self.length is None) != (self.residual.kind == "ode"):
            raise ValueError(f"a {self.residual.kind} residual needs length {'None' if self.residual.kind == 'ode' else '> 0'}")

    @property
    def is_pde(self) -> bool:
        return self.length is not None


@dataclass
class PinnSolution:
    """The trained windows: ``models[j]`` covers ``[edges[j], edges[j+1]]``."""

    models: list[PinnNetwork]
    edges: list[float]
    steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @torch.no_grad()
    def predict(self, t: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """``u`` on the grid ``t (T,) × x (X,)``: ``(T, X)`` (PDE) or ``(T, D)`` (ODE), float64."""
        with no_tf32():
            return self._predict(t, x)

    def _predict(self, t: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        p = next(self.models[0].parameters())
        out = []
        for ti in t.tolist():
            j = max(0, min(len(self.models) - 1, _window_index(self.edges, ti)))
            a, b = self.edges[j], self.edges[j + 1]
            tau = torch.full((1 if x is None else len(x), 1), (ti - a) / (b - a), dtype=p.dtype, device=p.device)
            xx = None if x is None else x.to(dtype=p.dtype, device=p.device)[:, None]
            u = self.models[j](tau, xx)
            out.append(u[:, 0] if x is not None else u[0])
        return torch.stack(out).to(torch.float64).cpu()


def _window_index(edges: list[float], t: float) -> int:
    for j in range(len(edges) - 1):
        if t <= edges[j + 1] + 1e-12 * max(1.0, abs(edges[j + 1])):
            return j
    return len(edges) - 2


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Turn TF32 matmuls/convolutions off on CUDA for the block (restored afterwards).

    TF32 keeps 10 mantissa bits: residuals built from 2nd–4th autograd derivatives
    lose their accuracy long before the loss reaches the 1e-6 levels PINNs train to."""
    if not torch.cuda.is_available():
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def derivatives(model: PinnNetwork, tau: torch.Tensor, x: torch.Tensor | None, span: float,
                x_orders: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """``(u, u_t, {order: ∂ₓ^order u})`` by nested autograd (graphs kept for training).

    ``tau``: ``(N, 1)`` normalised time, ``x``: ``(N, 1)`` or None, ``span`` the window length
    (``u_t = ∂_τ u / span``). ODE: ``u, u_t`` ``(N, D)``; PDE: ``(N, 1)``.
    """
    tau = tau.detach().requires_grad_(True)
    if x is not None:
        x = x.detach().requires_grad_(True)
    u = model(tau, x)
    cols = [torch.autograd.grad(u[:, i].sum(), tau, create_graph=True)[0] for i in range(u.shape[1])]
    u_t = torch.cat(cols, dim=1) / span
    u_x: dict[int, torch.Tensor] = {}
    if x_orders:
        d = u
        for order in range(1, max(x_orders) + 1):
            d = torch.autograd.grad(d.sum(), x, create_graph=True)[0]
            if order in x_orders:
                u_x[order] = d
    return u, u_t, u_x


def residual_values(model: PinnNetwork, problem: PinnProblem, tau: torch.Tensor, x: torch.Tensor | None,
                    a: float, b: float) -> torch.Tensor:
    """The residual at the points ``(τ, x)`` of the window ``[a, b]``: ``(N, D)`` or ``(N, 1)``."""
    u, u_t, u_x = derivatives(model, tau, x, b - a, problem.residual.x_orders)
    t = a + (b - a) * tau.detach()
    return problem.residual(t, u, u_t, u_x)


def chunk_losses(r: torch.Tensor, chunks: int) -> torch.Tensor:
    """``L_i = mean r²`` over chunk ``i``: ``r`` ``(chunks·per, D)`` ordered chunk by chunk → ``(chunks,)``."""
    if r.ndim != 2 or r.shape[0] % chunks:
        raise ValueError(f"residuals must be (chunks * per, D) with chunks={chunks}, got {tuple(r.shape)}")
    return (r * r).mean(dim=-1).reshape(chunks, -1).mean(dim=-1)


class _Sampler:
    """Collocation points of one window, sorted into ``chunks`` time chunks."""

    def __init__(self, problem: PinnProblem, cfg: PinnConfig, dtype, device, seed: int):
        self.problem, self.cfg = problem, cfg
        self.chunks = cfg.causal.chunks
        self.per = max(1, cfg.points // self.chunks)
        self.gen = torch.Generator().manual_seed(seed)
        self.dtype, self.device = dtype, device

    def draw(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = self.chunks * self.per
        lo = torch.arange(self.chunks, dtype=torch.float64).repeat_interleave(self.per)
        tau = (lo + torch.rand(n, dtype=torch.float64, generator=self.gen)) / self.chunks
        x = None
        if self.problem.is_pde:
            x = self.problem.x_min + self.problem.length * torch.rand(n, dtype=torch.float64, generator=self.gen)
            x = x[:, None].to(self.dtype).to(self.device)
        return tau[:, None].to(self.dtype).to(self.device), x


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float((g * g).sum()) for g in grads if g is not None))


def train_pinn(problem: PinnProblem, cfg: PinnConfig, *, log: Callable[[dict[str, Any]], None] | None = None,
               evaluate: Callable[[PinnSolution], float] | None = None) -> PinnSolution:
    """Train the windows of ``problem`` under ``cfg``; ``log(record)`` gets the metrics lines,
    ``evaluate(solution) -> rel L2`` (optional) is called at window ends."""
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    device = torch.device(cfg.device)
    edges = [problem.t0 + (problem.t1 - problem.t0) * j / cfg.windows for j in range(cfg.windows + 1)]
    scale = cfg.output_scale
    if scale is None:
        u0 = problem.initial if not problem.is_pde else problem.initial(
            problem.x_min + problem.length * torch.arange(256, dtype=torch.float64) / 256)
        scale = max(1.0, float(torch.as_tensor(u0).abs().max()))
    solution = PinnSolution(models=[], edges=edges)
    emit = log or (lambda record: None)
    started = time.perf_counter()
    initial = problem.initial
    total_steps = 0
    with no_tf32():
        for j in range(cfg.windows):
            a, b = edges[j], edges[j + 1]
            model = PinnNetwork(cfg.network, problem.d_out, initial=initial, exact_ic=cfg.exact_ic, scale=scale,
                                x_min=problem.x_min, length=problem.length, seed=cfg.seed)
            if j and cfg.warm_start:
                model.load_state_dict(solution.models[-1].state_dict())
            model = model.to(device=device, dtype=dtype)
            steps = _train_window(model, problem, cfg, a, b, j, dtype, device, emit, total_steps)
            total_steps += steps
            model.eval()
            solution.models.append(model)
            solution.steps = total_steps
            solution.seconds = time.perf_counter() - started
            record = {"event": "window_end", "window": j, "t": b, "steps": total_steps,
                      "seconds": solution.seconds}
            if evaluate is not None:
                record["rel_l2_so_far"] = evaluate(solution)
            emit(record)
            initial = _next_initial(model, problem, cfg, dtype, device)
    solution.seconds = time.perf_counter() - started
    return solution


def _next_initial(model: PinnNetwork, problem: PinnProblem, cfg: PinnConfig, dtype, device):
    """The window's end state: the IC of the next window."""
    with torch.no_grad():
        if not problem.is_pde:
            return model(torch.ones(1, 1, dtype=dtype, device=device))[0].detach().to(torch.float64).cpu()
        n = cfg.ic_points + cfg.ic_points % 2
        xs = problem.x_min + problem.length * torch.arange(n, dtype=torch.float64) / n
        u = model(torch.ones(n, 1, dtype=dtype, device=device), xs[:, None].to(dtype=dtype, device=device))[:, 0]
        return FourierInterpolant(u.to(torch.float64).cpu(), problem.x_min, problem.length)


def _train_window(model: PinnNetwork, problem: PinnProblem, cfg: PinnConfig, a: float, b: float, window: int,
                  dtype, device, emit, step_offset: int) -> int:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = (torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.decay_rate ** (1.0 / cfg.decay_steps))
             if cfg.lr_decay else None)
    sampler = _Sampler(problem, cfg, dtype, device, seed=cfg.seed * 1000 + window + 1)
    causal = CausalWeighting(None, cfg.causal.eps, tol=cfg.causal.tol,
                             max_stage_steps=cfg.causal.max_stage_steps) if cfg.causal.enabled else None
    fixed = None if cfg.resample else sampler.draw()
    ic_gen = torch.Generator().manual_seed(cfg.seed * 1000 + window + 7919)
    lam = {"ic": 1.0, "res": 1.0}
    steps = 0
    started = time.perf_counter()
    budget = None if cfg.max_seconds is None else cfg.max_seconds / cfg.windows
    for step in range(cfg.steps):
        if budget is not None and time.perf_counter() - started > budget:
            break
        tau, x = fixed if fixed is not None else sampler.draw()
        r = residual_values(model, problem, tau, x, a, b)
        chunk = chunk_losses(r, sampler.chunks)
        res_loss = causal.weighted(chunk) if causal is not None else chunk.mean()
        terms = {"res": res_loss}
        if not cfg.exact_ic:
            terms["ic"] = _ic_loss(model, problem, cfg, dtype, device, ic_gen)
        if cfg.balance.enabled and len(terms) > 1 and step % cfg.balance.every == 0:
            norms = {k: _grad_norm(v, params) for k, v in terms.items()}
            total = sum(norms.values())
            for k in terms:
                new = total / max(norms[k], 1e-30)
                lam[k] = new if step == 0 else cfg.balance.alpha * lam[k] + (1 - cfg.balance.alpha) * new
        loss = sum(lam[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        steps += 1
        ended = causal.update() if causal is not None else False
        done = causal is not None and cfg.causal.stop_rule and causal.exhausted
        if step % cfg.log_every == 0 or done or step == cfg.steps - 1:
            rec = {"step": step_offset + steps, "window": window, "loss": float(loss.detach()),
                   "residual_loss": float(chunk.detach().mean()), "lr": opt.param_groups[0]["lr"]}
            if "ic" in terms:
                rec.update(ic_loss=float(terms["ic"].detach()), lambda_ic=lam["ic"], lambda_res=lam["res"])
            if causal is not None:
                rec.update(eps=causal.epsilon, min_weight=float(causal.last_weights.min()), stage=causal.stage,
                           stage_ended=bool(ended))
            emit(rec)
        if done:
            break
    if cfg.lbfgs_steps:
        steps += _lbfgs_polish(model, problem, cfg, sampler, causal, a, b, window, emit, step_offset + steps)
    return steps


def _lbfgs_polish(model, problem, cfg, sampler, causal, a, b, window, emit, step_offset) -> int:
    """L-BFGS (strong Wolfe line search) on one fixed collocation set, after Adam; the causal
    weights (current ε) are recomputed at every evaluation. Returns the iterations done."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=cfg.lbfgs_steps, history_size=50,
                            tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
    tau, x = sampler.draw()

    def closure():
        opt.zero_grad(set_to_none=True)
        chunk = chunk_losses(residual_values(model, problem, tau, x, a, b), sampler.chunks)
        loss = causal.weighted(chunk) if causal is not None else chunk.mean()
        if not cfg.exact_ic:
            loss = loss + _ic_loss(model, problem, cfg, tau.dtype, tau.device, torch.Generator().manual_seed(1))
        loss.backward()
        return loss

    start_loss = float(opt.step(closure).detach())
    loss = closure()
    iters = int(opt.state[opt._params[0]].get("n_iter", cfg.lbfgs_steps))
    emit({"step": step_offset + iters, "window": window, "loss": float(loss.detach()), "loss_before": start_loss,
          "optimiser": "lbfgs"})
    return iters


def _ic_loss(model: PinnNetwork, problem: PinnProblem, cfg: PinnConfig, dtype, device, gen) -> torch.Tensor:
    if problem.is_pde:
        xs = problem.x_min + problem.length * torch.rand(cfg.ic_points, dtype=torch.float64, generator=gen)
        x = xs[:, None].to(dtype=dtype, device=device)
        tau = torch.zeros_like(x)
        target = model.u0(x, x)
        return ((model(tau, x) - target) ** 2).mean()
    tau = torch.zeros(1, 1, dtype=dtype, device=device)
    u = model(tau)
    return ((u - model.u0(None, u)) ** 2).mean()
