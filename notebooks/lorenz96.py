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
# # Lorenz96: simulate, open with xarray, look at it
#
# One `dynlab simulate` call writes a Zarr store; `dynlab.open_dataset` opens it
# lazily as an xarray Dataset. We plot a Hovmöller diagram (k against time) and
# the climatology, and check the time-mean identity ⟨X_k²⟩ = F⟨X_k⟩.
#
# Set `DYNLAB_NOTEBOOK_SMALL=1` for a seconds-long run (the test suite does).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dynlab
from dynlab.config import compose

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT", tempfile.mkdtemp()))
members, t_end = (4, 20.0) if SMALL else (64, 100.0)

# %% [markdown]
# ## Simulate
# The same as `dynlab simulate system=lorenz96 ensemble.members=... out=...` on the command line.

# %%
cfg = compose("simulate", ["system=lorenz96", f"ensemble.members={members}", f"time.t_end={t_end}",
                           f"out={OUT / 'l96.zarr'}", "progress=false"])
result = dynlab.simulate(cfg)
ds = dynlab.open_dataset(result.path)
ds

# %% [markdown]
# ## Hovmöller diagram of one member

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
ds.X.isel(member=0).sel(time=slice(0, 10)).plot(x="time", y="k", ax=ax, cmap="RdBu_r", center=0)
ax.set_title("Lorenz96, K=40, F=8: X_k(t), member 0")
fig.tight_layout()
fig.savefig(OUT / "hovmoller.png", dpi=100)

# %% [markdown]
# ## Climatology
# Pooled over members, time and k (the system is statistically homogeneous in k).

# %%
X = ds.X
mean, std = float(X.mean()), float(X.std())
print(f"mean {mean:.3f}, std {std:.3f}  (reference K=40, F=8: mean 2.34, std 3.64)")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].hist(X.values.ravel(), bins=60, density=True, color="tab:blue")
axes[0].set_xlabel("X_k")
axes[0].set_title("marginal distribution")
X.mean(("member", "time")).plot(ax=axes[1], marker="o")
axes[1].set_title("time mean by k")
fig.tight_layout()
fig.savefig(OUT / "climatology.png", dpi=100)

# %% [markdown]
# The energy budget gives ⟨X_k²⟩ = F⟨X_k⟩ in time average:

# %%
F = float(cfg.system.F)
lhs, rhs = float((X**2).mean()), F * mean
print(f"<X^2> = {lhs:.3f}, F<X> = {rhs:.3f}")
assert abs(lhs - rhs) < 0.1 * rhs
