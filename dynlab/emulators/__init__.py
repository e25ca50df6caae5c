"""Emulators: every learner behind one interface (see :mod:`dynlab.emulators.base`)."""
from .base import AbstractEmulator, Normalizer
from .baselines import LinearOneStep, Persistence
from .codec import FieldSpec, StateCodec
from .hippo import HiPPOEmulator
from .reference import ReferenceEmulator
from .registry import LEARNERS, build_emulator, is_trainable
from .ssm import SSMEmulator

__all__ = ["AbstractEmulator", "Normalizer", "StateCodec", "FieldSpec", "ReferenceEmulator", "Persistence",
           "LinearOneStep", "SSMEmulator", "HiPPOEmulator", "LEARNERS", "build_emulator", "is_trainable"]
