"""Learners by name: the one place a learner config becomes an Emulator.

``build_emulator(learner_cfg, codec, train_data)`` takes the composed
``configs/learner/<name>.yaml`` (a ``name`` plus hyperparameters). Fitted state
(normaliser statistics, the linear baseline's map) lives in buffers, so a
checkpoint holding ``{"learner": learner_cfg, "codec": codec.to_dict(),
"state_dict": ...}`` is restored by ``build_emulator(learner_cfg, codec, None)``
followed by ``load_state_dict``.

``LEARNERS[name].trainable`` says whether gradient steps apply (False for
persistence, linear, hippo and reference, which are fitted in closed form or
not at all); every emulator also carries it as ``emulator.trainable``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from .base import AbstractEmulator
from .codec import StateCodec

__all__ = ["LEARNERS", "LearnerSpec", "build_emulator", "is_trainable", "learner_names"]


@dataclass(frozen=True)
class LearnerSpec:
    """A learner: how to build it from its config and whether it is trained by gradient steps.

    ``builder(options, codec, train_data, dt, system)`` gets the config without
    ``name``/``trainable``; ``options`` lists the keys it accepts (with defaults).
    """

    builder: Callable[..., AbstractEmulator]
    trainable: bool
    options: Mapping[str, Any]


def _check_train_data(train_data: torch.Tensor | None, codec: StateCodec) -> torch.Tensor | None:
    if train_data is None:
        return None
    if not isinstance(train_data, torch.Tensor) or train_data.ndim != 3 or train_data.shape[-1] != codec.n_features \
            or train_data.shape[1] < 2:
        shape = tuple(train_data.shape) if isinstance(train_data, torch.Tensor) else type(train_data).__name__
        raise ValueError(f"train_data must have shape (N, L >= 2, {codec.n_features}), got {shape}")
    return train_data


def _persistence(opts, codec, train_data, dt, system):
    from .baselines import Persistence

    return Persistence(codec.n_features)


def _linear(opts, codec, train_data, dt, system):
    from .baselines import LinearOneStep

    em = LinearOneStep(codec.n_features, ridge=opts["ridge"])
    if train_data is not None:
        em.fit(train_data)
    return em


def _ssm(block: str):
    def build(opts, codec, train_data, dt, system):
        from .ssm import SSMEmulator

        em = SSMEmulator(codec, block=block, **opts)
        if train_data is not None:
            em.fit_normalizers(train_data)
        return em

    return build


def _hippo(opts, codec, train_data, dt, system):
    from .hippo import HiPPOEmulator

    if dt is None:
        raise ValueError("learner 'hippo' needs dt (the sampling interval of the data) to build its memory")
    return HiPPOEmulator(codec.n_features, dt=dt, **opts)


def _reference(opts, codec, train_data, dt, system):
    from simulators import make_integrator

    from .reference import ReferenceEmulator

    if system is None or dt is None:
        raise ValueError("learner 'reference' needs the system and dt (the sampling interval of the data)")
    steps = opts["steps_per_save"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"learner 'reference': steps_per_save must be a positive integer, got {steps!r}")
    integrator = make_integrator(opts["integrator"], **dict(opts["integrator_options"] or {}))
    return ReferenceEmulator(system, integrator, dt / steps, steps, codec)


def _fitted(cls_name: str):
    def build(opts, codec, train_data, dt, system):
        from . import baselines

        em = getattr(baselines, cls_name)(codec.n_features, **opts)
        if train_data is not None:
            em.fit(train_data)
        return em

    return build


def _polynomial(opts, codec, train_data, dt, system):
    from .baselines import PolynomialExtrapolation

    return PolynomialExtrapolation(codec.n_features, points=opts["points"], degree=opts["degree"])


def _numerical(method: str):
    def build(opts, codec, train_data, dt, system):
        from .reference import numerical_model

        if system is None or dt is None:
            raise ValueError(f"learner {method!r} needs the reference system and dt (the save interval)")
        return numerical_model(system, method, dt, codec)

    return build


def _imperfect(opts, codec, train_data, dt, system):
    from .reference import imperfect_model

    if system is None or dt is None:
        raise ValueError("learner 'imperfect' needs the reference system and dt (the save interval)")
    return imperfect_model(system, dt, codec, error=opts["error"], parameter=opts["parameter"])


def _energy_based(opts, codec, train_data, dt, system):
    from .energy import EnergyBasedEmulator, options_from_mapping

    options = options_from_mapping(opts)
    physics = None
    if options.physics_weight > 0:
        from .reference import ReferenceEmulator

        if system is None or dt is None:
            raise ValueError("learner 'energy_based' with physics_weight > 0 needs the system and dt "
                             "(the sampling interval of the data)")
        physics = ReferenceEmulator(system, options.physics_integrator, dt, 1, codec)
    em = EnergyBasedEmulator(codec, options, physics)
    if train_data is not None:
        em.fit_normalizers(train_data)
    return em


def _neural_ode(opts, codec, train_data, dt, system):
    from .neural_ode import NeuralODEEmulator, neural_ode_options

    em = NeuralODEEmulator(codec, neural_ode_options(opts), save_interval=dt if dt is not None else 1.0)
    if train_data is not None:
        em.fit_normalizers(train_data)
    return em


def _hnn(opts, codec, train_data, dt, system):
    from .hnn import HNNEmulator, hnn_options

    em = HNNEmulator(codec, hnn_options(opts), system=system, save_interval=dt if dt is not None else 1.0)
    if train_data is not None:
        em.fit_normalizers(train_data)
    return em


def _defaults(options_class) -> dict[str, Any]:
    """A learner's option defaults from its options dataclass (tuples as lists, as in YAML)."""
    import dataclasses

    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
            for f in dataclasses.fields(options_class)}


