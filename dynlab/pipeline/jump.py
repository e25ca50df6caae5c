"""Jump-process runs: ``dynlab run system=flashing_ratchet`` (or ``mjp_prior``), and ``dynlab evaluate`` on them.

A Markov-jump-process store holds, per member, a true ``rate_matrix`` and paths observed on a
regular grid (``state`` and ``time`` on ``(member, path, obs)``). Its baseline learner is the
maximum-likelihood rate matrix (:func:`dynlab.eval.jump.estimate_rate_matrix_observed`, the expm
likelihood of the observed transitions). On each test member's paths, these estimates are compared
with that member's true generator by the metrics any estimate is judged on (stationary law total
variation and Hellinger distance, relaxation time, mean first-passage times, entropy production,
rate RMSE; :func:`dynlab.eval.jump.compare_rate_matrices`):

* ``mle``: the expm-likelihood MLE;
* ``mle_exact``: where the store keeps the exact jump records (``keep_jumps=true``), the closed-form
  MLE :math:`n_{ij}/T_i` (:func:`~dynlab.eval.jump.estimate_rate_matrix`): what the grid loses;
* ``one_step``: the naive :math:`(\\hat P − I)/Δ` (:func:`~dynlab.eval.jump.estimate_rate_matrix_one_step`),
  biased by multiple jumps between observations: what the expm likelihood buys;
* ``perturbed``: the true generator with every rate times :math:`e^{0.5 z}` (a control that must fail).

Every distance is also divided by its sampling floor (:func:`dynlab.eval.jump.sampling_floor`:
half the distance between MLEs on two random halves of the member's paths, the distance the
full-data MLE has from the truth by noise alone): ≈ 1 is as good as the data allow, ≫ 1 is a
bias. The stationary check (:func:`dynlab.testing.assert_stationary_distribution_close`) passes a
member when its total variation is at most 3 × its floor. Medians over members with
member-bootstrap intervals. ``jump_run`` records its settings in ``jump_run.json`` (the mark of a
jump run) and writes ``jump.zarr``, ``summary.json`` and ``report.md``; :func:`evaluate_jump_run`
(``dynlab evaluate run=<dir>``) recomputes them from the store with the recorded settings.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, StoreError

__all__ = ["is_jump_store", "is_jump_run", "jump_run", "evaluate_jump_run", "score_jump_members", "ESTIMATORS",
           "RUN_RECORD"]

#: the file that marks a jump run and records how it was scored
RUN_RECORD = "jump_run.json"
#: estimator name -> its description in the report
ESTIMATORS = {"mle": "maximum likelihood (expm of the observed transitions)",
              "mle_exact": "maximum likelihood n_ij / T_i from the exact jump paths (stores with keep_jumps=true)",
              "one_step": "one-step (P̂ − I)/Δ from observed transition frequencies",
              "perturbed": "control: the true generator, each rate × exp(s z), z ~ N(0, 1)"}
#: the stationary check's allowance: total variation at most this many sampling floors
STATIONARY_MAX_RATIO = 3.0


def is_jump_store(ds) -> bool:
    """A store of observed Markov-jump paths with their true generators."""
    return "rate_matrix" in ds.data_vars and "state" in ds.data_vars and ds["state"].dims == ("member", "path", "obs")


def is_jump_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` was written by :func:`jump_run` (it holds :data:`RUN_RECORD`)."""
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == "jump_process"
    except ValueError:
        return False


def _regular_interval(ds, store) -> float:
    times = np.asarray(ds["time"].isel(member=0, path=0).values, dtype=float)
    interval = float(times[1] - times[0])
    if not np.allclose(np.diff(times), interval, rtol=1e-9, atol=1e-12):
        raise ConfigError(f"{store}: the paths are not observed on a regular grid (the rate-matrix fit needs one)")
    return interval


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _exact_paths(ds, say: Callable[[str], None]) -> bool:
    """Whether ``ds`` keeps every path's full jump record (``keep_jumps=true``, none cut short)."""
    if not all(v in ds.data_vars for v in ("jump_time", "jump_state", "n_events")):
        return False
    need, room = int(ds["n_events"].max()), int(ds.sizes[ds["jump_time"].dims[-1]])
    if need > room:
        say(f"exact-path MLE skipped: a path has {need} jump-record entries, the store keeps {room} (max_events)")
        return False
    return True


