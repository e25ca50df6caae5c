"""``run_pinn(cfg)``: train a PINN on one problem, solve it with the reference solver, compare.

The composed config holds ``system`` (the equation and its parameters), ``time``
(the reference grid; ``pinn.t_end`` or ``time.t_end`` ends the domain), ``name``,
``run_dir`` (default ``runs/<name>``) and the ``pinn:`` section
(:class:`~dynlab.pinn.config.PinnConfig`). The run directory gets

* ``.dynlab-run`` (a marker written at creation: a non-empty folder without it is refused),
* ``config.yaml``, ``metrics.jsonl`` (training lines and the final record),
* ``results.zarr`` (xarray: ``u_pinn``, ``u_ref``, ``error``, ``rel_l2_t``),
* ``error_field.png``, ``error_in_time.png`` and ``report.md``.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from simulators import make_system
from ..config import to_container
from ..errors import ConfigError
from .config import PinnConfig
from .evaluate import plot_error_field, plot_error_in_time, relative_l2, relative_l2_in_time
from .reference import Reference, reference_solution
from .residuals import residual_for
from .train import PinnProblem, PinnSolution, train_pinn

__all__ = ["run_pinn", "PinnResult", "prepare_run_dir", "MARKER"]

MARKER = ".dynlab-run"


@dataclass
class PinnResult:
    """Where the run is and its headline numbers."""

    run_dir: Path
    rel_l2: float
    steps: int
    seconds: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def prepare_run_dir(path: Path) -> Path:
    """Create ``path`` with the marker; refuse a non-empty folder dynlab did not create."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"run_dir {str(path)!r} exists and is not a folder")
        if any(path.iterdir()) and not (path / MARKER).is_file():
            raise ConfigError(f"run_dir {str(path)!r} is not empty and was not made by dynlab (no {MARKER}); "
                              "choose another run_dir")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("dynlab run directory\n")
    return path


def _system_params(section: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, Mapping) or "name" not in section:
        raise ConfigError("the config needs a system section with a name (system=<name>)")
    params = {k: v for k, v in section.items() if k != "name"}
    return str(section["name"]), params


def build_problem(system, ref: Reference, t_end: float) -> PinnProblem:
    """The PINN problem matching the reference: same equation, initial state and domain."""
    residual = residual_for(system)
    if residual.kind == "pde":
        p = system.params
        return PinnProblem(residual, 0.0, t_end, ref.initial, 1, x_min=p.x_min, length=p.length)
    return PinnProblem(residual, 0.0, t_end, ref.initial, int(system.state_shape[0]))


def predict(solution: PinnSolution, ref: Reference) -> torch.Tensor:
    """The PINN on the reference grid."""
    return solution.predict(ref.times, ref.x)


