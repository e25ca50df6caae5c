"""Emulators: every learner behind one interface (see :mod:`dynlab.emulators.base`)."""
from .base import AbstractEmulator, Normalizer
from .codec import FieldSpec, StateCodec

__all__ = ["AbstractEmulator", "Normalizer", "StateCodec", "FieldSpec"]
