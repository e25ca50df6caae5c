# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # One S4D layer, three modes; and a HiPPO predictor that needs no training
#
# An S4D layer is a diagonal linear state-space model. The same layer can be run as
# a long convolution (training), as a recurrence one step at a time (rollouts), or
# as a convolution that starts from a given state (chunked sequences). The three must
# agree to round-off. Then the HiPPO memory behind S4's initialisation, with a
# closed-form readout of the signal's derivative, forecasts Lorenz63 in context.
#
# Set `DYNLAB_NOTEBOOK_SMALL=1` for a seconds-long run (the test suite does).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dynlab.models.hippo_predictor import HiPPOPredictor
from dynlab.models.ssm import S4D

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT", tempfile.mkdtemp()))
length, channels, d_state = (128, 3, 16) if SMALL else (2048, 8, 64)
t_end, context, horizon = (4.0, 300, 60) if SMALL else (40.0, 2000, 80)
torch.manual_seed(0)

# %% [markdown]
# ## Convolution, recurrence, and convolution from a state
# Input u: (B, L, H). The convolution kernel is K_l = 2 Re(C Ā^l B̄); the recurrence is
# x_k = Ā x_{k-1} + B̄ u_k, y_k = 2 Re(C x_k) + D u_k. We start all modes from the same
# random state x_{-1} and run the chunked mode in four pieces, carrying the state.

