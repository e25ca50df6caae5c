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
# # A tipping series: May's grazing model ramped through its fold
#
# Vegetation biomass $x$ grows logistically and is eaten by grazers whose appetite saturates
# (May 1977):
#
# $$dx = \Big[r x\big(1 - \tfrac{x}{K}\big) - c\,\frac{x^2}{x^2 + h^2}\Big]dt + \sigma\,dW .$$
#
# The drift is the slope of a potential, $f_c = -V_c'$, with
# $V_c(x) = -r\big(\tfrac{x^2}{2} - \tfrac{x^3}{3K}\big) + c\,\big(x - h\arctan\tfrac{x}{h}\big)$.
# For $r=1, K=10, h=1$ the model has two wells for $1.787 < c < 2.604$. Ramping the grazing
# rate $c$ slowly past the upper fold removes the upper well and the state falls to the
# overgrazed branch. The same data come from the command line:
#
# ```
# dynlab simulate system=may_grazing_ramp out=data/may_ramp.zarr
# ```
#
# Set `DYNLAB_NOTEBOOK_SMALL=1` for a quick run (the test suite does) and
# `DYNLAB_FIGURE_DIR` to keep the figures.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from simulators import TimeGrid, make_integrator, make_system  # noqa: E402
from simulators.tipping import may_equilibria, may_folds, may_potential  # noqa: E402

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
FIGURES = Path(os.environ.get("DYNLAB_FIGURE_DIR") or tempfile.mkdtemp(prefix="dynlab_tipping_"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The folds
# Solving $f_c(x) = 0$ and $f_c'(x) = 0$ together gives the two saddle-nodes.

# %%
lower, upper = may_folds(r=1.0, K=10.0, h=1.0)
print(f"lower branch folds at c = {lower.c:.4f} (x = {lower.x:.3f}); "
      f"upper branch folds at c = {upper.c:.4f} (x = {upper.x:.3f})")

branch = np.array([(c, x, stable) for c in np.linspace(1.2, 3.2, 201) for x, stable in may_equilibria(c)[1:]])
stable = branch[:, 2] == 1
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(branch[stable, 0], branch[stable, 1], ".", ms=2, color="C0")
ax.plot(branch[~stable, 0], branch[~stable, 1], ".", ms=2, color="C3")
for fold in (lower, upper):
    ax.plot(fold.c, fold.x, "ko")
ax.set(xlabel="grazing rate c", ylabel="equilibrium biomass x*",
       title="May grazing model: stable (blue) and unstable (red) equilibria")
fig.savefig(FIGURES / "may_bifurcation.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## The potential at a few grazing rates
# The upper well flattens as $c$ approaches 2.604 and is gone beyond it.

# %%
x = np.linspace(0.0, 10.0, 400)
fig, ax = plt.subplots(figsize=(6, 4))
for c in (1.5, 2.0, 2.3, upper.c, 2.8):
    ax.plot(x, may_potential(x, c), label=f"c = {c:.3f}")
ax.set(xlabel="biomass x", ylabel="potential V_c(x)", ylim=(-6, 3), title="V_c(x) = -∫ f_c dx")
ax.legend()
fig.savefig(FIGURES / "may_potential.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## A tipping series
# Start on the upper branch at $c = 2$ and ramp $c$ linearly through the fold. The driver
# $c(t)$ is part of the output, so the series can be plotted against it.

# %%
if SMALL:
    members, dt, t_end, c_rate = 8, 0.1, 60.0, 0.015
else:
    members, dt, t_end, c_rate = 64, 0.02, 300.0, 0.003
may = make_system("may_grazing", c=2.0, c_rate=c_rate, sigma=0.15)
grid = TimeGrid(dt=dt, save_every=1.0, t_end=t_end, spinup=10.0)
out = may.simulate(make_integrator("euler_maruyama"), grid, seed=0, members=range(members))
times, xs, c_of_t = grid.times.numpy(), out["x"].numpy(), out["c"][0].numpy()
t_fold = may.grazing.time_of(upper.c)
print(f"c crosses the fold at t = {t_fold:.1f}; mean biomass before: {xs[:, times < t_fold].mean():.2f}, "
      f"at the end: {xs[:, -1].mean():.2f}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(times, xs[: min(members, 8)].T, lw=0.7, alpha=0.7)
ax.plot(times, xs.mean(0), "k", lw=2, label="ensemble mean")
ax.axvline(t_fold, color="grey", ls="--", label="c reaches the fold")
ax.set(xlabel="time", ylabel="biomass x")
ax.legend(loc="lower left")
driver = ax.twinx()
driver.plot(times, c_of_t, color="C3", lw=1)
driver.set_ylabel("grazing rate c(t)", color="C3")
fig.savefig(FIGURES / "may_tipping_series.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Where the ensemble sits in the potential
# Histograms of the state at three moments of the ramp, over the potential at the grazing
# rate of that moment: the upper well holds the ensemble until it vanishes.

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.5), sharey=True)
for ax, t in zip(axes, (0.0, 0.8 * t_fold, t_end)):
    k = int(np.argmin(np.abs(times - t)))
    c = float(c_of_t[k])
    ax.plot(x, may_potential(x, c), "k")
    ax.set(title=f"t = {times[k]:.0f}, c = {c:.3f}", xlabel="biomass x", ylim=(-3, 2))
    hist_ax = ax.twinx()
    hist_ax.hist(xs[:, k], bins=np.linspace(0, 10, 41), color="C0", alpha=0.5)
    hist_ax.set_yticks([])
axes[0].set_ylabel("V_c(x)")
fig.savefig(FIGURES / "may_potential_snapshots.png", dpi=100)
plt.close(fig)
print(f"figures in {FIGURES}")
assert torch.isfinite(out["x"]).all()