def _options_of(module: str, name: str) -> dict[str, Any]:
    import importlib

    return _defaults(getattr(importlib.import_module(f"{__package__}.{module}"), name))


_SSM_OPTIONS = {"d_model": 64, "n_layers": 4, "spatial_encoder": None, "kernel_size": 5, "spatial_dim": "k",
                "backbone": {}, "decoder_init_scale": 0.1}

LEARNERS: dict[str, LearnerSpec] = {
    "persistence": LearnerSpec(_persistence, False, {}),
    "linear": LearnerSpec(_linear, False, {"ridge": 0.0}),
    "s4d": LearnerSpec(_ssm("s4d"), True, _SSM_OPTIONS),
    "mamba": LearnerSpec(_ssm("mamba"), True, _SSM_OPTIONS),
    "hippo": LearnerSpec(_hippo, False, {"measure": "legt", "N": 8, "theta": None, "theta_steps": 8.0,
                                         "order": 1, "discretization": "foh"}),
    "reference": LearnerSpec(_reference, False, {"integrator": "rk4", "integrator_options": {},
                                                 "steps_per_save": 1}),
    # baselines (docs/baselines.md)
    "climatology": LearnerSpec(_fitted("Climatology"), False, {}),
    "damped_persistence": LearnerSpec(_fitted("DampedPersistence"), False, {}),
    "polynomial": LearnerSpec(_polynomial, False, {"points": 4, "degree": None}),
    "euler": LearnerSpec(_numerical("euler"), False, {}),
    "heun": LearnerSpec(_numerical("heun"), False, {}),
    "rk4": LearnerSpec(_numerical("rk4"), False, {}),
    "imperfect": LearnerSpec(_imperfect, False, {"error": 0.01, "parameter": None}),
    # energy-based predictor and physics-ML baselines
    "energy_based": LearnerSpec(_energy_based, True, _options_of("energy", "EnergyBasedOptions")),
    "neural_ode": LearnerSpec(_neural_ode, True, _options_of("neural_ode", "NeuralODEOptions")),
    "hnn": LearnerSpec(_hnn, True, _options_of("hnn", "HNNOptions")),
}


def learner_names() -> list[str]:
    return sorted(LEARNERS)


def _plain(cfg: Any) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ValueError(f"learner config must be a mapping with a 'name', got {type(cfg).__name__}")
    return dict(cfg)


def build_emulator(learner_cfg: Mapping[str, Any], codec: StateCodec, train_data: torch.Tensor | None = None, *,
                   dt: float | None = None, system=None) -> AbstractEmulator:
    """Build the emulator a learner config describes.

    Args:
        learner_cfg: ``{"name": <learner>, **hyperparameters}`` (a dict or DictConfig);
            a ``trainable`` key, if present, must agree with the learner.
        codec: the dataset's state codec (``D = codec.n_features``).
        train_data: training windows ``(N, L, D)`` in physical units, used to fit
            normalisers and the linear baseline; None when the state comes from a
            checkpoint (``load_state_dict`` afterwards).
        dt: the data's sampling interval (model time between saved states).
        system: the reference system (only ``reference`` needs it).

    Raises ``ValueError`` for an unknown learner (listing the known ones) or
    unknown hyperparameters (naming them).
    """
    cfg = _plain(learner_cfg)
    name = cfg.pop("name", None)
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known learners: {', '.join(learner_names())}")
    if not isinstance(codec, StateCodec):
        raise ValueError(f"codec must be a StateCodec, got {type(codec).__name__}")
    spec = LEARNERS[name]
    trainable = cfg.pop("trainable", spec.trainable)
    if trainable != spec.trainable:
        raise ValueError(f"learner {name!r} has trainable={spec.trainable}, "
                         f"but the config says trainable={trainable!r}")
    unknown = sorted(set(cfg) - set(spec.options))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for learner {name!r}; "
                         f"it accepts {', '.join(sorted(spec.options)) or 'none'}")
    opts = {**spec.options, **cfg}
    if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0):
        raise ValueError(f"dt must be a number > 0, got {dt!r}")
    em = spec.builder(opts, codec, _check_train_data(train_data, codec), dt, system)
    em.trainable = spec.trainable
    em.learner_name = name
    em.codec = codec  # so evaluation can write forecasts out with the dataset's variables
    return em


def is_trainable(emulator: AbstractEmulator) -> bool:
    """Whether gradient steps apply to ``emulator`` (True unless it says otherwise)."""
    return bool(getattr(emulator, "trainable", True))
