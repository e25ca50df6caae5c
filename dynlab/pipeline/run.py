"""``run(cfg)``: one experiment end to end — simulate, train, evaluate — and a short summary.

``configs/run.yaml`` puts ``simulate.yaml``'s keys (``system``, ``time``,
``ensemble``, ...) and ``train.yaml``'s keys (``data``, ``learner``, ``loss``,
``train``, ``run_dir``, ...) side by side at the top level, and
``configs/evaluate.yaml`` as the ``evaluate`` section; ``experiment=<name>`` files
hold only overrides. Each stage is cached:

* **simulate**: with ``out: null`` the store is ``<cache_dir>/<system>-<config hash>.zarr``;
  a complete store with the same hash is reused as it is (``simulate`` returns at once);
* **train**: a finished run directory with the same training config is reused;
  an interrupted one resumes (``resume: true``);
* **evaluate** always runs (it writes ``metrics.zarr``, ``summary.json``, ``report.md``).

Under torchrun, rank 0 simulates and evaluates and every rank trains.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from omegaconf import DictConfig

from ..config import to_container
from ..errors import ConfigError
from ..schemas import SimulateSchema, TrainSchema, validate_command

__all__ = ["run", "RunResult", "format_summary", "beats_baselines_until_vpt"]


@dataclass
class RunResult:
    """Where an experiment's pieces are and its headline numbers."""

    store: Path
    run_dir: Path
    report: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _section(c: Mapping[str, Any], schema: type) -> dict[str, Any]:
    """The keys of ``c`` that the command of ``schema`` reads."""
    return {f.name: c[f.name] for f in dataclasses.fields(schema) if f.name in c}


def _store_path(plan, cache_dir: str) -> Path:
    """``<cache_dir>/<system>-<config hash>.zarr``: the same data always maps to the same store."""
    return Path(cache_dir).expanduser() / f"{plan.system.name}-{plan.config_hash}.zarr"


def _precheck(c: Mapping[str, Any], n_times: int) -> None:
    """Refuse a training or evaluation config that cannot work with the simulated
    trajectories, before anything is simulated (one-line errors)."""
    from ..train.losses import build_objective

    context = c["data"]["context"]
    objective = build_objective(c["loss"], context)
    horizon = c["data"].get("horizon") or objective.max_horizon
    if isinstance(context, int) and context + horizon > n_times:
        raise ConfigError(f"window context + horizon = {context} + {horizon} = {context + horizon} steps is longer "
                          f"than the trajectories this config simulates ({n_times} times)")
    ev = c["evaluate"]["eval"]
    eval_context = ev.get("context") or context
    if eval_context + ev["horizon"] + 1 > n_times:
        raise ConfigError(f"evaluate.eval.horizon={ev['horizon']} with a context of {eval_context} steps needs "
                          f"{eval_context + ev['horizon'] + 1} saved times, but this config simulates {n_times}")
    split = c["data"]["split"]
    n_train = int(round(c["ensemble"]["members"] * split["train"]))
    if "baseline_members" in ev and n_train < 1:
        raise ConfigError(f"data.split.train={split['train']} leaves no training member of "
                          f"{c['ensemble']['members']} to fit evaluate.eval.baseline_members on")


def _is_jump_system(system) -> bool:
    """Path-sampled systems whose store carries the true generator (``rate_matrix``)."""
    from simulators.path import AbstractPathSystem

    return isinstance(system, AbstractPathSystem) and any(v.name == "rate_matrix" for v in system.variables)


def beats_baselines_until_vpt(metrics_path: Path, emulator: str, vpt: float | None, dt: float) -> dict[str, bool]:
    """For each baseline: is the emulator's RMSE below it at every lead ≤ the emulator's median VPT?"""
    import numpy as np
    import xarray as xr

    ds = xr.open_zarr(metrics_path, consolidated=False, zarr_format=3, decode_timedelta=False)
    names = [str(v) for v in ds["learner"].values]
    rmse = ds["rmse"].load()
    leads = int(max(1, round((vpt or 0.0) / dt)))
    mine = rmse.sel(learner=emulator).values[:leads]
    return {name: bool(np.all(mine < rmse.sel(learner=name).values[:leads]))
            for name in names if name != emulator}


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def format_summary(name: str, summ: Mapping[str, Any], beats: Mapping[str, bool] | None, report: Path) -> str:
    """The few lines ``dynlab run`` prints: VPT, RMSE at lead 1 and W1 against the baselines."""
    rows = [(summ["learner"], summ)] + list(summ.get("baselines", {}).items())

    def vpt(s):
        lam = s.get("vpt_median_lyapunov")
        return f"{_fmt(s.get('vpt_median'))}" + (f" ({_fmt(lam)} Λ)" if lam is not None else "")

    lines = [f"{name}: {summ['learner']} vs {', '.join(n for n, _ in rows[1:]) or 'no baselines'} "
             f"on {summ.get('n_forecasts', '?')} forecasts"]
    lines.append("  VPT median   " + " | ".join(f"{n} {vpt(s)}" for n, s in rows))
    lines.append("  RMSE lead 1  " + " | ".join(f"{n} {_fmt(s.get('rmse_lead1'))}" for n, s in rows))
    if any(s.get("wasserstein_mean") is not None for _, s in rows):
        lines.append("  W1 climate   " + " | ".join(f"{n} {_fmt(s.get('wasserstein_mean'))}" for n, s in rows))
    key = summ.get("ranking_key")
    if key and summ.get("ranking"):  # the emulator's place among the baselines, with its interval
        lo, hi = (summ.get("intervals") or {}).get(key, [None, None])
        lines.append(f"  rank {summ['rank']} of {len(summ['ranking'])} by {key}: {summ['learner']} "
                     f"{_fmt(summ.get(key))} [{_fmt(lo)}, {_fmt(hi)}]; order: {' > '.join(summ['ranking'])}")
    if beats:
        verdict = ", ".join(f"{n}: {'yes' if ok else 'no'}" for n, ok in beats.items())
        lines.append(f"  lower RMSE than the baseline at every lead up to its VPT: {verdict}")
    lines.append(f"  report: {report}")
    return "\n".join(lines)


