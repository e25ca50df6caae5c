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
# # A slab-ocean climate under a 1 %/yr CO₂ ramp
#
# The latitudinal energy-balance model `ebm_1d` (seasonal insolation from the orbit,
# ice-albedo feedback, a 10 m mixed layer) is spun up at 280 ppm and then forced with CO₂
# growing 1 % per year, CMIP's `1pctCO2` experiment. The forcing
# $F = 5.35 \ln(C/C_0)$ W m⁻² grows linearly, doubling CO₂ after 69.7 years. We plot the
# global temperature $\bar T$ and the top-of-atmosphere imbalance $N$, and compare with
# the zero-dimensional slab $C\,dT/dt = F + λT$ on the same scenario. The same data come
# from the command line:
#
# ```
# dynlab simulate system=ebm_1d system.scenario=ramp_1pct time.t_end=140 out=data/ebm_1pct.zarr
# ```
#
# Set `DYNLAB_NOTEBOOK_SMALL=1` for a quick, coarse run (the test suite does) and
# `DYNLAB_NOTEBOOK_OUT` to keep the data and figures.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import dynlab  # noqa: E402
from dynlab.config import compose  # noqa: E402
from dynlab.pipeline.simulate import simulate  # noqa: E402
from simulators.climate import ice_edge_latitude  # noqa: E402

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="dynlab_climate_"))
OUT.mkdir(parents=True, exist_ok=True)

# grid and length: the full run resolves 2° bands (explicit step 0.001 yr) for 140 years;
# the small one uses 10° bands, a short spin-up and 8 years
if SMALL:
    size = ["system.n_lat=18", "time.dt=0.01", "time.spinup=3", "time.t_end=8", "time.save_every=0.1",
            "ensemble.members=2"]
else:
    size = ["system.n_lat=90", "time.dt=0.001", "time.spinup=20", "time.t_end=140", "time.save_every=0.1",
            "ensemble.members=4"]

# %% [markdown]
# ## The ensemble
# Four members differ by a small initial perturbation (0.5 K per band) and by weather
# noise of 1 W m⁻² yr^½ per band, which makes the model an SDE integrated with
# Euler–Maruyama; each member has its own counter-based random stream.

# %%
store = OUT / "ebm_1pct.zarr"
simulate(compose("simulate", ["system=ebm_1d", "system.scenario=ramp_1pct", "system.noise=1.0",
                              "system.initial_spread=0.5", *size, f"out={store}", "progress=false",
                              "overwrite=true"]), log=lambda msg: None)
ds = dynlab.open_dataset(store).load()
print(ds)


# %% [markdown]
# ## Annual means
# The seasonal cycle is large (the 10 m slab follows the Sun), so we average each year.

# %%
per_year = int(round(1.0 / float(ds.time[1] - ds.time[0])))
annual = ds.isel(time=slice(1, None)).coarsen(time=per_year, boundary="trim").mean()  # years 1, 2, ...
years = np.arange(1, annual.sizes["time"] + 1) - 0.5
T_control = float(ds.T_global.isel(time=slice(0, per_year + 1)).mean())  # the first year, ~280 ppm
dT = annual.T_global.values - T_control   # (member, year)
N_ann = annual.N_toa.values
F_ann = annual.forcing.values[0]
print(f"global warming after {years[-1] + 0.5:.0f} years: {dT[:, -1].mean():.2f} K "
      f"(forcing {F_ann[-1]:.2f} W m-2, TOA imbalance {N_ann[:, -1].mean():.2f} W m-2)")
if not SMALL:
    doubling = (years > 60) & (years < 80)
    print(f"transient climate response (years 61-80): {dT[:, doubling].mean():.2f} K")

# %% [markdown]
# ## The zero-dimensional slab on the same scenario
# With $λ = -B = -2$ W m⁻² K⁻¹ (the EBM's longwave feedback) and the same 10 m slab it
# misses the ice-albedo feedback, so it warms less.

# %%
slab_store = OUT / "slab_1pct.zarr"
simulate(compose("simulate", ["system=slab_ocean_0d", "system.scenario=ramp_1pct", "system.feedback=-2.0",
                              "system.mixed_layer_depth=10", "ensemble.members=1", "time.dt=0.01",
                              "time.save_every=1", f"time.t_end={int(years[-1] + 0.5)}", f"out={slab_store}",
                              "progress=false", "overwrite=true"]), log=lambda msg: None)
slab = dynlab.open_dataset(slab_store).load()

# %%
fig, (ax_t, ax_n) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
for m in range(dT.shape[0]):
    ax_t.plot(years, dT[m], color="C0", alpha=0.6, lw=1, label="ebm_1d members" if m == 0 else None)
    ax_n.plot(years, N_ann[m], color="C0", alpha=0.6, lw=1)
ax_t.plot(slab.time, slab.T.isel(member=0), color="C1", lw=2, label="slab_ocean_0d, λ = −B")
ax_n.plot(slab.time, slab.N_toa.isel(member=0), color="C1", lw=2)
ax_n.plot(years, F_ann, "k--", lw=1, label="CO₂ forcing F")
ax_t.set(ylabel="ΔT global (K)", title="1 %/yr CO₂: global temperature and TOA imbalance (annual means)")
ax_n.set(xlabel="years since the start of the ramp", ylabel="N, F (W m⁻²)")
ax_t.legend(), ax_n.legend()
fig.tight_layout()
fig.savefig(OUT / "climate_scenario.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Where the warming goes
# Polar amplification: the ice edge retreats and the high latitudes warm most.

# %%
span = min(10, annual.sizes["time"] // 2)
T_first = annual.T.isel(time=slice(0, span)).mean(("member", "time"))
T_last = annual.T.isel(time=slice(-span, None)).mean(("member", "time"))
edge_first, edge_last = (float(ice_edge_latitude(T.values, ds.lat.values)) for T in (T_first, T_last))
print(f"annual-mean ice edge (NH): {edge_first:.1f} deg at the start, {edge_last:.1f} deg at the end")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ds.lat, T_last - T_first, "o-")
ax.set(xlabel="latitude (°N)", ylabel="warming (K)", title="Zonal-mean warming, end minus start of the ramp")
fig.tight_layout()
fig.savefig(OUT / "climate_zonal_warming.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## The heat budget closes
# `budget_residual` is the change of global heat content between saves minus the net
# flux accumulated with the integrator's own stage weights: round-off, noise included.

# %%
heat_change = 4181.3 * 1000 * 10 * np.abs(np.diff(ds.T_global.values, axis=1)).max()
print(f"max |budget residual| = {float(np.abs(ds.budget_residual).max()):.2e} J m-2 "
      f"(heat-content changes between saves up to {heat_change:.2e} J m-2)")
