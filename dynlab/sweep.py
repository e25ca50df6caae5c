"""Sweeps: ``dynlab run -m experiment=quickstart seed=0,1,2 learner=s4d,mamba``.

dynlab expands the sweep itself (hydra's override grammar parses it: ``a,b``,
``range(0,3)``, ``choice(a,b)``), runs each job as one ``dynlab run`` in
``<sweep_dir>/<k-v__...>/`` (``sweep_dir`` defaults to ``runs/<name>``; the job's
folder names its swept values, e.g. ``runs/quickstart/learner-s4d__seed-0``), and writes ``<sweep_dir>/sweep.json`` and
``sweep.md``: each job's headline metrics, then their mean and spread over the
swept seeds for every other combination. Jobs that agree on the dataset share the
cached store (it is keyed by its config hash), so a seed sweep simulates once.

An experiment may declare its own sweep (``configs/experiment/compare_lorenz96.yaml``)::

    sweep:
      axes: {learner: [persistence, s4d, ...], seed: [0, 1, 2]}
      overrides: {learner: {s4d: [learner.d_model=32, ...]}}   # added to the jobs with that value

so that ``dynlab run -m experiment=compare_lorenz96`` runs it; a key given on the command
line replaces the declared axis (``learner=s4d,mamba`` narrows it). A learner without
trainable parameters gives the same result for every model seed, so it runs for the first
seed only. When learners are swept, ``compare.md`` / ``compare.json`` hold one table of
them (:mod:`dynlab.compare`). A finished job is reused and an interrupted one resumes,
so rerunning the command continues an interrupted sweep.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError

__all__ = ["expand_sweep", "plan_sweep", "run_sweep", "SweepPlan", "SEED_KEYS"]

#: keys whose values are replicates: averaged over in the summary table
SEED_KEYS = ("seed",)


def expand_sweep(overrides: Sequence[str]) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """Split overrides into fixed ones and the cartesian product of the swept ones.

    Returns ``(fixed, jobs)`` where each job is a list of ``(key, value)`` pairs.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as err:  # hydra's parse errors
        raise ConfigError(f"cannot parse the sweep: {str(err).splitlines()[0]}") from None
    fixed: list[str] = []
    axes: list[list[tuple[str, str]]] = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            key = o.get_key_element()
            values = list(o.sweep_string_iterator())
            if not values:
                raise ConfigError(f"the sweep over {key} has no values")
            axes.append([(key, v) for v in values])
        else:
            fixed.append(text)
    jobs = [list(combo) for combo in itertools.product(*axes)] if axes else [[]]
    return fixed, jobs


def _label(job: list[tuple[str, str]]) -> str:
    """The job's name in tables: ``learner=s4d,seed=0``."""
    return ",".join(f"{k}={v}" for k, v in sorted(job)) or "job"


def _folder(job: list[tuple[str, str]]) -> str:
    """The job's folder: ``learner-s4d__seed-0`` (no ``=`` or ``,``, so that the path can be
    passed as ``run=...`` on the command line without quotes)."""
    text = "__".join(f"{k}-{v}" for k, v in sorted(job)) or "job"
    return re.sub(r"[^A-Za-z0-9._+-]", "-", text)


