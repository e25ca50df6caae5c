"""Periodic 1-D PDEs integrated by ETDRK4 on a Fourier grid: Allen–Cahn, Kuramoto–Sivashinsky."""
from ..integrators.etdrk4 import ETDRK4  # noqa: F401  (registers "etdrk4")
from .allen_cahn import AllenCahn
from .base import AbstractPeriodicPDE
from .kuramoto_sivashinsky import KuramotoSivashinsky

__all__ = ["AllenCahn", "KuramotoSivashinsky", "AbstractPeriodicPDE", "ETDRK4"]
