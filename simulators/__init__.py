"""Reference physics for dynlab: batched vector fields, integrators, ensembles, Lyapunov spectra.

Pure torch (plus numpy, scipy and torchdiffeq); no files, configs or xarray.

>>> from simulators import make_system, make_integrator, TimeGrid, run_members
>>> l96 = make_system("lorenz96", K=40, F=8.0)
>>> out = run_members(l96, make_integrator("rk4"), TimeGrid(dt=0.01, save_every=0.05, t_end=1.0),
...                   seed=0, members=range(4))
>>> out["X"].shape
torch.Size([4, 21, 40])
"""
from .core import (SYSTEMS, AbstractSystem, Params, TimeGrid, Variable, check_finite_parameter,
                   make_system, register_system)
from .ensemble import BlowUpError, run_members
from .integrators import INTEGRATORS, AbstractFixedStepIntegrator, AbstractIntegrator, make_integrator, register_integrator
from .lorenz import Lorenz63, Lorenz96, Lorenz96TwoScale
from .lyapunov import kaplan_yorke_dimension, lyapunov_spectrum, rk4_tangent_step
from .path import AbstractPathSystem, run_paths
from .random import CounterRNG
from . import climate  # noqa: F401
from . import tipping  # noqa: F401
from . import hamiltonian  # noqa: F401
from . import jump  # noqa: F401
from . import pde  # noqa: F401

__all__ = [
    "SYSTEMS", "INTEGRATORS", "AbstractSystem", "AbstractIntegrator", "AbstractFixedStepIntegrator",
    "Params", "TimeGrid", "Variable", "CounterRNG", "BlowUpError",
    "make_system", "make_integrator", "register_system", "register_integrator", "check_finite_parameter",
    "run_members", "run_paths", "AbstractPathSystem", "lyapunov_spectrum", "kaplan_yorke_dimension", "rk4_tangent_step",
    "Lorenz63", "Lorenz96", "Lorenz96TwoScale",
]
