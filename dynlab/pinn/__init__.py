"""Physics-informed neural networks (PINNs) with causal training, beside the reference solvers.

A PINN solves one initial-value problem on one domain (it is not an Emulator):
:func:`dynlab.pinn.pipeline.run_pinn` trains it from the ``pinn:`` config
section, solves the same problem with the reference solver and writes the
comparison. See ``docs/pinn.md``.
"""
import simulators.pde  # noqa: F401  (registers allen_cahn, kuramoto_sivashinsky, etdrk4)

from .config import BalanceConfig, CausalConfig, NetworkConfig, PinnConfig
from .networks import PinnNetwork
from .residuals import RESIDUALS, residual_for
from .train import PinnProblem, PinnSolution, derivatives, train_pinn

__all__ = ["PinnConfig", "NetworkConfig", "CausalConfig", "BalanceConfig", "PinnNetwork", "RESIDUALS",
           "residual_for", "PinnProblem", "PinnSolution", "derivatives", "train_pinn"]
