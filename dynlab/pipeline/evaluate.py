"""``evaluate(cfg)``: test a trained emulator against the reference physics, beside its baselines.

``dynlab evaluate run=<run dir>`` loads the run (``dataset.json``/``config.yaml``
for the store, ``split.json`` for the test and training members, the newest
checkpoint through :func:`dynlab.load_emulator`), forecasts the test members
with the emulator and with the persistence and linear baselines (the linear map
fitted on training members), and writes into the run directory:

* ``metrics.zarr``: the scores on a ``learner`` dimension (emulator first), see
  :mod:`dynlab.eval.forecast` for the variables;
* ``summary.json``: ``vpt_median``, ``rmse_lead1``, ... for the emulator and the
  same keys for each baseline under ``baselines``;
* ``report.md`` and ``figures/*.png`` (error growth, Hovmöller, histograms, spectra).

:func:`evaluate_emulators` is the same without a run directory: any emulators,
any dataset.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import to_container
from ..emulators.base import AbstractEmulator
from ..emulators.codec import StateCodec
from ..errors import ConfigError, StoreError

__all__ = ["evaluate", "evaluate_emulators", "EvaluateResult", "EVAL_DEFAULTS"]

EVAL_DEFAULTS: dict[str, Any] = {
    "context": None, "horizon": 100, "starts_per_member": 4, "long_rollout": 1000, "threshold": 0.4,
    "batch_size": 256, "baselines": ["persistence", "linear"], "linear_ridge": 1e-6, "baseline_members": 64,
    "lyapunov": "auto", "lyapunov_time": 50.0, "lyapunov_transient": 5.0, "lambda1": None, "agreement": True,
    "agreement_rtol": 1e-9, "agreement_atol": 1e-11, "spectrum_nperseg": 256, "spectrum_tail": 0.5, "bins": 50,
    "climatology_members": 64, "plots": True,
}
_SETUP_KEYS = ("starts_per_member", "long_rollout", "threshold", "batch_size", "lyapunov", "lyapunov_time",
               "lyapunov_transient", "lambda1", "agreement", "agreement_rtol", "agreement_atol",
               "spectrum_nperseg", "spectrum_tail", "bins", "climatology_members")


@dataclass
class EvaluateResult:
    out_dir: Path
    paths: dict[str, Path]
    summary: dict[str, Any]


def _eval_options(e: Mapping[str, Any] | None) -> dict[str, Any]:
    e = dict(e or {})
    unknown = sorted(set(e) - set(EVAL_DEFAULTS))
    if unknown:
        raise ConfigError(f"eval has unknown keys {unknown}; known: {sorted(EVAL_DEFAULTS)}")
    return {**EVAL_DEFAULTS, **e}


def _label(name: str, taken: set[str]) -> str:
    label = name
    while label in taken:
        label = f"{label} (baseline)"
    return label


def evaluate_emulators(emulators: Mapping[str, AbstractEmulator], ds, test_members: Sequence, *,
                       train_members: Sequence | None = None, codec: StateCodec | None = None,
                       out_dir: str | Path | None = None, baselines: Sequence[str] = ("persistence", "linear"),
                       context: int = 16, horizon: int = 100, linear_ridge: float = 1e-6,
                       baseline_members: int = 64, plots: bool = True, device: str = "cpu",
                       title: str = "Evaluation", extra: dict[str, Any] | None = None,
                       log: Callable[[str], None] | None = None, **setup_options):
    """Score emulators and baselines on the same forecasts; optionally write the results.

    Args:
        emulators: ``{label: emulator}``; the first is "the" emulator of the summary.
        ds: the dataset (from :func:`dynlab.open_dataset`).
        test_members, train_members: member ids (training members: climatology,
            σ_clim and the linear baseline's fit; default every other member).
        codec: the emulators' codec (default: the first emulator's ``codec``, else
            every variable of ``ds``).
        out_dir: if given, write ``metrics.zarr``, ``summary.json``, ``report.md``, figures.
        baselines: learner names built with :func:`~dynlab.emulators.build_emulator`
            and scored alongside (``persistence``, ``linear``, ``hippo``).
        setup_options: passed to :func:`dynlab.eval.prepare_evaluation`.

    Returns:
        ``(metrics dataset with a learner dim, summary dict or None)``.
    """
    import xarray as xr

    from ..emulators.registry import build_emulator
    from ..eval.forecast import prepare_evaluation, score_emulator, xr_merge
    from ..eval.report import summary as make_summary
    from ..eval.report import write_results

    log = log or (lambda msg: None)
    if not emulators:
        raise ValueError("emulators is empty: pass at least one {label: emulator}")
    first = next(iter(emulators.values()))
    codec = codec or getattr(first, "codec", None) or StateCodec.from_dataset(ds)
    setup = prepare_evaluation(ds, test_members, codec=codec, context=context, horizon=horizon,
                               train_members=train_members, device=device, **setup_options)
    learners: dict[str, AbstractEmulator] = dict(emulators)
    if baselines:
        members = [m for m in (train_members if train_members is not None else
                               [m for m in ds["member"].values.tolist() if m not in set(test_members)])]
        members = members[:baseline_members] or list(test_members)
        train_data = torch.as_tensor(codec.encode(ds.sel(member=members)), dtype=torch.float64)
        for name in baselines:
            cfg = {"name": name, "ridge": linear_ridge} if name == "linear" else {"name": name}
            learners[_label(name, set(learners))] = build_emulator(cfg, codec, train_data, dt=setup.dt)
    scores = []
    for label, em in learners.items():
        log(f"scoring {label}")
        scores.append(score_emulator(em, setup).assign_attrs(learner=label))
    names = np.array(list(learners), dtype=object)
    combined = xr.concat(scores, dim=xr.DataArray(names, dims="learner", name="learner"),
                         data_vars="all", coords="minimal", compat="override", join="outer",
                         combine_attrs="drop_conflicts")
    metrics = xr_merge(combined, setup.truth_dataset())
    metrics.attrs["learner"] = str(names[0])
    if out_dir is None:
        return metrics, make_summary(metrics, emulator=str(names[0]), extra=extra)
    paths = write_results(metrics, Path(out_dir), emulator=str(names[0]), title=title, extra=extra, plots=plots)
    return metrics, json.loads(paths["summary"].read_text())


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path.parent} has no {path.name} ({what}); was it written by dynlab train?") from None
    except ValueError as err:
        raise StoreError(f"{path} is not valid JSON: {err}") from None


def evaluate(cfg: DictConfig | dict, *, log: Callable[[str], None] | None = None) -> EvaluateResult:
    """Run the ``evaluate`` config (``configs/evaluate.yaml``) on a run directory.

    Raises :class:`ConfigError` for bad config values and :class:`StoreError` for a
    missing run directory, a run without a checkpoint or split, or a missing store.
    """
    from ..data.store import open_dataset
    from ..train.checkpoint import latest_checkpoint, load_emulator

    from ..runs import check_device
    from ..schemas import validate_command

    log = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    c = validate_command("evaluate", to_container(cfg))
    check_device(c["device"])
    e = _eval_options(c.get("eval"))
    run = c.get("run")
    if not run:
        raise ConfigError("run must name a run directory written by dynlab train, e.g. run=runs/l96_s4d")
    run_dir = Path(str(run)).expanduser()
    if not run_dir.is_dir():
        raise StoreError(f"run={str(run)!r}: no run directory there")
    checkpoint = c.get("checkpoint")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise StoreError(f"checkpoint={checkpoint!r}: no such file")
    if checkpoint is None and latest_checkpoint(run_dir) is None:
        raise StoreError(f"run={str(run)!r} holds no checkpoint (checkpoints/step_*.pt); "
                         "train it first with dynlab train")
    split = _read_json(run_dir / "split.json", "the member split")
    if not split.get("test"):
        raise StoreError(f"{run_dir / 'split.json'} has no test members; train with data.split.test > 0")
    info = _read_json(run_dir / "dataset.json", "the dataset record") if (run_dir / "dataset.json").exists() else {}
    run_cfg: dict[str, Any] = {}
    if (run_dir / "config.yaml").exists():
        try:
            run_cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        except Exception as err:  # a hand-edited or foreign file: say which
            raise StoreError(f"cannot read {run_dir / 'config.yaml'}: {str(err).splitlines()[0]}") from None
    store = c.get("store") or info.get("store") or (run_cfg.get("data") or {}).get("store")
    if not store:
        raise ConfigError(f"cannot tell which dataset {run_dir} was trained on; pass store=<path to the Zarr store>")
    device = str(c.get("device") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available on this machine")
    ds = open_dataset(store)
    emulator = load_emulator(run_dir, checkpoint=checkpoint, device=device, log=log)
    codec = getattr(emulator, "codec", None) or (StateCodec.from_dict(info["codec"]) if "codec" in info else None)
    learner = (run_cfg.get("learner") or {}).get("name") or getattr(emulator, "learner_name", "emulator")
    context = e["context"] if e["context"] is not None else int((run_cfg.get("data") or {}).get("context") or 16)
    baselines = e["baselines"] or []
    if isinstance(baselines, str):
        baselines = [baselines]
    out_dir = Path(c.get("out") or run_dir)
    log(f"evaluating {run_dir} ({learner}) on {len(split['test'])} test members of {store}")
    try:
        _, summ = evaluate_emulators(
            {learner: emulator}, ds, split["test"], train_members=split.get("train") or None, codec=codec,
            out_dir=out_dir, baselines=baselines, context=context, horizon=e["horizon"],
            linear_ridge=e["linear_ridge"], baseline_members=e["baseline_members"], plots=bool(e["plots"]),
            device=device, title=f"Evaluation of {run_dir.name} ({learner})",
            extra={"run": str(run_dir), "store": str(store)}, log=log,
            **{k: e[k] for k in _SETUP_KEYS})
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    paths = {"metrics": out_dir / "metrics.zarr", "summary": out_dir / "summary.json", "report": out_dir / "report.md",
             **{f"figure_{p.stem}": p for p in sorted((out_dir / "figures").glob("*.png"))}}
    base = ", ".join(f"{k} {v['vpt_median']}" for k, v in summ["baselines"].items())
    log(f"wrote {out_dir / 'report.md'}: VPT median {summ['vpt_median']} (baselines: {base or 'none'})")
    return EvaluateResult(out_dir, paths, summ)
