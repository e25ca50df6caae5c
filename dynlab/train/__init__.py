"""Training: losses (one-step, rollout, causal weighting), horizon curriculum, the trainer,
checkpoints and torchrun/DDP plumbing."""
from .causal import CausalWeighting, causal_weights
from .checkpoint import latest_checkpoint, load_checkpoint, load_emulator
from .curriculum import HorizonCurriculum
from .distributed import DistContext, init_distributed
from .losses import (LOSSES, AbstractObjective, OneStepObjective, RolloutObjective, build_objective, one_step_mse,
                     rollout_step_losses)
from .trainer import NonFiniteLossError, TrainConfig, Trainer, TrainResult, cosine_warmup, param_groups

__all__ = [
    "causal_weights", "CausalWeighting", "HorizonCurriculum",
    "one_step_mse", "rollout_step_losses", "AbstractObjective", "OneStepObjective", "RolloutObjective",
    "LOSSES", "build_objective",
    "TrainConfig", "Trainer", "TrainResult", "NonFiniteLossError", "param_groups", "cosine_warmup",
    "DistContext", "init_distributed", "load_emulator", "load_checkpoint", "latest_checkpoint",
]