def _headline(summary: dict[str, Any]) -> dict[str, float]:
    """The scalar numbers of a run's summary (VPT, RMSE, W1 ...), flattened one level."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and key not in ("dt", "n_forecasts"):
            out[key] = float(value)
        elif isinstance(value, dict) and key in ("intervals",):
            for k, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{key}.{k}"] = float(v)
    return out


def _fmt(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _declared(base: dict[str, Any], given: set[str]) -> tuple[list[list[tuple[str, str]]], dict[str, Any]]:
    """The axes and per-value overrides an experiment's ``sweep`` key declares (see the module
    docstring), without the keys the command line sets."""
    sweep = base.get("sweep") or {}
    if not isinstance(sweep, dict) or set(sweep) - {"axes", "overrides"}:
        raise ConfigError(f"sweep must be {{axes: {{key: [values]}}, overrides: {{key: {{value: [overrides]}}}}}}, "
                          f"got {sweep!r}")
    axes_cfg, extra = sweep.get("axes") or {}, sweep.get("overrides") or {}
    if not isinstance(axes_cfg, dict) or not isinstance(extra, dict):
        raise ConfigError(f"sweep.axes and sweep.overrides must be mappings, got {axes_cfg!r} and {extra!r}")
    axes = []
    for key, values in axes_cfg.items():
        if not isinstance(values, list) or not values or any(isinstance(v, (dict, list)) or v is None
                                                             for v in values):
            raise ConfigError(f"sweep.axes.{key} must be a non-empty list of plain values, got {values!r}")
        if key not in given:
            axes.append([(str(key), str(v).lower() if isinstance(v, bool) else str(v)) for v in values])
    for key, per_value in extra.items():
        if not isinstance(per_value, dict) or not all(isinstance(o, list) and all(isinstance(x, str) for x in o)
                                                      for o in per_value.values()):
            raise ConfigError(f"sweep.overrides.{key} must map values to lists of overrides, got {per_value!r}")
    return axes, extra


def _deterministic(cfg: dict[str, Any]) -> bool:
    """A job whose learner has no trainable parameters: every model seed gives the same result."""
    from .emulators.registry import LEARNERS

    learner = cfg.get("learner") or {}
    spec = LEARNERS.get(learner.get("name"))
    return spec is not None and not learner.get("trainable", spec.trainable)


def _train_record(run_dir: Path) -> dict[str, Any]:
    """Optimiser steps, parameters and training wall time from a run's ``done.json``."""
    try:
        done = json.loads((run_dir / "done.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: done.get(k) for k in ("steps", "n_parameters", "train_seconds")}


@dataclass
class SweepPlan:
    """The validated jobs of a sweep: ``(job, label, cfg, deterministic)`` each, and those skipped."""

    name: str
    sweep_dir: Path
    fixed: list[str]
    jobs: list[tuple[list[tuple[str, str]], str, Any, bool]]
    skipped: list[str]


def plan_sweep(overrides: Sequence[str]) -> SweepPlan:
    """Compose and validate every job of a sweep (one-line errors, nothing written)."""
    from .config import compose, to_container
    from .schemas import validate_command

    if any(o.split("=", 1)[0].lstrip("+") == "run_dir" for o in overrides):
        raise ConfigError("run_dir cannot be set in a sweep: each job gets <sweep_dir>/<swept values>/; "
                          "set sweep_dir instead")
    fixed, cli_jobs = expand_sweep(overrides)
    base = to_container(compose("run", fixed))
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    declared, extra = _declared(base, given)
    jobs = [[*d, *c] for d in (itertools.product(*declared) if declared else [()]) for c in cli_jobs]
    first_seed = {axis[0][0]: axis[0][1] for axis in declared if axis[0][0] in SEED_KEYS}
    first_seed.update({k: v for k, v in cli_jobs[0] if k in SEED_KEYS})
    sweep_dir = Path(base.get("sweep_dir") or f"runs/{base['name']}").expanduser()
    planned, skipped = [], []
    for job in jobs:
        label = _label(job)
        run_dir = str(sweep_dir / _folder(job)).replace("'", "\\'")
        more = [o for k, v in job for o in extra.get(k, {}).get(v, [])]
        cfg = compose("run", [*fixed, *(f"{k}={v}" for k, v in job), *more, f"run_dir='{run_dir}'"])
        cfg.sweep = {}  # a job of the sweep is one run
        plain = to_container(cfg)
        validate_command("run", plain)
        deterministic = _deterministic(plain)
        if deterministic and any(v != first_seed.get(k, v) for k, v in job if k in SEED_KEYS):
            skipped.append(label)
            continue
        planned.append((job, label, cfg, deterministic))
    return SweepPlan(base["name"], sweep_dir, fixed, planned, skipped)


JOB_RECORD = "sweep_job.json"


def run_sweep(overrides: Sequence[str], *, log: Callable[[str], None] | None = None,
              echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every job of a sweep and write ``sweep.json`` and ``sweep.md`` (and, when learners are
    swept, ``compare.md``, ``compare.json`` and ``compare.png``); returns the record.

    Each finished job leaves ``<run_dir>/sweep_job.json`` (its record and config): a rerun of
    the sweep reuses it when the config is unchanged, so an interrupted sweep continues where
    it stopped."""
    from .config import to_container
    from .pipeline.run import run

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    echo = echo or print
    plan = plan_sweep(overrides)
    say(f"sweep of {len(plan.jobs)} job(s) into {plan.sweep_dir}"
        + (f" ({len(plan.skipped)} skipped: learners without trainable parameters run for the first seed only)"
           if plan.skipped else ""))
    records = []
    for i, (job, label, cfg, deterministic) in enumerate(plan.jobs, 1):
        plain = to_container(cfg)
        saved = _read_job(Path(plain["run_dir"]), plain)
        if saved is not None:
            say(f"sweep job {i}/{len(plan.jobs)}: {label} (finished before: reused)")
            records.append(saved)
            continue
        say(f"sweep job {i}/{len(plan.jobs)}: {label}")
        result = run(cfg, log=say, echo=lambda text: None)
        summary = {k: v for k, v in result.summary.items() if k not in ("baselines", "differences")}
        rec = {"job": label, "overrides": dict(job), "run_dir": str(result.run_dir),
               "store": str(result.store), "metrics": _headline(result.summary),
               "seconds": result.seconds, "deterministic": deterministic,
               "train": _train_record(Path(result.run_dir)), "summary": summary}
        (Path(result.run_dir) / JOB_RECORD).write_text(json.dumps({"config": plain, "record": rec}, indent=1,
                                                                  default=str) + "\n")
        records.append(rec)
    record = {"sweep_dir": str(plan.sweep_dir), "fixed": plan.fixed, "skipped": plan.skipped, "jobs": records,
              "groups": _groups(records)}
    plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    (plan.sweep_dir / "sweep.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    text = _markdown(record)
    (plan.sweep_dir / "sweep.md").write_text(text)
    if any("learner" in r["overrides"] for r in records):
        from .compare import write_comparison

        text = write_comparison(record, plan.sweep_dir, name=plan.name)
    echo(text)
    return record


def _read_job(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """A finished job's record, if ``run_dir`` holds one for the same config."""
    try:
        saved = json.loads((run_dir / JOB_RECORD).read_text())
    except (OSError, ValueError):
        return None
    same = json.loads(json.dumps(config, default=str)) == saved.get("config")
    return saved.get("record") if same and (run_dir / "summary.json").exists() else None


def _groups(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of each metric over the seed keys, per other combination."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        key = ",".join(f"{k}={v}" for k, v in sorted(r["overrides"].items()) if k not in SEED_KEYS) or "all"
        groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        names = sorted(set().union(*(m["metrics"] for m in members)))
        stats = {}
        for name in names:
            values = [m["metrics"][name] for m in members if name in m["metrics"]
                      and math.isfinite(m["metrics"][name])]
            stats[name] = {"mean": statistics.fmean(values) if values else math.nan,
                           "std": statistics.stdev(values) if len(values) > 1 else math.nan, "n": len(values)}
        out.append({"group": key, "jobs": [m["job"] for m in members], "metrics": stats})
    return out


def _markdown(record: dict[str, Any]) -> str:
    jobs = record["jobs"]
    names = sorted(set().union(*(j["metrics"] for j in jobs))) if jobs else []
    lines = [f"# Sweep in `{record['sweep_dir']}`", "",
             f"Fixed overrides: `{' '.join(record['fixed']) or '(none)'}`", "", "## Jobs", "",
             "| job | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for j in jobs:
        lines.append(f"| {j['job']} | " + " | ".join(_fmt(j["metrics"].get(n, math.nan)) for n in names) + " |")
    lines += ["", f"## Mean ± standard deviation over {', '.join(SEED_KEYS)}", "",
              "| group | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for g in record["groups"]:
        n = max((s["n"] for s in g["metrics"].values()), default=0)
        cells = [f"{_fmt(g['metrics'][m]['mean'])} ± {_fmt(g['metrics'][m]['std'])}" if m in g["metrics"] else "—"
                 for m in names]
        lines.append(f"| {g['group']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
