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
# # Markov jump processes: the discrete flashing ratchet
#
# A Markov jump process (MJP) on states $0,\dots,N-1$ is fixed by its rate matrix $Q$:
# in state $i$ it waits an $\mathrm{Exp}(-Q_{ii})$ time, then jumps to $j$ with probability
# $Q_{ij}/(-Q_{ii})$ (Gillespie). Its stationary law solves $\pi Q = 0$ and its transition
# probabilities are $P(t) = e^{tQ}$.
#
# The discrete flashing ratchet (FIM; NeuralMJP App. J.1) has 6 states: potential on (0–2,
# $V_i = iV$, rates $e^{-(V_j - V_i)/2}$), potential off (3–5, rate $b$), switching $i \leftrightarrow i+3$
# at rate $r$. With $V = r = b = 1$: $\pi \approx (0.301, 0.137, 0.062, 0.200, 0.159, 0.141)$.
#
# `DYNLAB_NOTEBOOK_SMALL=1` runs everything at tiny sizes (the test does);
# figures go to `DYNLAB_FIGURE_DIR` (default: a fresh temporary folder).

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
from simulators.jump import (entropy_production, flashing_ratchet_rate_matrix, regular_grid,  # noqa: E402
                             simulate_mjp, stationary_distribution, transition_probabilities)

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
FIG_DIR = Path(os.environ.get("DYNLAB_FIGURE_DIR") or tempfile.mkdtemp(prefix="dynlab-jump-"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
N_PATHS = 200 if SMALL else 5000
T_END = 5.0 if SMALL else 20.0
print(f"small={SMALL}, figures in {FIG_DIR}")

# %% [markdown]
# ## The rate matrix and its exact laws

# %%
Q = flashing_ratchet_rate_matrix(V=1.0, r=1.0, b=1.0)
pi = stationary_distribution(Q)
eigenvalues = torch.linalg.eigvals(Q).real.sort().values
print("Q =\n", Q.numpy().round(3))
print("stationary pi =", pi.numpy().round(3))
print(f"relaxation time = {-1 / float(eigenvalues[-2]):.3f}, entropy production = {float(entropy_production(Q)):.3f}")

# %% [markdown]
# ## Exact paths, all at once
#
# `simulate_mjp` advances every path event by event as one tensor; with `record_events` it
# also keeps each path's jump record (entry 0 = the state at time 0).

# %%
x0 = torch.zeros(1, N_PATHS, dtype=torch.int64)  # every path starts in state 0
times = regular_grid(T_END, 201)
paths = simulate_mjp(Q[None], x0, times, t_end=T_END, seed=0, record_events=400)
print(f"{N_PATHS} paths, {paths.iterations} events for the longest, "
      f"mean {float(paths.n_events.float().mean()) - 1:.1f} jumps per path")

fig, ax = plt.subplots(figsize=(8, 3))
for p in range(3):
    k = int(paths.n_events[0, p])
    jt = np.append(paths.jump_time[0, p, :k].numpy(), T_END)
    js = paths.jump_state[0, p, :k].numpy()
    ax.step(jt, np.append(js, js[-1]), where="post", label=f"path {p}")
ax.set(xlabel="time", ylabel="state", yticks=range(6), title="flashing ratchet: exact paths")
ax.legend(loc="upper right")
fig.savefig(FIG_DIR / "ratchet_paths.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Relaxation towards the stationary law
#
# The fraction of paths in each state at time $t$ against the row of $e^{tQ}$ for state 0.

# %%
exact = np.stack([transition_probabilities(Q, float(t))[0].numpy() for t in times])
observed = paths.observed[0].numpy()  # (paths, times)
empirical = np.stack([(observed == i).mean(0) for i in range(6)], axis=1)

fig, ax = plt.subplots(figsize=(8, 3.5))
for i in range(6):
    line, = ax.plot(times.numpy(), empirical[:, i], lw=1, alpha=0.7)
    ax.plot(times.numpy(), exact[:, i], color=line.get_color(), ls="--")
ax.set(xlabel="time", ylabel="P(X_t = i | X_0 = 0)", title="empirical (solid) vs exp(tQ) (dashed)")
fig.savefig(FIG_DIR / "ratchet_relaxation.png", dpi=100, bbox_inches="tight")
print(f"largest deviation from exp(tQ): {np.abs(empirical - exact).max():.3f}")

# %% [markdown]
# ## Empirical vs stationary distribution
#
# After a few relaxation times (0.5 each) the observed states follow $\pi$; the time each
# path spends in each state (from its jump record) does too.

# %%
late = observed[:, times.numpy() >= 2.5].reshape(-1)
at_obs = np.bincount(late, minlength=6) / late.size
occupation = np.zeros(6)
for p in range(N_PATHS):
    k = int(paths.n_events[0, p])
    jt = np.clip(np.append(paths.jump_time[0, p, :k].numpy(), T_END), 2.5, None)  # time spent after 2.5
    np.add.at(occupation, paths.jump_state[0, p, :k].numpy(), np.diff(jt))
occupation /= occupation.sum()

fig, ax = plt.subplots(figsize=(6, 3))
width = 0.27
ax.bar(np.arange(6) - width, pi.numpy(), width, label="stationary pi (null space of Q)")
ax.bar(np.arange(6), at_obs, width, label="observed states, t >= 2.5")
ax.bar(np.arange(6) + width, occupation, width, label="occupation time, t >= 2.5")
ax.set(xlabel="state", ylabel="probability", title="flashing ratchet")
ax.legend(fontsize=8)
fig.savefig(FIG_DIR / "ratchet_stationary.png", dpi=100, bbox_inches="tight")
print("pi         ", pi.numpy().round(3))
print("observed   ", at_obs.round(3))
print("occupation ", occupation.round(3))

# %% [markdown]
# ## The same process as a dataset member
#
# The `flashing_ratchet` system adds the observation layer: several paths per member, a
# regular or irregular grid, mislabelled observations. `dynlab simulate system=flashing_ratchet`
# stores these variables.

# %%
system = make_system("flashing_ratchet", n_paths=8, n_obs=40, grid="irregular", mislabel_rate=0.1)
data = system.simulate(make_integrator("gillespie"), TimeGrid(dt=0.1, save_every=0.1, t_end=4.0),
                       seed=0, members=range(2))
for name, value in data.items():
    print(f"{name:22s} {tuple(value.shape)}")
print(f"mislabelled: {float((data['state'] != data['true_state']).float().mean()):.3f} (rate 0.1)")
plt.close("all")
