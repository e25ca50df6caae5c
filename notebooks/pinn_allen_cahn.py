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
# # Causal and non-causal PINNs on Allen–Cahn, beside the ETDRK4 reference
#
# $u_t = d\,u_{xx} - a u^3 + a u$ on $x\in[-1,1)$ periodic, $d = 10^{-4}$, $a = 5$,
# $u_0 = x^2\cos(\pi x)$, $t\in[0,1]$. The reference is ETDRK4 on a Fourier grid
# (Kassam & Trefethen 2005). The PINN's residual loss is split into time chunks; with
# causal training (Wang, Sankaran & Perdikaris 2022) chunk $i$ is weighted by
# $w_i = \exp(-\varepsilon\sum_{k<i}L_k)$, so late times are fitted only once early times are.
#
# The budget here is tiny (CPU, seconds to minutes): the point is the mechanics and the
# shape of the error field, not the published 1.66e-3. Set `DYNLAB_NOTEBOOK_SMALL=1` for a
# seconds-long run (the test suite does).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dynlab.pinn import PinnConfig, train_pinn
from dynlab.pinn.evaluate import plot_error_field, relative_l2, relative_l2_in_time
from dynlab.pinn.pipeline import build_problem
from dynlab.pinn.reference import reference_solution
from simulators import make_system

SMALL = os.environ.get("DYNLAB_NOTEBOOK_SMALL") == "1"
OUT = Path(os.environ.get("DYNLAB_NOTEBOOK_OUT", tempfile.mkdtemp()))
n, dt, steps, points = (128, 1e-3, 40, 256) if SMALL else (512, 1e-4, 1500, 1024)

# %% [markdown]
# ## The reference solution

# %%
system = make_system("allen_cahn", n=n)
ref = reference_solution(system, {"dt": dt, "save_every": 0.02, "t_end": 1.0}, t_end=1.0)
print(f"ETDRK4 on {n} points, dt={dt:g}: {ref.seconds:.2f} s; u in [{float(ref.u.min()):.3f}, {float(ref.u.max()):.3f}]")
problem = build_problem(system, ref, 1.0)

# %% [markdown]
# ## Causal against plain training, same network, seed and steps
# The initial condition is imposed exactly, $u = u_0(x) + t\,\mathrm{NN}(t, x)$, and
# the network sees $x$ through $\cos m\pi(x+1)$, $\sin m\pi(x+1)$ only, so $u$ is periodic.

# %%
base = {"network": {"arch": "modified_mlp", "width": 32 if SMALL else 64, "depth": 3, "x_modes": 6},
        "steps": steps, "points": points, "lr": 1e-3, "decay_steps": 200, "log_every": 10 ** 6,
        "causal": {"chunks": 16, "eps": [1e-2, 1e-1, 1.0, 10.0, 100.0]}}
results = {}
for label, causal in (("causal", True), ("plain", False)):
    cfg = PinnConfig.from_dict({**base, "causal": {**base["causal"], "enabled": causal}})
    history = []
    solution = train_pinn(problem, cfg, log=history.append)
    u = solution.predict(ref.times, ref.x)
    results[label] = {"u": u, "rel_l2": relative_l2(u, ref.u), "rel_t": relative_l2_in_time(u, ref.u),
                      "steps": solution.steps, "seconds": solution.seconds, "history": history}
    print(f"{label:>6}: relative L2 {results[label]['rel_l2']:.3g} after {solution.steps} steps "
          f"({solution.seconds:.1f} s)")

# %% [markdown]
# ## Error fields and the error against time

# %%
for label, r in results.items():
    plot_error_field(OUT / f"pinn_ac_{label}.png", ref.times, r["u"], ref.u, ref.x,
                     f"Allen-Cahn, {label} training: relative L2 {r['rel_l2']:.3g}")
fig, ax = plt.subplots(figsize=(6, 3.5))
for label, r in results.items():
    ax.semilogy(ref.times, r["rel_t"].clamp_min(1e-16), label=label)
ax.set_xlabel("t")
ax.set_ylabel("relative L2 error")
ax.legend()
fig.savefig(OUT / "pinn_ac_error_in_time.png", dpi=80)
causal_gap = results["plain"]["rel_l2"] / results["causal"]["rel_l2"]
print(f"plain / causal error ratio: {causal_gap:.2f}")