def run(cfg: DictConfig | Mapping[str, Any], *, log: Callable[[str], None] | None = None,
        echo: Callable[[str], None] | None = None) -> RunResult:
    """Simulate (or reuse), train (or reuse/resume) and evaluate the experiment in ``cfg``.

    ``log`` gets progress lines (default stderr); ``echo`` gets the final summary
    (default stdout).
    """
    from .train import set_threads

    from ..runs import check_device

    raw = to_container(cfg)
    if raw.get("pinn") is not None:  # a PINN experiment: one solution on one domain, its own pipeline
        from ..pinn.pipeline import run_pinn

        with set_threads(raw.get("threads")):
            res = run_pinn(raw, log=log)
        (echo or print)(f"{raw.get('name')}: relative L2 {res.rel_l2:.3g} after {res.steps} steps; "
                        f"report: {res.run_dir / 'report.md'}")
        return RunResult(res.run_dir, res.run_dir, res.run_dir / "report.md", res.summary, res.seconds)
    c = validate_command("run", raw)
    if c.get("sweep"):
        raise ConfigError(f"experiment {c['name']!r} declares a sweep ({', '.join(c['sweep'].get('axes') or {})}): "
                          f"run it with `dynlab run -m experiment={c['name']}` (narrow it with e.g. learner=s4d seed=0)")
    check_device(c["device"])
    with set_threads(c["threads"]):
        return _run(c, log, echo)


def _run(c: dict[str, Any], log, echo) -> RunResult:
    from ..runs import check_run_dir
    from ..train.distributed import init_distributed
    from .evaluate import evaluate
    from .simulate import plan_simulation, simulate
    from .train import train

    name = c["name"]
    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    echo = echo or print
    dist = init_distributed(c.get("device", "cpu"))
    seconds: dict[str, float] = {}
    try:
        # --- simulate -------------------------------------------------------------------
        t0 = time.perf_counter()
        sim = {**_section(c, SimulateSchema), "seed": c["data_seed"]}  # the data seed, not the model's
        probe = dict(sim) if sim.get("out") else {**sim, "out": str(Path(c.get("cache_dir") or "data/cache") / "x.zarr")}
        plan = plan_simulation(probe)
        jump = _is_jump_system(plan.system)
        if not jump:
            _precheck(c, plan.grid.n_saves)
        if not sim.get("out"):
            sim["out"] = str(_store_path(plan, c.get("cache_dir") or "data/cache"))
        check_run_dir(c["run_dir"], stores=[sim["out"]])  # before any compute
        if dist.is_main:
            simulate(sim, log=say)
        dist.barrier()
        store = Path(sim["out"])
        seconds["simulate"] = time.perf_counter() - t0
        if jump:  # a Markov jump process: the rate-matrix baseline and its metrics, no emulator
            from .jump import jump_run

            run_dir = Path(c["run_dir"])
            summ = jump_run(c, store, run_dir, log=say, echo=echo) if dist.is_main else {}
            return RunResult(store, run_dir, run_dir / "report.md", summ, seconds)

        # --- train ----------------------------------------------------------------------
        t0 = time.perf_counter()
        train_cfg = {**_section(c, TrainSchema), "data": {**c["data"], "store": str(store)}}
        result = train(train_cfg, log=say)
        seconds["train"] = time.perf_counter() - t0
        run_dir = result.run_dir
        if not dist.is_main:
            return RunResult(store, run_dir, None, {}, seconds)

        # --- evaluate -------------------------------------------------------------------
        t0 = time.perf_counter()
        section = c.get("evaluate") or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"evaluate must be the evaluate.yaml section, got {section!r}")
        evaluated = evaluate({**dict(section), "run": str(run_dir)}, log=say)
        seconds["evaluate"] = time.perf_counter() - t0
        summ = evaluated.summary
        beats = summ.get("beats_baselines_until_vpt")  # computed in memory by evaluate (no reopening metrics.zarr)
        report = evaluated.paths.get("report")
        summ = {**summ, "beats_baselines_until_vpt": beats, "seconds": seconds}
        echo(format_summary(name, summ, beats, report))
        say("times: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
        return RunResult(store, run_dir, report, summ, seconds)
    finally:
        dist.close()