def score_jump_members(ds, members: Sequence[int], *, interval: float, seed: int, n_splits: int = 4,
                       perturbation: float = 0.5, log: Callable[[str], None] | None = None):
    """Every estimator's metrics, each member's sampling floors and the ratios, for ``members`` of ``ds``.

    Returns an ``xarray.Dataset`` on ``(estimator, member)``: each key of
    :func:`~dynlab.eval.jump.compare_rate_matrices`; ``<k>_floor`` ``(member,)`` and
    ``<k>_ratio`` ``(estimator, member)`` for the keys of :data:`~dynlab.eval.jump.FLOOR_METRICS`;
    ``stationary_check`` (bool: total variation ≤ 3 × its floor). The floor's halvings and the
    perturbation of member ``m`` are seeded by ``(seed, m)``. ``mle_exact`` is scored where the
    store keeps the exact jump records (observed on ``[0, last observation time]``); its ratio to
    the grid floor below 1 is the information the observation grid loses.
    """
    import xarray as xr

    from ..eval.jump import (FLOOR_METRICS, compare_rate_matrices, estimate_rate_matrix, estimate_rate_matrix_observed,
                             estimate_rate_matrix_one_step, floor_ratios, perturb_rate_matrix, sampling_floor)
    from ..testing import assert_stationary_distribution_close

    if not members:
        raise ValueError("members is empty: give at least one member to score")
    say = log or (lambda msg: None)
    exact = _exact_paths(ds, say)
    names = [e for e in ESTIMATORS if e != "mle_exact" or exact]
    metrics: dict[str, list] = {}
    floors: dict[str, list] = {k: [] for k in FLOOR_METRICS}
    checks = []
    for m in members:
        truth = np.asarray(ds["rate_matrix"].sel(member=m).values, dtype=float)
        observed = np.asarray(ds["state"].sel(member=m).values)
        n = truth.shape[0]
        estimates = {"mle": estimate_rate_matrix_observed(observed, interval=interval, n_states=n,
                                                            standard_errors=False).rate_matrix,
                     "one_step": estimate_rate_matrix_one_step(observed, interval=interval, n_states=n).rate_matrix,
                     "perturbed": perturb_rate_matrix(truth, scale=perturbation, seed=_seed(seed, m, 1))}
        if exact:
            t_end = float(np.asarray(ds["time"].sel(member=m).values).max())
            estimates["mle_exact"] = estimate_rate_matrix(
                np.asarray(ds["jump_time"].sel(member=m).values), np.asarray(ds["jump_state"].sel(member=m).values),
                t_end=t_end, n_states=n, n_events=np.asarray(ds["n_events"].sel(member=m).values)).rate_matrix
        floor = sampling_floor(observed, interval=interval, n_states=n, n_splits=n_splits, seed=_seed(seed, m, 0))
        row = []
        for name in names:
            scores = compare_rate_matrices(estimates[name], truth)
            scores.update({f"{k}_ratio": v for k, v in floor_ratios(scores, floor).items()})
            for k, v in scores.items():
                metrics.setdefault(k, []).append(v)
            try:
                assert_stationary_distribution_close(estimates[name], truth, floor=floor["stationary_tv"],
                                                     max_ratio=STATIONARY_MAX_RATIO)
                row.append(True)
            except AssertionError:
                row.append(False)
        checks.append(row)
        for k in FLOOR_METRICS:
            floors[k].append(floor[k])
        say(f"member {m}: stationary TV {metrics['stationary_tv'][-len(names)]:.3g} (mle) vs floor "
            f"{floor['stationary_tv']:.3g}")
    shape = (len(members), len(names))
    data = {k: (("estimator", "member"), np.asarray(v, dtype=float).reshape(shape).T) for k, v in metrics.items()}
    data.update({f"{k}_floor": (("member",), np.asarray(v, dtype=float)) for k, v in floors.items()})
    data["stationary_check"] = (("estimator", "member"), np.asarray(checks, dtype=bool).T)
    return xr.Dataset(data, coords={"estimator": ("estimator", np.asarray(names, dtype=object)),
                                    "member": ("member", np.asarray(members, dtype=np.int64))})


