"""Sweeps: ``dynlab run -m experiment=quickstart seed=0,1,2 learner=s4d,mamba``.

dynlab expands the sweep itself (hydra's override grammar parses it: ``a,b``,
``range(0,3)``, ``choice(a,b)``), runs each job as one ``dynlab run`` in
``<sweep_dir>/<k=v,...>/`` (``sweep_dir`` defaults to ``runs/<name>``; the job's
folder names its swept values), and writes ``<sweep_dir>/sweep.json`` and
``sweep.md``: each job's headline metrics, then their mean and spread over the
swept seeds for every other combination. Jobs that agree on the dataset share the
cached store (it is keyed by its config hash), so a seed sweep simulates once.
"""
from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError

__all__ = ["expand_sweep", "run_sweep", "SEED_KEYS"]

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
    text = ",".join(f"{k}={v}" for k, v in sorted(job)) or "job"
    return text.replace("/", "_").replace("\\", "_")


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


def run_sweep(overrides: Sequence[str], *, log: Callable[[str], None] | None = None,
              echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every job of a sweep and write ``sweep.json`` and ``sweep.md``; returns the record."""
    from .config import compose, to_container
    from .pipeline.run import run

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    echo = echo or print
    if any(o.split("=", 1)[0].lstrip("+") == "run_dir" for o in overrides):
        raise ConfigError("run_dir cannot be set in a sweep: each job gets <sweep_dir>/<swept values>/; "
                          "set sweep_dir instead")
    fixed, jobs = expand_sweep(overrides)
    base = to_container(compose("run", fixed))
    sweep_dir = Path(base.get("sweep_dir") or f"runs/{base['name']}").expanduser()
    # validate every job before any runs (one-line errors, nothing written)
    configs = []
    for job in jobs:
        label = _label(job)
        run_dir = str(sweep_dir / label).replace("'", "\\'")
        cfg = compose("run", [*fixed, *(f"{k}={v}" for k, v in job), f"run_dir='{run_dir}'"])
        from .schemas import validate_command

        validate_command("run", to_container(cfg))
        configs.append((job, label, cfg))
    say(f"sweep of {len(jobs)} job(s) into {sweep_dir}")
    records = []
    for i, (job, label, cfg) in enumerate(configs, 1):
        say(f"sweep job {i}/{len(jobs)}: {label}")
        result = run(cfg, log=say, echo=lambda text: None)
        records.append({"job": label, "overrides": dict(job), "run_dir": str(result.run_dir),
                        "store": str(result.store), "metrics": _headline(result.summary),
                        "seconds": result.seconds})
    record = {"sweep_dir": str(sweep_dir), "fixed": fixed, "jobs": records, "groups": _groups(records)}
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
    (sweep_dir / "sweep.md").write_text(_markdown(record))
    echo(_markdown(record))
    return record


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
