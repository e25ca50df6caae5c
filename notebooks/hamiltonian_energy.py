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
# # Energy over time: symplectic versus non-symplectic integrators
#
# A symplectic method (leapfrog, Yoshida 4) keeps the energy error of a
# Hamiltonian system bounded for very long times: it exactly conserves a
# nearby "modified" Hamiltonian. RK4 is more accurate per step than leapfrog
# but not symplectic, and its energy error drifts secularly.
#
# Two systems from `simulators.hamiltonian`:
#
# * the mass–spring, $H = \tfrac12 k q^2 + p^2/2m$ with $k = 2$, $m = 0.5$
#   ($\omega = 2$), at step $h = 0.1$;
# * the Kepler problem, $H = \sum_i p_i^2/2m_i - G m_1 m_2 / r$ with $G = m = 1$.
#
# Set `DYNLAB_NOTEBOOK_SMALL=1` for a quick run (the test suite does);
# figures go to `DYNLAB_NOTEBOOK_OUT`, or to a new temporary folder.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from simulators import TimeGrid, make_integrator, make_system, run_members  # noqa: E402

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL", "") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="dynlab_hamiltonian_"))
OUT.mkdir(parents=True, exist_ok=True)
INTEGRATORS = ("leapfrog", "yoshida4", "rk4")
torch.set_num_threads(1)


def relative_energy_error(system_name, integrator, grid, members=4, **params):
    """Relative energy error ΔH/H₀, shape (members, saves), and the save times."""
    system = make_system(system_name, **params)
    H = run_members(system, make_integrator(integrator), grid, seed=0, members=range(members))["H"]
    return grid.times.numpy(), ((H - H[:, :1]) / H[:, :1].abs()).numpy()


def trend(times, error):
    """Least-squares linear trend of the member-mean error, extrapolated over the whole run."""
    return float(np.polyfit(times, error.mean(0), 1)[0] * times[-1])


# %% [markdown]
# ## Mass–spring at h = 0.1 ($\omega h = 0.2$)
#
# Leapfrog's error oscillates with amplitude $(\omega h)^2/4 = 0.01$ and no
# trend. RK4's energy decays by the factor $|R(i\omega h)|^2 = 1 - (\omega h)^6/72 + (\omega h)^8/576$
# every step, so the error grows linearly at first.

# %%
spring_grid = TimeGrid(dt=0.1, save_every=1.0 if SMALL else 5.0, t_end=100.0 if SMALL else 5000.0)
results = {}
fig, ax = plt.subplots(figsize=(7, 4))
for name in INTEGRATORS:
    times, err = relative_energy_error("mass_spring", name, spring_grid)
    results[("mass_spring", name)] = {"max_abs": float(np.abs(err).max()), "trend": trend(times, err)}
    ax.plot(times, err[0], label=name)
ax.set_xlabel("time")
ax.set_ylabel(r"$\Delta H / H_0$ (member 0)")
ax.set_title(r"mass–spring, $k=2$, $m=0.5$, $h=0.1$")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "mass_spring_energy.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Kepler orbits
#
# Eccentric orbits stress the integrators near periapsis. Energy errors on a
# logarithmic scale: the symplectic methods stay bounded, RK4's grows.

# %%
kepler_grid = TimeGrid(dt=0.05, save_every=0.5, t_end=25.0 if SMALL else 1000.0)
fig, ax = plt.subplots(figsize=(7, 4))
for name in INTEGRATORS:
    times, err = relative_energy_error("kepler", name, kepler_grid, speed_ratio=(1.1, 1.2))
    results[("kepler", name)] = {"max_abs": float(np.abs(err).max()), "trend": trend(times, err)}
    ax.semilogy(times[1:], np.abs(err[:, 1:]).max(0), label=name)
ax.set_xlabel("time")
ax.set_ylabel(r"max over members of $|\Delta H / H_0|$")
ax.set_title(r"Kepler, $G = m = 1$, $h = 0.05$")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "kepler_energy.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Summary
#
# Maximum relative energy error and its linear trend over the run.

# %%
for (system_name, name), r in results.items():
    print(f"{system_name:12s} {name:10s} max |ΔH/H| = {r['max_abs']:.2e}   trend = {r['trend']:+.2e}")
print(f"figures in {OUT}")
