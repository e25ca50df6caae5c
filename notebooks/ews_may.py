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
# # Early warnings on May's grazing model, with their error rates
#
# As the grazing rate $c$ is ramped towards the fold at $c \approx 2.604$, the upper
# equilibrium loses stability: the recovery rate $-f_c'(x^*)$ falls to zero, so the
# fluctuations around it grow slower and larger (*critical slowing down*). The classic
# indicators are the rolling variance and lag-1 autocorrelation of the detrended series and
# their Kendall $\tau$ against time (Dakos et al. 2012). A warning is only as good as its
# false-alarm rate, so each statistic is scored on ramped runs against stationary runs of
# the same model cut at the same lengths: ROC curves, detection at 5 % false alarms, AUC.
# The model-based alternative (Boettiger & Hastings 2012) fits an Ornstein–Uhlenbeck null
# and a linearised saddle-node with a ramped bifurcation parameter and scores their
# likelihood ratio $\delta$.
#
# The same table, with bootstrap intervals, a report and a results store, comes from
#
# ```
# dynlab ews ews_preset=may_tipping
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
import xarray as xr  # noqa: E402

from dynlab.ews import auc, detection_rate, indicators, kendall_tau, may_transition, roc_curve  # noqa: E402
from dynlab.ews.scoring import analysed_lengths, score_series  # noqa: E402
from simulators import TimeGrid, make_integrator, make_system  # noqa: E402
from simulators.tipping import may_folds  # noqa: E402

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
FIGURES = Path(os.environ.get("DYNLAB_FIGURE_DIR") or tempfile.mkdtemp(prefix="dynlab_ews_"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Ramped and stationary ensembles
# Both start on the upper branch at $c_0$; the ramped one moves $c$ through the fold, the
# stationary one keeps $c = c_0$. Member indices differ, so their noises are independent.

# %%
if SMALL:
    members, dt, c0, c_rate, t_end = 16, 0.1, 2.3, 0.005, 80.0
else:
    members, dt, c0, c_rate, t_end = 100, 0.05, 2.0, 0.003, 260.0
grid = TimeGrid(dt=dt, save_every=1.0, t_end=t_end, spinup=10.0)
em = make_integrator("euler_maruyama")
ramped = make_system("may_grazing", c=c0, c_rate=c_rate, sigma=0.15)
stationary = make_system("may_grazing", c=c0, c_rate=0.0, sigma=0.15)
out_r = ramped.simulate(em, grid, seed=0, members=range(members))
out_s = stationary.simulate(em, grid, seed=0, members=range(members, 2 * members))
times = grid.times.numpy()
x_r = xr.DataArray(out_r["x"].numpy(), dims=("member", "time"), coords={"time": times})
x_s = xr.DataArray(out_s["x"].numpy(), dims=("member", "time"), coords={"time": times})
fold = may_folds()[-1]
t_fold = ramped.grazing.time_of(fold.c)

# %% [markdown]
# ## Where each run tips
# A run's transition is the first time it falls below the unstable equilibrium of the
# current $c$ (past the fold, below the fold's state). Statistics stop `lead` time units
# before it, so the collapse itself cannot create the trend.

# %%
lead = 3.0 if SMALL else 10.0
t_tr = may_transition(x_r, out_r["c"][0].numpy())
stop = np.where(np.isnan(t_tr.values), t_end, t_tr.values - lead)
print(f"fold reached at t = {t_fold:.1f}; {int(np.isfinite(t_tr).sum())}/{members} ramped runs tipped, "
      f"median transition time {np.nanmedian(t_tr):.1f}")

# %% [markdown]
# ## Indicator series
# Gaussian detrending (bandwidth 0.2 of the series), trailing window 0.25: the ewstools
# conventions. The common analysis length here is the earliest stop of all runs.

# %%
common = int(analysed_lengths(np.array([stop.min()]), 1.0, len(times), 1)[0])
ind_r = indicators(x_r.isel(time=slice(0, common)), indicators=["variance", "ac1"])
ind_s = indicators(x_s.isel(time=slice(0, common)), indicators=["variance", "ac1"])
fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
for ds, colour, label in ((ind_r, "C3", "ramped"), (ind_s, "C0", "stationary")):
    axes[0].plot(ds["time"], ds["state"].isel(member=slice(0, 3)).T, color=colour, lw=0.6)
    for ax, name in zip(axes[1:], ("variance", "ac1")):
        ax.plot(ds["time"], ds[name].median("member"), color=colour, lw=2, label=f"{label} (median)")
        ax.fill_between(ds["time"], ds[name].quantile(0.1, "member"), ds[name].quantile(0.9, "member"),
                        color=colour, alpha=0.2)
axes[0].set_ylabel("biomass x")
axes[1].set_ylabel("variance")
axes[2].set(ylabel="lag-1 autocorrelation", xlabel="time")
axes[1].legend(fontsize=8)
fig.savefig(FIGURES / "ews_indicator_series.png", dpi=100)
plt.close(fig)
tau_common = kendall_tau(ind_r)
print(f"median tau of the variance on the ramped runs: {float(tau_common['variance'].median()):.2f}")

# %% [markdown]
# ## Error rates: ROC curves
# Each ramped run is cut at its own stop (detrending bandwidth and window are fractions of
# that length) and paired with a stationary run cut at the same length; the score is
# Kendall $\tau$ of each indicator, and the likelihood ratio $\delta$ of the LSN against the OU
# fitted to the residuals plus the mean.

# %%
names = ["variance", "ac1", "skewness"]
lengths = analysed_lengths(stop, 1.0, len(times), 5)
common_kw = dict(names=names, detrend="gaussian", bandwidth=0.2, span=0.2, window=0.25, min_points=20,
                 likelihood=True)
s_r = score_series(x_r.values, lengths, times, **common_kw)
s_s = score_series(x_s.values, lengths, times, **common_kw)
fig, ax = plt.subplots(figsize=(5, 5))
rows = []
for key in [f"tau_{n}" for n in names] + ["lr"]:
    fpr, tpr, _ = roc_curve(s_s[key], s_r[key])
    ax.plot(fpr, tpr, label=key)
    rows.append((key, detection_rate(s_s[key], s_r[key], 0.05), auc(s_s[key], s_r[key])))
ax.plot([0, 1], [0, 1], ":", color="grey")
ax.axvline(0.05, ls="--", color="grey", lw=0.8)
ax.set(xlabel="false-alarm rate (stationary runs)", ylabel="detection rate (ramped runs)", title="ROC")
ax.legend()
fig.savefig(FIGURES / "ews_roc.png", dpi=100)
plt.close(fig)
for key, det, area in rows:
    print(f"{key:15s} detection at 5% false alarms {det:5.0%}   AUC {area:.2f}")
print(f"figures in {FIGURES}")