# %%
layer = S4D(channels, d_state, init="legs", dt_min=1e-2, dt_max=1e-1, dtype=torch.float64)
u = torch.randn(2, length, channels, dtype=torch.float64)
x0 = torch.randn(2, channels, d_state // 2, dtype=torch.complex128)

with torch.no_grad():
    y_conv, final_conv = layer(u, x0)

    state, y_step = x0, []
    for t in range(length):
        y_t, state = layer.step(u[:, t], state)
        y_step.append(y_t)
    y_step, final_step = torch.stack(y_step, 1), state

    state, y_chunks = x0, []
    for chunk in u.chunk(4, dim=1):
        y_c, state = layer(chunk, state)
        y_chunks.append(y_c)
    y_chunked, final_chunked = torch.cat(y_chunks, 1), state

gaps = {
    "step vs conv": (y_step - y_conv).abs().max().item(),
    "chunked vs conv": (y_chunked - y_conv).abs().max().item(),
    "final state, step vs conv": (final_step - final_conv).abs().max().item(),
    "final state, chunked vs conv": (final_chunked - final_conv).abs().max().item(),
}
max_mode_gap = max(gaps.values())
for name, gap in gaps.items():
    print(f"{name:30s} max |difference| = {gap:.2e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
show = slice(0, min(length, 200))
axes[0].plot(y_conv[0, show, 0], lw=3, alpha=0.4, label="convolution")
axes[0].plot(y_step[0, show, 0], "--", label="recurrence")
axes[0].plot(y_chunked[0, show, 0], ":", label="chunked, state carried")
axes[0].set(title="S4D-LegS output, channel 0", xlabel="step")
axes[0].legend()
for init in ("legs", "lin", "inv", "real"):
    torch.manual_seed(1)
    kernel_layer = S4D(1, d_state, init=init, dt_min=0.05, dt_max=0.05, dtype=torch.float64)
    with torch.no_grad():
        axes[1].plot(kernel_layer.kernel(min(length, 200))[0], label=f"S4D-{init}")
axes[1].set(title="convolution kernels K_l (Δ = 0.05, same C)", xlabel="lag l")
axes[1].legend()
fig.tight_layout()
fig.savefig(OUT / "s4d_modes.png", dpi=100)

# %% [markdown]
# ## S4D-Real as a selective scan
# With real A the layer is the time-invariant case of Mamba's selective scan: constant
# Δ, B_t = B̄/Δ (the scan discretises B by Euler, so the ZOH factor goes into B) and
# C_t = 2 Re C. Shown when `dynlab.models.ssm.selective_scan` is present.

# %%
try:
    from dynlab.models.ssm.selective_scan import selective_scan
except ImportError:
    selective_scan = None

if selective_scan is not None:
    real_layer = S4D(1, d_state, init="real", dt_min=0.05, dt_max=0.05, dtype=torch.float64)
    with torch.no_grad():
        A_bar, B_bar, _ = real_layer.discretize()
        dt = torch.exp(real_layer.log_dt)  # (1,)
        u1 = u[:, :, :1]
        batch, steps = u1.shape[:2]
        y_scan = selective_scan(
            u1, dt.expand(batch, steps, 1), real_layer.A.real,
            (B_bar.real / dt[:, None]).expand(batch, steps, -1),
            (2 * torch.view_as_complex(real_layer.C).real).expand(batch, steps, -1),
            D=real_layer.D, backend="ref")
        scan_gap = (y_scan - real_layer(u1)[0]).abs().max().item()
    print(f"selective scan vs S4D-Real convolution: max |difference| = {scan_gap:.2e}")

# %% [markdown]
# ## HiPPO predictor: Lorenz63 in context, no training
# A LegT memory of the last θ = 0.1 time units of each variable; its closed-form
# readout is the derivative of the Legendre reconstruction at the present, and
# x̂_{t+Δt} = x_t + Δt x'(t) (order 1) or with a curvature term (order 2).

# %%
from simulators import TimeGrid, make_integrator, make_system, run_members

out = run_members(make_system("lorenz63"), make_integrator("rk4"),
                  TimeGrid(dt=0.01, save_every=0.01, t_end=t_end, spinup=5.0), seed=0, members=range(2))
trajectory = torch.stack([out["x"], out["y"], out["z"]], dim=-1)  # (members, T, 3)

predictors = {order: HiPPOPredictor("legt", N=6, theta=0.1, dt=0.01, order=order) for order in (1, 2)}
persistence = ((trajectory[:, 20:-1] - trajectory[:, 21:]) ** 2).mean()
skill = {}
for order, predictor in predictors.items():
    one_step = predictor(trajectory)
    skill[order] = (persistence / ((one_step[:, 20:-1] - trajectory[:, 21:]) ** 2).mean()).item()
    print(f"order {order}: one-step MSE is {skill[order]:.0f}x lower than persistence")
skill_ratio = skill[1]

forecasts = {order: p.rollout(trajectory[:, :context], horizon) for order, p in predictors.items()}
truth = trajectory[:, context:context + horizon]

# %% [markdown]
# Fed its own predictions, the predictor is a linear autonomous recurrence in
# (c, x): x ← x + r·c, c ← Φc + b₀x_old + b₁x. A free rollout continues the local
# Taylor polynomial of the context (order 1: a line, order 2: a parabola); it cannot
# know the attractor, and the closed loop is mildly unstable (spectral radius slightly
# above 1), so free rollouts are good for short leads only. The one-step skill above
# is what the method is for: a training-free baseline that any learned emulator must beat.

# %%
for order, predictor in predictors.items():
    N = predictor.N
    closed_loop = torch.zeros(N + 1, N + 1, dtype=torch.float64)
    closed_loop[N, :N], closed_loop[N, N] = predictor.readout, 1.0  # x_new = x + r·c
    closed_loop[:N, :N] = predictor.transition + torch.outer(predictor.input_new, predictor.readout)
    closed_loop[:N, N] = predictor.input_prev + predictor.input_new
    radius = torch.linalg.eigvals(closed_loop).abs().max().item()
    error = (forecasts[order] - truth).norm(dim=-1).mean(0)  # (horizon,)
    print(f"order {order}: closed-loop spectral radius {radius:.4f}; "
          f"rollout error at lead 0.1, 0.3, 0.6: {error[9]:.3f}, {error[29]:.3f}, {error[59]:.3f}")

# %%
time = 0.01 * torch.arange(1, horizon + 1)
fig, axes = plt.subplots(3, 1, figsize=(9, 6), sharex=True)
for axis, (ax, name) in enumerate(zip(axes, "xyz")):
    ax.plot(time, truth[0, :, axis], "k", lw=2, label="truth")
    for order, forecast in forecasts.items():
        ax.plot(time, forecast[0, :, axis], "--", label=f"HiPPO rollout, order {order}")
    ax.set_ylabel(name)
    low, high = truth[0, :, axis].min().item(), truth[0, :, axis].max().item()
    ax.set_ylim(low - 0.5 * (high - low) - 1, high + 0.5 * (high - low) + 1)
axes[0].legend(loc="upper right")
axes[0].set_title(f"Lorenz63 forecast from a context of {context} steps, no training")
axes[-1].set_xlabel("lead time")
fig.tight_layout()
fig.savefig(OUT / "hippo_lorenz63.png", dpi=100)
