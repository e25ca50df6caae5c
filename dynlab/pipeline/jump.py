"""Jump-process runs: ``dynlab run system=flashing_ratchet`` (or ``mjp_prior``).

A Markov-jump-process store holds, per member, a true ``rate_matrix`` and paths observed on a
regular grid (``state`` and ``time`` on ``(member, path, obs)``). Its baseline learner is the
maximum-likelihood rate matrix (:func:`dynlab.eval.jump.estimate_rate_matrix_observed`, the expm
likelihood of the observed transitions). ``jump_run`` fits it on each test member's paths and
compares it with that member's true generator by the metrics any estimate is judged on
(stationary law total variation and Hellinger distance, relaxation time, mean first-passage
times, entropy production, rate RMSE), with member-bootstrap intervals. It writes
``<run_dir>/jump.zarr``, ``summary.json`` and ``report.md``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ConfigError

__all__ = ["is_jump_store", "jump_run"]


def is_jump_store(ds) -> bool:
    """A store of observed Markov-jump paths with their true generators."""
    return "rate_matrix" in ds.data_vars and "state" in ds.data_vars and ds["state"].dims == ("member", "path", "obs")


def jump_run(c: Mapping[str, Any], store: Path, run_dir: Path, *, log: Callable[[str], None] | None = None,
             echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit and score the rate-matrix baseline on the test members of ``store``; see the module docstring."""
    import xarray as xr

    from ..data.store import open_dataset
    from ..data.windows import split_members
    from ..eval.jump import compare_rate_matrices, estimate_rate_matrix_observed
    from ..eval.stats import bootstrap
    from ..runs import check_run_dir, is_dynlab_run, mark_run_dir

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    ds = open_dataset(store)
    if not is_jump_store(ds):
        raise ConfigError(f"{store} holds no observed jump paths with their rate_matrix")
    check_run_dir(run_dir, stores=[store])
    if run_dir.exists() and any(run_dir.iterdir()) and not is_dynlab_run(run_dir):
        raise ConfigError(f"run_dir={str(run_dir)!r} is a non-empty folder that dynlab did not create")
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_run_dir(run_dir)
    split_cfg = dict(c["data"]["split"])
    split_seed = split_cfg.pop("seed", None)
    split = split_members(int(ds.sizes["member"]), split_cfg, c["seed"] if split_seed is None else split_seed)
    test = split["test"] or split["train"]
    times = np.asarray(ds["time"].isel(member=0, path=0).values, dtype=float)
    interval = float(times[1] - times[0])
    if not np.allclose(np.diff(times), interval, rtol=1e-9, atol=1e-12):
        raise ConfigError(f"{store}: the paths are not observed on a regular grid (the rate-matrix fit needs one)")
    rows = []
    say(f"fitting the maximum-likelihood rate matrix on {len(test)} test members' paths (interval {interval:g})")
    for m in test:
        truth = np.asarray(ds["rate_matrix"].isel(member=m).values, dtype=float)
        observed = np.asarray(ds["state"].isel(member=m).values)
        estimate = estimate_rate_matrix_observed(observed, interval=interval, n_states=truth.shape[0])
        rows.append(compare_rate_matrices(estimate, truth))
    names = list(rows[0])
    table = {k: np.array([r[k] for r in rows], dtype=float) for k in names}
    intervals = bootstrap(table, np.nanmedian, n_boot=1000, seed=c["seed"])
    out = xr.Dataset({k: (("member",), v) for k, v in table.items()},
                     coords={"member": ("member", np.asarray(test))})
    out.attrs.update({"learner": "rate_matrix (maximum likelihood, observed paths)", "store": str(store),
                      "interval": interval})
    out.to_zarr(run_dir / "jump.zarr", mode="w", consolidated=False)
    summary = {"learner": "rate_matrix", "store": str(store), "n_test_members": len(test),
               **{f"{k}_median": intervals[k].estimate for k in names},
               "intervals": {k: [intervals[k].low, intervals[k].high] for k in names}}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    lines = [f"# Jump-process run: {c.get('name')}", "",
             f"Maximum-likelihood rate matrix from the paths of each of {len(test)} test members (observed every "
             f"{interval:g}; expm likelihood) against that member's true generator. Medians over members with 95 % "
             "member-bootstrap intervals (B = 1000).", "", "| metric | median [95 %] |", "|---|---|"]
    lines += [f"| {k} | {intervals[k].estimate:.4g} [{intervals[k].low:.4g}, {intervals[k].high:.4g}] |"
              for k in names]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    (echo or print)(f"{c.get('name')}: rate-matrix baseline on {len(test)} test members: stationary TV "
                    f"{intervals['stationary_tv'].estimate:.3g}, relaxation-time error "
                    f"{intervals['relaxation_time_rel_error'].estimate:.3g}; report: {run_dir / 'report.md'}")
    return summary
