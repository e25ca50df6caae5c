r"""One table of every learner: ``compare.md`` / ``compare.json`` / ``compare.png`` of a learner sweep.

``dynlab run -m experiment=compare_lorenz96`` (or ``compare_hamiltonian``) trains every
learner on the same store with the same optimiser steps and seeds and evaluates each run
with the same metrics (:mod:`dynlab.sweep`); this module folds the jobs into one row per
learner.

For a metric :math:`m` with per-seed estimates :math:`m_1 … m_n` (n seeds; learners without
trainable parameters run once, n = 1) a cell reads ``mean [lo, hi] ±s``:

* mean :math:`\bar m = \frac1n\sum_i m_i`;
* ``[lo, hi]``: the run's 95 % bootstrap interval (test members or reference runs resampled,
  the uncertainty of the evaluation data), its bounds averaged over the seeds, where the
  evaluation reports one (VPT, RMSE, ACC, the climate ratios, the physics checks);
* ``±s``: the sample standard deviation of :math:`m_i` over seeds (training randomness),
  shown when n ≥ 2.

Columns: forecast skill (VPT in Lyapunov times where λ₁ is known, RMSE at lead 1), the
climate scores as ratios to the truth-vs-truth floor (1 = as close as two samples of the
truth), the leading Lyapunov exponent of the learner's one-step map (the system's in the
caption), the family's physics checks (``physics_*``: energy drift and energy-MSE for
Hamiltonian systems), and the cost: optimiser steps, trainable parameters and the wall time
of training and evaluation.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["comparison_rows", "comparison_markdown", "write_comparison", "COLUMNS"]

#: (summary key, column title, interval key in the summary's ``intervals`` / ``physics_intervals``)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("vpt_median_lyapunov", "VPT (Λ)"),
    ("vpt_median", "VPT (time)"),
    ("rmse_lead1", "RMSE lead 1"),
    ("rmse_last", "RMSE at H"),
    ("acc_lead1", "ACC lead 1"),
    ("blowup", "blow-up"),
    ("climate_wasserstein_ratio", "W1 / floor"),
    ("climate_sliced_wasserstein_ratio", "sliced W1 / floor"),
    ("climate_acf_ratio", "ACF / floor"),
    ("climate_spec_time_ratio", "spectrum f / floor"),
    ("climate_spec_space_ratio", "spectrum k / floor"),
    ("lyapunov_1", "λ₁ of the map"),
    ("kaplan_yorke_emulator", "Kaplan–Yorke dim."),
)
_COST = (("steps", "steps"), ("n_parameters", "parameters"), ("train_seconds", "train s"),
         ("evaluate_seconds", "evaluate s"))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _values(summary: Mapping[str, Any]) -> dict[str, tuple[float, float | None, float | None]]:
    """``{key: (estimate, low, high)}`` of one run's summary (intervals where it has them)."""
    intervals = {**(summary.get("intervals") or {}),
                 **{f"physics_{k}": v for k, v in (summary.get("physics_intervals") or {}).items()},
                 **{f"climate_{k}": v for k, v in (summary.get("climate_intervals") or {}).items()}}
    out: dict[str, tuple[float, float | None, float | None]] = {}
    keys = [k for k, _ in COLUMNS] + sorted(k for k in summary if k.startswith("physics_") and k != "physics_intervals")
    for key in keys:
        value = summary.get(key)
        if key == "lyapunov_1":
            exps = summary.get("lyapunov_emulator") or []
            value = exps[0] if exps else None
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = (intervals.get(key) or [None, None])[:2]
        out[key] = (float(value), lo if _finite(lo) else None, hi if _finite(hi) else None)
    return out