def _summarize(table, record: Mapping[str, Any]) -> dict[str, Any]:
    """Medians over members with member-bootstrap intervals of every variable of ``table`` (one
    bootstrap, the same member draws for every column)."""
    import warnings

    from ..eval.jump import FLOOR_METRICS
    from ..eval.stats import bootstrap

    names = [str(e) for e in table["estimator"].values]
    keys = [str(k) for k in table.data_vars if "estimator" in table[k].dims and k != "stationary_check"]
    columns = {(e, k): table[k].sel(estimator=e).values for e in names for k in keys}
    columns.update({("floor", k): table[f"{k}_floor"].values for k in FLOOR_METRICS})
    matrix = np.stack([np.asarray(v, dtype=float) for v in columns.values()], axis=1)  # (member, column)

    def median(a: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (e.g. an infinite entropy production)
            return np.nanmedian(a, axis=0)

    iv = bootstrap(matrix, median, n_boot=record["n_boot"], seed=record["seed"])["value"]
    cells = {key: {"median": float(iv.estimate[i]), "interval": [float(iv.low[i]), float(iv.high[i])]}
             for i, key in enumerate(columns)}
    estimates = {e: {k: cells[e, k] for k in keys if not k.endswith("_ratio")} for e in names}
    ratios = {e: {k: cells[e, f"{k}_ratio"] for k in FLOOR_METRICS} for e in names}
    floors = {k: cells["floor", k] for k in FLOOR_METRICS}
    passed = {e: int(table["stationary_check"].sel(estimator=e).values.sum()) for e in names}
    mle = estimates["mle"]
    return {"kind": "jump_process", "learner": "rate_matrix", "store": record["store"],
            "n_test_members": int(table.sizes["member"]), "members": [int(m) for m in table["member"].values],
            "sample": {k: record[k] for k in ("n_paths", "n_obs", "interval", "n_splits", "n_boot", "seed",
                                              "perturbation")},
            # the MLE's medians and intervals under the keys jump runs have always written
            **{f"{k}_median": v["median"] for k, v in mle.items()},
            "intervals": {k: v["interval"] for k, v in mle.items()},
            "estimates": estimates, "floors": floors, "floor_ratios": ratios,
            "stationary_check": {e: {"passed": passed[e], "of": int(table.sizes["member"]),
                                     "ok": passed[e] == int(table.sizes["member"]),
                                     "max_ratio": STATIONARY_MAX_RATIO} for e in names}}


def _fmt(c: Mapping[str, Any]) -> str:
    lo, hi = c["interval"]
    return f"{c['median']:.3g} [{lo:.3g}, {hi:.3g}]"


def _write(table, summary: dict[str, Any], out_dir: Path, title: str) -> dict[str, Path]:
    from ..eval.jump import FLOOR_METRICS

    out_dir.mkdir(parents=True, exist_ok=True)
    table.attrs.update({"learner": "rate_matrix", "store": summary["store"],
                        "sample": json.dumps(summary["sample"]), "estimators": json.dumps(ESTIMATORS)})
    table.to_zarr(out_dir / "jump.zarr", mode="w", consolidated=False)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    s, names = summary["sample"], list(summary["estimates"])
    n = summary["n_test_members"]
    lines = [f"# {title}", "",
             f"Rate-matrix estimates from the paths of each of {n} test members ({s['n_paths']} paths × "
             f"{s['n_obs']} observations every {s['interval']:g}) against that member's true generator. Medians "
             f"over members with 95 % member-bootstrap intervals (B = {s['n_boot']}); per member in `jump.zarr`.", ""]
    lines += [f"* `{e}`: {d}" + (f" (s = {s['perturbation']:g})" if e == "perturbed" else "")
              for e, d in ESTIMATORS.items() if e in names]
    lines += ["", "## Metrics against the truth", "", "| metric | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    lines += [f"| {k} | " + " | ".join(_fmt(summary["estimates"][e][k]) for e in names) + " |"
              for k in summary["estimates"]["mle"]]
    lines += ["", "## Against the sampling floor", "",
              f"Floor: half the distance between the MLEs on two random halves of a member's paths (mean of "
              f"{s['n_splits']} halvings), the distance the full-data MLE has from the truth by sampling noise "
              "alone (first order). Ratio: the estimate's distance from the truth over its member's floor; ≈ 1 is "
              "as good as the data allow, ≫ 1 a bias or an error.", "",
              "| metric | floor | " + " | ".join(f"{e} / floor" for e in names) + " |",
              "|---|---|" + "---|" * len(names)]
    lines += [f"| {k} | {_fmt(summary['floors'][k])} | "
              + " | ".join(_fmt(summary["floor_ratios"][e][k]) for e in names) + " |" for k in FLOOR_METRICS]
    lines += ["", f"## Stationary check (total variation ≤ {STATIONARY_MAX_RATIO:g} × floor)", "",
              "An estimator passes when every member does.", "", "| estimator | members passing | check |",
              "|---|---|---|"]
    lines += [f"| {e} | {c['passed']} of {c['of']} | {'pass' if c['ok'] else 'FAIL'} |"
              for e, c in summary["stationary_check"].items()]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return {"metrics": out_dir / "jump.zarr", "summary": out_dir / "summary.json", "report": out_dir / "report.md"}


def _score(record: Mapping[str, Any], ds, out_dir: Path, title: str, say: Callable[[str], None]):
    members = record["test_members"]
    say(f"fitting rate matrices on {len(members)} test members' paths (interval {record['interval']:g}; floors "
        f"from {record['n_splits']} halvings each)")
    table = score_jump_members(ds, members, interval=record["interval"], seed=record["seed"],
                               n_splits=record["n_splits"], perturbation=record["perturbation"], log=say)
    summary = _summarize(table, record)
    return table, summary, _write(table, summary, out_dir, title)


def _headline(name: str, summary: Mapping[str, Any], report: Path) -> str:
    r = summary["floor_ratios"]
    return (f"{name}: rate-matrix estimates on {summary['n_test_members']} test members; stationary TV / floor: "
            + ", ".join(f"{e} {_fmt(r[e]['stationary_tv'])}" for e in r)
            + f"; relaxation-time error (mle) {summary['relaxation_time_rel_error_median']:.3g}; report: {report}")


def jump_run(c: Mapping[str, Any], store: Path, run_dir: Path, *, log: Callable[[str], None] | None = None,
             echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit and score the rate-matrix estimates on the test members of ``store``; see the module docstring.

    ``c`` is the run config (``seed``, ``name``, ``data.split``; optional ``jump`` section with
    ``n_splits`` (4), ``perturbation`` (0.5), ``n_boot`` (1000)). Returns the summary."""
    from ..data.store import open_dataset
    from ..data.windows import split_members
    from ..runs import check_run_dir, is_dynlab_run, mark_run_dir

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    ds = open_dataset(store)
    if not is_jump_store(ds):
        raise ConfigError(f"{store} holds no observed jump paths with their rate_matrix")
    check_run_dir(run_dir, stores=[store])
    if run_dir.exists() and any(run_dir.iterdir()) and not is_dynlab_run(run_dir):
        raise ConfigError(f"run_dir={str(run_dir)!r} is a non-empty folder that dynlab did not create")
    opts = {"n_splits": 4, "perturbation": 0.5, "n_boot": 1000, **dict(c.get("jump") or {})}
    for key, ok in (("n_splits", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                    ("n_boot", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                    ("perturbation", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)):
        if not ok(opts[key]):
            raise ConfigError(f"jump.{key} must be a {'number >= 0' if key == 'perturbation' else 'integer >= 1'}, "
                              f"got {opts[key]!r}")
    interval = _regular_interval(ds, store)
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_run_dir(run_dir)
    split_cfg = dict(c["data"]["split"])
    split_seed = split_cfg.pop("seed", None)
    split = split_members(int(ds.sizes["member"]), split_cfg, c["seed"] if split_seed is None else split_seed)
    test = split["test"] or split["train"]
    record = {"kind": "jump_process", "name": c.get("name"), "store": str(store),
              "test_members": [int(m) for m in test], "interval": interval, "seed": int(c["seed"]), "n_paths": int(ds.sizes["path"]),
              "n_obs": int(ds.sizes["obs"]), **{k: opts[k] for k in ("n_splits", "perturbation", "n_boot")}}
    (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    _, summary, paths = _score(record, ds, run_dir, f"Jump-process run: {c.get('name')}", say)
    (echo or print)(_headline(str(c.get("name")), summary, paths["report"]))
    return summary


def evaluate_jump_run(run_dir: str | Path, *, store: str | Path | None = None, out: str | Path | None = None,
                      log: Callable[[str], None] | None = None):
    """``dynlab evaluate`` on a jump run: the same estimates, floors and ratios, recomputed from the
    store with the settings recorded in ``jump_run.json`` (the same seed gives the same numbers).

    ``store``: another jump store (then every one of its members is scored and the results go to
    ``<run_dir>/eval-<config hash>`` unless ``out`` is given); ``out``: the output folder (default
    the run directory). Returns an :class:`~dynlab.pipeline.evaluate.EvaluateResult`."""
    from ..data.store import open_dataset
    from .evaluate import EvaluateResult

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    run_dir = Path(run_dir)
    if not is_jump_run(run_dir):
        raise StoreError(f"{run_dir} has no {RUN_RECORD}: not a jump-process run (dynlab run system=flashing_ratchet)")
    record = json.loads((run_dir / RUN_RECORD).read_text())
    other = store is not None and Path(store).expanduser().resolve() != Path(record["store"]).expanduser().resolve()
    path = Path(store if other else record["store"]).expanduser()
    if not path.exists():
        raise StoreError(f"the store {str(path)!r} of {run_dir} is gone; simulate it again or pass store=<path>")
    ds = open_dataset(path)
    if not is_jump_store(ds):
        raise ConfigError(f"store={str(path)!r} holds no observed jump paths with their rate_matrix")
    if other:
        record = {**record, "store": str(path), "test_members": [int(m) for m in ds["member"].values],
                  "interval": _regular_interval(ds, path), "n_paths": int(ds.sizes["path"]),
                  "n_obs": int(ds.sizes["obs"])}
    out_dir = Path(out) if out else (run_dir / f"eval-{ds.attrs.get('dynlab_config_hash', 'other')}" if other
                                     else run_dir)
    _, summary, paths = _score(record, ds, out_dir, f"Evaluation of {run_dir.name} (rate-matrix estimates)"
                               + (f" on {path.name}" if other else ""), say)
    say(_headline(run_dir.name, summary, paths["report"]))
    return EvaluateResult(out_dir, paths, summary)
