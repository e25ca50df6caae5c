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
# # Error growth of several learners on Lorenz96
#
# `dynlab evaluate run=<run dir>` writes `metrics.zarr` into a training run; here we
# either open such a file (set `DYNLAB_METRICS=<path to metrics.zarr>`) or make one
# directly with `evaluate_emulators` on a fresh Lorenz96 ensemble, for learners that
# need no training:
#
# * **coarse reference**: the true equations, integrated with RK4 at the saving
#   interval (Δt = 0.05) instead of the dataset's 0.01 — a tiny model error that
#   grows like e^{λ₁ t};
# * **hippo**: the in-context HiPPO extrapolator;
# * the **persistence** and **linear** baselines that `dynlab evaluate` always adds.
#
# The scores are an xarray Dataset on `(learner, lead)`, so plotting error growth
# for several learners is one loop. Set `DYNLAB_NOTEBOOK_SMALL=1` for a
# seconds-long run (the test suite does); figures go to `DYNLAB_NOTEBOOK_OUT`
# (default: a temporary folder).

# %%
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import dynlab
from dynlab.config import compose
from dynlab.emulators import HiPPOEmulator, ReferenceEmulator
from dynlab.emulators.reference import system_from_dataset
from dynlab.pipeline.evaluate import evaluate_emulators

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT") or tempfile.mkdtemp())
METRICS = os.environ.get("DYNLAB_METRICS")
members, t_end, horizon, long_rollout = (6, 6.0, 30, 80) if SMALL else (40, 60.0, 200, 1000)

# %% [markdown]
# ## Scores: from a run, or evaluated here

# %%
if METRICS:
    metrics_path = Path(METRICS)
else:
    cfg = compose("simulate", ["system=lorenz96", f"ensemble.members={members}", f"time.t_end={t_end}",
                               f"time.spinup={2.0 if SMALL else 10.0}", f"out={OUT / 'l96.zarr'}", "progress=false"])
    ds = dynlab.open_dataset(dynlab.simulate(cfg, log=lambda m: None).path)
    reference = ReferenceEmulator.from_dataset(ds)
    coarse = ReferenceEmulator(system_from_dataset(ds), "rk4", dt=0.05, steps_per_save=1, codec=reference.codec)
    hippo = HiPPOEmulator(reference.n_features, dt=0.05, N=4, theta_steps=4)
    test = list(range(members - 2, members)) if SMALL else list(range(members - 8, members))
    _, summary = evaluate_emulators(
        {"coarse reference": coarse, "hippo": hippo}, ds, test, train_members=list(range(members - len(test))),
        out_dir=OUT / "evaluation", context=8, horizon=horizon, starts_per_member=2 if SMALL else 8,
        long_rollout=long_rollout, spectrum_nperseg=64 if SMALL else 256,
        lyapunov_time=5.0 if SMALL else 50.0, lyapunov_transient=1.0 if SMALL else 5.0,
        plots=not SMALL)  # the report's own figures (this notebook draws its own below)
    metrics_path = OUT / "evaluation" / "metrics.zarr"
    print(json.dumps({k: summary[k] for k in ("vpt_median", "rmse_lead1", "lambda1")}, indent=1))

metrics = xr.open_zarr(metrics_path, consolidated=False).load()
learners = [str(v) for v in metrics["learner"].values]
metrics

# %% [markdown]
# ## Error growth
# Left: RMSE against lead time. Right: the median normalised error
# ‖x̂ − x‖/σ_clim in Lyapunov times; the valid prediction time is where it crosses
# the threshold 0.4 (dashed). A model whose error is set by a small, systematic
# one-step error grows along e^{λ₁ t} (dotted, anchored at its first lead).

# %%
lam = float(metrics.attrs.get("lambda1") or np.nan)
lead = metrics["lead"].values
in_lyap = np.isfinite(lam)
x = lead * lam if in_lyap else lead
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for name in learners:
    ax0.plot(lead, metrics["rmse"].sel(learner=name), label=name)
    ax1.semilogy(x, np.maximum(metrics["error_median"].sel(learner=name), 1e-16), label=name)
if in_lyap and "coarse reference" in learners:
    e0 = float(metrics["error_median"].sel(learner="coarse reference")[0])
    ax1.semilogy(x, e0 * np.exp(lam * (lead - lead[0])), "k:", lw=1, label="e^{λ₁ t}")
baseline_rmse = [float(metrics["rmse"].sel(learner=n).max()) for n in learners if n in ("persistence", "linear")]
if baseline_rmse:  # a learner that blows up would squash the others
    ax0.set_ylim(0, 1.5 * max(baseline_rmse))
ax1.axhline(metrics.attrs.get("threshold", 0.4), color="k", ls="--", lw=0.8)
ax1.set_ylim(1e-6, 10)
ax0.set_xlabel("lead time (model time)")
ax0.set_ylabel("RMSE")
ax1.set_xlabel("lead time (Lyapunov times)" if in_lyap else "lead time (model time)")
ax1.set_ylabel("median |error| / σ_clim")
ax0.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "error_growth.png", dpi=90)

# %% [markdown]
# ## Valid prediction times
# One value per (member, start); capped where the two reference integrators part ways.

# %%
vpt = metrics["vpt"].median(("member", "start")).to_series()
vpt_lyap = metrics["vpt_lyapunov"].median(("member", "start")).to_series()
table = {name: {"vpt": float(vpt[name]), "vpt_lyapunov": float(vpt_lyap[name])} for name in learners}
for name, row in table.items():
    print(f"{name:>22}: VPT {row['vpt']:.3g} model time = {row['vpt_lyapunov']:.3g} Lyapunov times")

fig, ax = plt.subplots(figsize=(6, 3.2))
data = [metrics["vpt_lyapunov" if in_lyap else "vpt"].sel(learner=n).values.ravel() for n in learners]
ax.boxplot(data)
ax.set_xticks(range(1, len(learners) + 1), learners, fontsize=8)
ax.set_ylabel("VPT (Lyapunov times)" if in_lyap else "VPT (model time)")
fig.tight_layout()
fig.savefig(OUT / "vpt.png", dpi=90)