def comparison_rows(jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per learner from a sweep's job records (``sweep.json``'s ``jobs``), in sweep order.

    Each row: ``learner``, ``n`` (seeds), ``metrics`` ``{key: {mean, low, high, sd, n}}`` and
    ``cost`` ``{steps, n_parameters, train_seconds, evaluate_seconds}`` (means over seeds).
    """
    if not isinstance(jobs, Sequence) or isinstance(jobs, (str, bytes)):
        raise ValueError(f"jobs must be a sequence of sweep job records, got {type(jobs).__name__}")
    by_learner: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        if not isinstance(job, Mapping) or "summary" not in job:
            raise ValueError(f"a sweep job record needs a 'summary', got {job!r:.80}")
        name = (job.get("overrides") or {}).get("learner") or job["summary"].get("learner") or "?"
        by_learner.setdefault(str(name), []).append(job)
    rows = []
    for name, runs in by_learner.items():
        per_run = [_values(r["summary"]) for r in runs]
        metrics = {}
        for key in dict.fromkeys(k for v in per_run for k in v):
            cells = [v[key] for v in per_run if key in v and math.isfinite(v[key][0])]
            if not cells:
                metrics[key] = {"mean": math.nan, "low": None, "high": None, "sd": None, "n": 0}
                continue
            est = [c[0] for c in cells]
            lows = [c[1] for c in cells if c[1] is not None]
            highs = [c[2] for c in cells if c[2] is not None]
            both = len(lows) == len(cells) and len(highs) == len(cells)
            metrics[key] = {"mean": statistics.fmean(est),
                            "low": statistics.fmean(lows) if both else None,
                            "high": statistics.fmean(highs) if both else None,
                            "sd": statistics.stdev(est) if len(est) > 1 else None, "n": len(est)}
        cost = {}
        for key, _ in _COST:
            if key == "evaluate_seconds":
                vals = [(r.get("seconds") or {}).get("evaluate") for r in runs]
            else:
                vals = [(r.get("train") or {}).get(key) for r in runs]
            vals = [float(v) for v in vals if _finite(v)]
            cost[key] = statistics.fmean(vals) if vals else None
        if all(r.get("deterministic") for r in runs):
            cost["steps"] = 0
        rows.append({"learner": name, "n": len(runs), "metrics": metrics, "cost": cost,
                     "run_dirs": [r.get("run_dir") for r in runs]})
    return rows


def _num(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—" if v is None or math.isnan(v) else ("∞" if v > 0 else "−∞")
    return f"{v:.3g}"


def _cell(m: Mapping[str, Any] | None) -> str:
    if not m or m["n"] == 0:
        return "—"
    text = _num(m["mean"])
    if m["low"] is not None and m["high"] is not None:
        text += f" [{_num(m['low'])}, {_num(m['high'])}]"
    if m["sd"] is not None:
        text += f" ±{_num(m['sd'])}"
    return text


def _title(key: str) -> str:
    titles = dict(COLUMNS)
    return titles.get(key, key.removeprefix("physics_").replace("_", " "))


def comparison_markdown(rows: Sequence[Mapping[str, Any]], *, name: str = "comparison",
                        system_lyapunov: Sequence[float] | None = None, lyapunov_time: float | None = None,
                        notes: Sequence[str] = (), columns: Sequence[str] | None = None) -> str:
    """The table as Markdown: the metric ``columns`` given (default: every one present in a row;
    see the module docstring), then the cost columns."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r["metrics"])
            if any(r["metrics"].get(k, {}).get("n") for r in rows)]
    if columns is not None:
        unknown = [c for c in columns if c not in keys]
        if unknown:
            raise ValueError(f"no row has the column(s) {unknown}; present: {keys}")
        keys = list(columns)
    else:
        if "vpt_median_lyapunov" in keys and "vpt_median" in keys:
            keys.remove("vpt_median")
        order = {k: i for i, (k, _) in enumerate(COLUMNS)}
        keys.sort(key=lambda k: order.get(k, len(order)))
    lines = [f"# {name}: every learner on the same data", "",
             "Cells: mean over seeds [95 % member-bootstrap interval, bounds averaged over seeds] "
             "±standard deviation over seeds; learners without trainable parameters run once (n = 1). "
             "Climate columns are ratios to the truth-vs-truth floor (1: as close as two samples of the truth)."]
    if system_lyapunov:
        lines.append(f"The system's leading Lyapunov exponents: {', '.join(f'{x:.3g}' for x in system_lyapunov)}"
                     + (f" (Lyapunov time {lyapunov_time:.3g})." if lyapunov_time else "."))
    lines += [*notes, "", "| learner | n | " + " | ".join(_title(k) for k in keys) + " | "
              + " | ".join(t for _, t in _COST) + " |",
              "|---|---|" + "---|" * (len(keys) + len(_COST))]
    for r in rows:
        cost = r["cost"]
        costs = [(str(int(cost[k])) if cost.get(k) is not None else "—") if k in ("steps", "n_parameters")
                 else (f"{cost[k]:.1f}" if cost.get(k) is not None else "—") for k, _ in _COST]
        lines.append(f"| {r['learner']} | {r['n']} | " + " | ".join(_cell(r["metrics"].get(k)) for k in keys)
                     + " | " + " | ".join(costs) + " |")
    return "\n".join(lines) + "\n"


def _figure(rows: Sequence[Mapping[str, Any]], path: Path, name: str) -> None:
    """Bar chart of the headline skill per learner with its interval and the seed values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = next((k for k in ("vpt_median_lyapunov", "vpt_median", "rmse_lead1")
                if any(r["metrics"].get(k, {}).get("n") for r in rows)), None)
    if key is None:
        return
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(rows) + 2), 3.4))
    for i, r in enumerate(rows):
        m = r["metrics"].get(key)
        if not m or not m["n"] or not math.isfinite(m["mean"]):
            continue
        ax.bar(i, m["mean"], color="tab:blue" if r["cost"].get("steps") else "tab:gray", alpha=0.8)
        if m["low"] is not None and m["high"] is not None:
            ax.errorbar(i, m["mean"], yerr=[[m["mean"] - m["low"]], [m["high"] - m["mean"]]], color="k", capsize=3)
    ax.set_xticks(range(len(rows)), [r["learner"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel(_title(key))
    ax.set_title(f"{name}: trained (blue) and fitted/fixed (grey) learners")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_comparison(record: Mapping[str, Any], out_dir: str | Path, *, name: str = "comparison") -> str:
    """Write ``compare.md``, ``compare.json`` and ``compare.png`` into ``out_dir`` from a sweep
    record (:func:`dynlab.sweep.run_sweep`); returns the Markdown."""
    out = Path(out_dir)
    jobs = record.get("jobs") if isinstance(record, Mapping) else None
    if not jobs:
        raise ValueError(f"the sweep record holds no jobs to compare: {record!r:.80}")
    rows = comparison_rows(jobs)
    first = next((j["summary"] for j in jobs if j["summary"].get("lyapunov_system")), {})
    notes = []
    if record.get("skipped"):
        notes.append(f"{len(record['skipped'])} job(s) not run: a learner without trainable parameters gives "
                     "the same result for every seed.")
    text = comparison_markdown(rows, name=name, system_lyapunov=first.get("lyapunov_system"),
                               lyapunov_time=next((j["summary"].get("lyapunov_time") for j in jobs
                                                   if j["summary"].get("lyapunov_time")), None), notes=notes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(text)
    (out / "compare.json").write_text(json.dumps({"name": name, "rows": rows}, indent=1, default=str) + "\n")
    try:
        _figure(rows, out / "compare.png", name)
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return text
