"""The work behind each CLI command, as plain functions of a config."""
from .simulate import simulate

__all__ = ["simulate"]
