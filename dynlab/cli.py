"""The ``dynlab`` command: ``dynlab <command> [key=value ...]`` with hydra overrides.

Commands compose ``configs/<command>.yaml`` with the overrides (hydra's
override grammar: ``system=lorenz63``, ``system.F=10``, ``+key=value``) and call
the plain function behind the command. User errors print one line and exit 2.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from .errors import DynlabError

USAGE = """usage: dynlab <command> [override ...] [--cfg] [--help]

commands:
  simulate   simulate an ensemble into a Zarr store (configs/simulate.yaml)
  train      train an emulator on a stored dataset (configs/train.yaml)
  evaluate   test a trained emulator against the reference physics (configs/evaluate.yaml)
  run        simulate, train and evaluate one experiment (configs/run.yaml)
  verify     check a store's chunks; repair=true recomputes damaged or missing ones
  ews        early-warning statistics and their error rates (configs/ews.yaml; preset=may_tipping|allee_prosecutor)

Overrides use hydra's grammar, for example:
  dynlab simulate system=lorenz96 system.K=40 system.F=8 ensemble.members=256 \\
      time.dt=0.01 time.save_every=0.05 time.spinup=10 time.t_end=100 seed=0 out=data/l96.zarr
  dynlab simulate system=lorenz63 integrator=dopri5 integrator.rtol=1e-9
  dynlab simulate parallel=dask parallel.n_workers=4

`dynlab run -m key=a,b seed=0,1,2` runs a sweep (one run directory per job, a
summary table in runs/<name>/sweep.md).
--cfg prints the composed config and exits; `dynlab <command> --help` lists the
command's keys with their defaults and meanings.
"""


def _simulate(cfg) -> None:
    from .pipeline.simulate import simulate

    result = simulate(cfg)
    print(result.path)


def _train(cfg) -> None:
    from .pipeline.train import train

    train(cfg)


def _evaluate(cfg) -> None:
    from .pipeline.evaluate import evaluate

    evaluate(cfg)


def _verify(cfg) -> None:
    from .pipeline.verify import verify

    result = verify(cfg)
    return 1 if result.problems and not result.repaired else 0


def _ews(cfg) -> None:
    from .ews.pipeline import ews

    print(ews(cfg).out_dir)


def _run(cfg) -> None:
    from .pipeline.run import run

    run(cfg)


# command -> (config name in configs/, function of the composed config)
COMMANDS: dict[str, tuple[str, Callable]] = {
    "simulate": ("simulate", _simulate),
    "train": ("train", _train),
    "evaluate": ("evaluate", _evaluate),
    "run": ("run", _run),
    "verify": ("verify", _verify),
    "ews": ("ews", _ews),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"dynlab: error: unknown command {command!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in rest):
        from .schemas import COMMAND_SCHEMAS, command_help

        try:
            print(command_help(command) if command in COMMAND_SCHEMAS else USAGE)
        except BrokenPipeError:
            pass
        return 0
    show_cfg = "--cfg" in rest
    multirun = any(a in ("-m", "--multirun") for a in rest)
    overrides = [a for a in rest if a not in ("--cfg", "-m", "--multirun")]
    config_name, func = COMMANDS[command]
    if command == "ews":  # `preset=NAME` is the config group ews_preset
        overrides = ["ews_preset=" + a.split("=", 1)[1] if a.startswith("preset=") else a for a in overrides]
    try:
        from omegaconf import OmegaConf

        from .config import compose

        if multirun:
            if command != "run":
                raise DynlabError(f"-m (sweep) works with dynlab run, not dynlab {command}")
            from .sweep import run_sweep

            run_sweep(overrides)
            return 0

        cfg = compose(config_name, overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg, resolve=True), end="")
            return 0
        code = func(cfg)
        if isinstance(code, int):
            return code
    except DynlabError as err:
        print(f"dynlab: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed
        return 0
    except KeyboardInterrupt:
        print("dynlab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