def run_pinn(cfg: DictConfig | Mapping[str, Any], *, log: Callable[[str], None] | None = None) -> PinnResult:
    """Train, reference-solve and evaluate the PINN experiment in ``cfg`` (see the module docstring)."""
    c = to_container(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    if "pinn" not in c:
        raise ConfigError("the config has no pinn section; use experiment=pinn_<name>")
    pcfg = PinnConfig.from_dict(c["pinn"])
    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    name = str(c.get("name") or "pinn")
    time_cfg = c.get("time") or {}
    for key in ("dt", "save_every", "t_end"):
        if key not in time_cfg:
            raise ConfigError(f"the config has no time.{key}")
    t_end = float(pcfg.t_end if pcfg.t_end is not None else time_cfg["t_end"])
    sys_name, params = _system_params(c.get("system"))
    try:
        system = make_system(sys_name, **params)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    residual_for(system)  # refuse a system without a residual before any compute
    run_dir = prepare_run_dir(Path(c.get("run_dir") or f"runs/{name}"))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(c)))
    metrics = (run_dir / "metrics.jsonl").open("w")

    def emit(record: dict[str, Any]) -> None:
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        if record.get("event") == "window_end":
            say(f"window {record['window']} done at t={record['t']:g} after {record['steps']} steps "
                f"({record['seconds']:.1f} s)" + (f", rel L2 so far {record['rel_l2_so_far']:.3g}"
                                                  if "rel_l2_so_far" in record else ""))

    try:
        threads = c.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        say(f"reference: {sys_name} on [0, {t_end:g}]")
        ref = reference_solution(system, time_cfg, t_end=t_end, seed=int(c.get("seed", 0) or 0),
                                 initial_state=pcfg.initial_state)
        problem = build_problem(system, ref, t_end)

        def partial_error(sol: PinnSolution) -> float:
            upto = sol.edges[len(sol.models)]
            keep = ref.times <= upto + 1e-12
            return relative_l2(sol.predict(ref.times[keep], ref.x), ref.u[keep])

        say(f"training the PINN: {pcfg.windows} window(s) x <= {pcfg.steps} steps, causal "
            f"{'on' if pcfg.causal.enabled else 'off'}")
        solution = train_pinn(problem, pcfg, log=emit, evaluate=partial_error)
        u = predict(solution, ref)
        rel = relative_l2(u, ref.u)
        rel_t = relative_l2_in_time(u, ref.u)
        summary = {"event": "final", "system": sys_name, "rel_l2": rel, "steps": solution.steps,
                   "pinn_seconds": solution.seconds, "reference_seconds": ref.seconds,
                   "reference_solver": ref.solver, "t_end": t_end, "windows": pcfg.windows,
                   "rel_l2_end": float(rel_t[-1])}
        emit(summary)
    finally:
        metrics.close()
    _write_results(run_dir, ref, u, rel_t, summary)
    title = f"{name}: relative L2 {rel:.3g}"
    plot_error_field(run_dir / "error_field.png", ref.times, u, ref.u, ref.x, title)
    plot_error_in_time(run_dir / "error_in_time.png", ref.times, rel_t, title)
    _write_report(run_dir, name, pcfg, summary)
    say(f"{name}: relative L2 {rel:.3g} after {solution.steps} steps ({solution.seconds:.1f} s; "
        f"reference {ref.seconds:.2f} s); report: {run_dir / 'report.md'}")
    return PinnResult(run_dir, rel, solution.steps,
                      {"pinn": solution.seconds, "reference": ref.seconds}, summary)


def _write_results(run_dir: Path, ref: Reference, u: torch.Tensor, rel_t: torch.Tensor, summary) -> None:
    import xarray as xr

    dims = ("time", "x") if ref.x is not None else ("time", "component")
    coords = {"time": ("time", ref.times.numpy(), {"units": "1", "long_name": "model time"})}
    if ref.x is not None:
        coords["x"] = ("x", ref.x.numpy(), {"units": "1", "long_name": "position"})
    ds = xr.Dataset(
        {"u_pinn": (dims, u.numpy(), {"long_name": "PINN solution", "units": "1"}),
         "u_ref": (dims, ref.u.numpy(), {"long_name": f"reference solution ({ref.solver})", "units": "1"}),
         "error": (dims, (u - ref.u).numpy(), {"long_name": "PINN minus reference", "units": "1"}),
         "rel_l2_t": (("time",), rel_t.numpy(), {"long_name": "relative L2 error at each time", "units": "1"})},
        coords=coords, attrs={k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    ds.to_zarr(run_dir / "results.zarr", mode="w", zarr_format=3, consolidated=True)


def _fmt(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else str(v)


def _write_report(run_dir: Path, name: str, pcfg: PinnConfig, s: dict[str, Any]) -> None:
    lines = [f"# PINN: {name}", "",
             f"System `{s['system']}` on t ∈ [0, {_fmt(s['t_end'])}], {pcfg.windows} time window(s), "
             f"{pcfg.network.arch} {pcfg.network.depth}×{pcfg.network.width}, {pcfg.dtype}, "
             f"causal {'on' if pcfg.causal.enabled else 'off'}, exact IC {'on' if pcfg.exact_ic else 'off'}.", "",
             "| quantity | value |", "|---|---|",
             f"| relative L2 error (whole domain) | {_fmt(s['rel_l2'])} |",
             f"| relative L2 error at t_end | {_fmt(s['rel_l2_end'])} |",
             f"| optimiser steps | {s['steps']} |",
             f"| PINN training time (s) | {_fmt(s['pinn_seconds'])} |",
             f"| reference solver time (s) | {_fmt(s['reference_seconds'])} ({s['reference_solver']}) |", "",
             "![error field](error_field.png)", "", "![error in time](error_in_time.png)", ""]
    (run_dir / "report.md").write_text("\n".join(lines))
