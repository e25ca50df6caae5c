"""``evaluate(cfg)``: test a trained emulator against the reference physics, beside its baselines.

``dynlab evaluate run=<run dir>`` loads the run (``dataset.json``/``config.yaml``
for the store, ``split.json`` for the test and training members, the newest
checkpoint through :func:`dynlab.load_emulator`), forecasts the test members
with the emulator and with the baselines of ``eval.baselines`` (docs/baselines.md;
fitted on training members), and writes into the run directory:

* ``metrics.zarr``: the scores on a ``learner`` dimension (emulator first), see
  :mod:`dynlab.eval.forecast` for the variables;
* ``summary.json``: ``vpt_median``, ``rmse_lead1``, ... for the emulator and the
  same keys for each baseline under ``baselines``, bootstrap intervals, paired
  differences and the ranking (:mod:`dynlab.eval.report`);
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
from ..eval.options import EvalOptions

__all__ = ["evaluate", "evaluate_emulators", "EvaluateResult", "EVAL_DEFAULTS", "build_baselines"]

#: the evaluation options' defaults (the schema is :class:`dynlab.eval.options.EvalOptions`)
EVAL_DEFAULTS: dict[str, Any] = EvalOptions().to_dict()


@dataclass
class EvaluateResult:
    out_dir: Path
    paths: dict[str, Path]
    summary: dict[str, Any]
    metrics: Any = None


def _label(name: str, taken: set[str]) -> str:
    label = name
    while label in taken:
        label = f"{label} (baseline)"
    return label


def _baseline_config(name: str, opts: EvalOptions) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": name}
    if name == "linear":
        cfg["ridge"] = opts.linear_ridge
    if name == "imperfect":
        cfg["error"] = opts.imperfect_error
    cfg.update(dict(opts.baseline_options.get(name) or {}))
    return cfg


def build_baselines(setup, taken: set[str], log: Callable[[str], None]) -> dict[str, AbstractEmulator]:
    """The baselines of ``setup.options.baselines``, fitted on ``setup.train_series`` (read once by
    :func:`~dynlab.eval.forecast.prepare_evaluation`); one that does not apply to the dataset (e.g. a
    numerical model of a stochastic system) is skipped with a note in ``setup.notes``."""
    from ..emulators.registry import build_emulator

    train = torch.as_tensor(setup.train_series, dtype=torch.float64)
    out: dict[str, AbstractEmulator] = {}
    for name in setup.options.baselines:
        try:
            em = build_emulator(_baseline_config(name, setup.options), setup.codec, train, dt=setup.dt,
                                system=setup.system)
        except ValueError as err:
            message = f"baseline {name} skipped: {str(err).splitlines()[0]}"
            setup.notes.append(message)
            log(message)
            continue
        out[_label(name, taken | set(out))] = em
    return out


def evaluate_emulators(emulators: Mapping[str, AbstractEmulator], ds, test_members: Sequence,
                       options: EvalOptions | None = None, *, train_members: Sequence | None = None,
                       codec: StateCodec | None = None, out_dir: str | Path | None = None, device: str = "cpu",
                       title: str = "Evaluation", extra: dict[str, Any] | None = None,
                       log: Callable[[str], None] | None = None, **overrides: Any):
    """Score emulators and baselines on the same forecasts; optionally write the results.

    Args:
        emulators: ``{label: emulator}``; the first is "the" emulator of the summary.
        ds: the dataset (from :func:`dynlab.open_dataset`).
        test_members, train_members: member ids (training members: climatology, σ_clim
            and the baselines' fits; default every other member).
        options: the :class:`~dynlab.eval.options.EvalOptions`; ``overrides`` replace
            single fields (``horizon=20``, ``baselines=["persistence"]``, ...).
        codec: the emulators' codec (default: the first emulator's ``codec``, else
            every variable of ``ds``).
        out_dir: if given, write ``metrics.zarr``, ``summary.json``, ``report.md``, figures.

    Returns:
        ``(metrics dataset with a learner dim, summary dict)``: the summary holds the
        intervals, paired differences, ranking and ``beats_baselines_until_vpt``
        (:mod:`dynlab.eval.report`).
    """
    import xarray as xr

    from ..eval.forecast import prepare_evaluation, score_emulator, xr_merge
    from ..eval.report import summary as make_summary
    from ..eval.report import write_results

    log = log or (lambda msg: None)
    if not emulators:
        raise ValueError("emulators is empty: pass at least one {label: emulator}")
    first = next(iter(emulators.values()))
    codec = codec or getattr(first, "codec", None) or StateCodec.from_dataset(ds)
    opts = options or EvalOptions()
    if overrides:
        try:
            opts = opts.replace(**overrides)
        except ConfigError as err:
            raise ValueError(str(err)) from None
    setup = prepare_evaluation(ds, test_members, opts, codec=codec, train_members=train_members, device=device)
    learners: dict[str, AbstractEmulator] = dict(emulators)
    learners.update(build_baselines(setup, set(learners), log))
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
    metrics.attrs["notes"] = "; ".join(setup.notes)
    summ = make_summary(metrics, emulator=str(names[0]), extra=extra, n_boot=opts.n_boot, ci=opts.ci,
                        seed=opts.seed)
    climate, lyap = _climate_floor(first, ds, setup, log), _lyapunov(first, ds, setup, log)
    summ.update(_summary_numbers(climate, lyap))
    if out_dir is not None:
        write_results(metrics, Path(out_dir), emulator=str(names[0]), title=title, plots=opts.plots, summ=summ)
        _write_chaos(Path(out_dir), climate, lyap)
    return metrics, summ


#: member-bootstrap replicates of the climate-floor ratios (each recomputes every distance)
CLIMATE_N_BOOT = 200


def _climate_floor(emulator, ds, setup, log):
    """Per-variable W1, sliced W1, ACF and spectral distances of the emulator's long rollouts as
    ratios to the truth-vs-truth floor (:mod:`dynlab.eval.climate`), with member-bootstrap
    intervals (``*_ratio_low``/``*_ratio_high``); None where not applicable."""
    opts = setup.options
    if not (opts.climate_floor and setup.long_rollout and setup.system is not None) or setup.stochastic:
        return None
    from ..eval.climate import reference_climate_scores

    transient = min(opts.climate_transient, setup.long_rollout // 2)
    lattice = [f.name for f in setup.codec.fields if tuple(f.dims) == ("k",)]  # periodic lattices (Lorenz96)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return reference_climate_scores(emulator, ds, setup, transient, lattice=lattice,
                                            nperseg=min(setup.nperseg, setup.long_rollout - transient),
                                            n_boot=min(opts.n_boot, CLIMATE_N_BOOT), ci=opts.ci, seed=opts.seed)
    except ValueError as err:
        log(f"climate floor skipped: {err}")
        setup.notes.append(f"climate floor skipped: {err}")
        return None


def _lyapunov(emulator, ds, setup, log):
    """The emulator's leading Lyapunov exponents and the reference system's, by the same code
    (:func:`dynlab.eval.lyapunov.emulator_lyapunov_spectrum`) from the same two test starts."""
    opts = setup.options
    if not opts.lyapunov_exponents or setup.system is None or setup.stochastic:
        return None
    from ..emulators.reference import ReferenceEmulator
    from ..eval.lyapunov import emulator_lyapunov_spectrum

    D = setup.codec.n_features
    k = min(opts.lyapunov_exponents, D)
    contexts = torch.as_tensor(setup.contexts.reshape(len(setup.members), -1, setup.context, D)[:2, 0],
                               dtype=torch.float64)
    kwargs = dict(n_steps=opts.lyapunov_steps, k=k, transient=max(1, opts.lyapunov_steps // 10), dt=setup.dt)
    try:
        reference = ReferenceEmulator.from_dataset(ds, codec=setup.codec)
    except ValueError as err:
        log(f"Lyapunov spectra skipped: {err}")
        return None
    log(f"Lyapunov spectra of the emulator and the system ({k} exponents, {opts.lyapunov_steps} steps)")
    dtype = next(emulator.parameters(), torch.zeros(())).dtype
    emulator.double()
    try:
        em = emulator_lyapunov_spectrum(emulator, contexts, **kwargs)
    except (ValueError, RuntimeError) as err:  # a diagnostic: report it, keep the evaluation
        log(f"Lyapunov spectra skipped: the emulator's failed: {err}")
        return None
    finally:
        emulator.to(dtype)
    ref = emulator_lyapunov_spectrum(reference.double(), contexts, **kwargs)
    return {"emulator": em, "system": ref}


def _summary_numbers(climate, lyap) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if climate is not None:
        intervals = {}
        for name, var in climate.data_vars.items():
            if str(name).endswith("_ratio"):
                values = np.asarray(var.values, dtype=float).reshape(-1)
                out[f"climate_{name}"] = float(np.nanmax(values)) if not np.isnan(values).all() else float("nan")
                bounds = _ratio_bounds(climate, str(name))
                if bounds is not None:
                    intervals[str(name)] = list(bounds)
        if intervals:
            out["climate_intervals"] = intervals
    if lyap is not None:
        for who, res in lyap.items():
            out[f"lyapunov_{who}"] = [float(v) for v in res.spectrum]
            out[f"kaplan_yorke_{who}"] = float(res.kaplan_yorke)
    return out


def _degenerate_floor(climate, key: str) -> bool:
    """Whether the floor of score ``key`` is below 1e-6 of its score for some variable (finite scores)."""
    score = np.asarray(climate[key].values, dtype=float).reshape(-1)
    floor = np.asarray(climate[f"{key}_floor"].values, dtype=float).reshape(-1)
    ok = np.isfinite(score) & (score > 0)
    return bool(np.any(floor[ok] < 1e-6 * score[ok]))


def _ratio_bounds(climate, name: str) -> tuple[float, float] | None:
    """The bootstrap interval ``(low, high)`` of ratio ``name`` at the variable where it is largest
    (the one the summary reports), None without intervals."""
    if f"{name}_low" not in climate.data_vars:
        return None
    values = np.asarray(climate[name].values, dtype=float).reshape(-1)
    low = np.asarray(climate[f"{name}_low"].values, dtype=float).reshape(-1)
    high = np.asarray(climate[f"{name}_high"].values, dtype=float).reshape(-1)
    if np.isnan(values).all():
        return None
    i = int(np.argmax(np.where(np.isnan(values), -np.inf, values)))
    return float(low[i]), float(high[i])


def _write_chaos(out_dir: Path, climate, lyap) -> None:
    lines = []
    if climate is not None:
        climate.to_zarr(out_dir / "climate.zarr", mode="w", consolidated=False)
        lines += ["", "## Climate against the noise floor", "",
                  "Distance of the emulator's long rollouts from the truth divided by the distance between two "
                  "independent truth samples of the same size (1: as close as the truth is to itself; "
                  "`climate.zarr`; largest over variables), with its member-bootstrap interval "
                  f"({climate.attrs.get('climate_n_boot', 0)} replicates of the "
                  f"{climate.attrs.get('climate_runs', '?')} runs).", "",
                  "| score | ratio to floor | interval |", "|---|---|---|"]
        for n, v in climate.data_vars.items():
            if not str(n).endswith("_ratio"):
                continue
            values = np.asarray(v.values, dtype=float)
            ratio = float(np.nanmax(values)) if not np.isnan(values).all() else float("nan")
            bounds = _ratio_bounds(climate, str(n))
            cell = "—" if bounds is None else f"[{bounds[0]:.3g}, {bounds[1]:.3g}]"
            lines.append(f"| {str(n)[:-6]} | {ratio:.3g} | {cell} |")
        flat = [str(n)[:-6] for n in climate.data_vars if str(n).endswith("_floor")
                and _degenerate_floor(climate, str(n)[:-6])]
        if flat:
            lines += ["", f"Near-zero floors ({', '.join(flat)}): the truth runs nearly coincide (a deterministic, "
                      "damped system such as the slab or the EBM), so those ratios count the distance in units of "
                      "round-off, not of the truth's own variability; read the physics checks instead."]
    if lyap is not None:
        em, ref = lyap["emulator"], lyap["system"]
        lines += ["", "## Lyapunov spectrum", "",
                  f"Leading exponents (per model time) of the emulator's one-step map on (state, hidden state) and "
                  f"of the reference system, by the same QR code from the same {em.exponents.shape[0]} starts.", "",
                  "| | " + " | ".join(f"λ{i + 1}" for i in range(len(em.spectrum))) + " | Kaplan–Yorke (of these) |",
                  "|---|" + "---|" * (len(em.spectrum) + 1)]
        for who, res in (("emulator", em), ("system", ref)):
            lines.append(f"| {who} | " + " | ".join(f"{v:.3f}" for v in res.spectrum) + f" | {res.kaplan_yorke:.2f} |")
    if lines:
        with open(out_dir / "report.md", "a") as fh:
            fh.write("\n".join(lines) + "\n")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path.parent} has no {path.name} ({what}); was it written by dynlab train?") from None
    except ValueError as err:
        raise StoreError(f"{path} is not valid JSON: {err}") from None


def _check_compatible(codec: StateCodec | None, ds, store, run_dir: Path) -> None:
    """The emulator's variables exist in ``ds`` with the shapes it was trained on."""
    if codec is None:
        return
    for f in codec.fields:
        if f.name not in ds.data_vars:
            raise ConfigError(f"store={str(store)!r} has no variable {f.name!r}, which the emulator of {run_dir} "
                              f"predicts (it has {', '.join(sorted(map(str, ds.data_vars)))})")
        shape = tuple(int(n) for n in ds[f.name].shape[2:])
        if shape != tuple(f.shape):
            raise ConfigError(f"variable {f.name!r} has shape {shape} per time in store={str(store)!r}, but the "
                              f"emulator of {run_dir} was trained on shape {tuple(f.shape)}")


def _other_store_members(ds) -> tuple[list[int], list[int]]:
    """Members of another store: the first half fits the climatology and baselines, the second
    half is forecast (all of them for both when there are fewer than 4)."""
    members = [int(m) for m in ds["member"].values]
    if len(members) < 4:
        return members, members
    half = len(members) // 2
    return members[half:], members[:half]


def _tipping_checks(emulator, ds, codec, out_dir: Path, summ: dict[str, Any], opts: EvalOptions,
                    log: Callable[[str], None]) -> dict[str, Any]:
    """On a ramped May-model run: the emulator's recovery rate against the truth's as c advances,
    and its stochastic rollouts' early-warning indicators beside the truth's (dynlab.ews.emulator).
    Writes ``ews_emulator.zarr`` and ``figures/ews_emulator.png``, adds a report section and the
    summary's ``ews_*`` numbers."""
    from ..data import accessor  # noqa: F401  (registers ds.dynlab)

    try:
        system = ds.dynlab.system
    except Exception:  # a store whose system cannot be rebuilt: nothing to compare with
        return summ
    if system.name != "may_grazing" or codec is None or codec.n_features != 1 or not system.params.c_rate:
        return summ
    from ..ews.emulator import MayTruth, emulator_ews, emulator_ews_summary, plot_emulator_ews

    log("early-warning checks on the emulator: recovery rate and critical slowing down along the ramp of c")
    truth = MayTruth.from_dataset(ds)
    res = emulator_ews(emulator, truth, c0=system.params.c, c_rate=system.params.c_rate,
                       t_end=float(ds["time"][-1]), members=32, seed=opts.seed)
    res.to_zarr(out_dir / "ews_emulator.zarr", mode="w", consolidated=False)
    numbers = emulator_ews_summary(res)
    summ = {**summ, **numbers}
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=1, default=float) + "\n")
    if opts.plots:
        (out_dir / "figures").mkdir(exist_ok=True)
        plot_emulator_ews(res, out_dir / "figures" / "ews_emulator.png")
    lines = ["", "## Early warning on the emulator (ramped May model)", "",
             "One-step Jacobian eigenvalue at the upper branch x*(c) against the truth's (1 + Δt f′(x*))ⁿ, "
             "and indicators of 32 stochastic rollouts (emulator step + the truth's noise) beside the truth's "
             "(`ews_emulator.zarr`).", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in numbers.items()]
    with open(out_dir / "report.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return summ


def _physics_checks(emulator, learner: str, ds, test_members, codec, out_dir: Path, summ: dict[str, Any],
                    log: Callable[[str], None]) -> dict[str, Any]:
    """The family's physics checks (:mod:`dynlab.eval.physics`: Hamiltonian invariants and energy-MSE
    beside a symplectic reference; climate budget, Gregory sensitivity, adjustment time): writes
    ``physics.zarr``, the summary's ``physics_*`` numbers and a report section."""
    from ..eval.physics import physics_checks

    if codec is None:
        return summ
    try:
        table, reason = physics_checks({learner: emulator}, ds, test_members, codec)
    except ValueError as err:  # e.g. a codec that does not cover the state
        log(f"physics checks skipped: {err}")
        return summ
    if table is None:
        log(f"physics checks skipped: {reason}")
        return summ
    from ..eval.stats import Interval, bootstrap

    table.to_zarr(out_dir / "physics.zarr", mode="w", consolidated=False)
    learners = [str(v) for v in table["learner"].values]

    def interval(name: str, who: str):
        values = np.asarray(table[name].sel(learner=who).values, dtype=float).reshape(-1)
        if not np.isfinite(values).any():  # a blown-up rollout's residuals are inf: say so, not "—"
            big = values[np.isinf(values)]
            return Interval(float(big[0]), float(big[0]), float(big[0]), big[:0]) if big.size else None
        return bootstrap(values, np.nanmedian, n_boot=1000, seed=0)["value"]

    cells = {(k, who): interval(str(k), who) for k in table.data_vars for who in learners}
    numbers = {f"physics_{k}": (cells[k, learner].estimate if cells[k, learner] is not None else float("nan"))
               for k in table.data_vars}
    numbers["physics_intervals"] = {str(k): [c.low, c.high] for (k, who), c in cells.items()
                                    if who == learner and c is not None}
    summ = {**summ, **numbers}
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=1, default=float) + "\n")
    lines = ["", "## Physics checks", "", "Median over test trajectories with 95 % bootstrap intervals "
             "(`physics.zarr`).", "", "| quantity | " + " | ".join(learners) + " |", "|---|" + "---|" * len(learners)]
    lines += [f"| {k} | " + " | ".join("—" if cells[k, who] is None else
                                     f"{cells[k, who].estimate:.4g} [{cells[k, who].low:.3g}, {cells[k, who].high:.3g}]"
                                     for who in learners) + " |" for k in table.data_vars]
    lines += _physics_notes(table, learners)
    with open(out_dir / "report.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return summ


def _physics_notes(table, learners: list[str]) -> list[str]:
    """Report lines under the physics table: blown-up rollouts, annual means, levels outside training."""
    lines = []
    attrs = table.attrs
    if "finite_years" in table.data_vars:
        longest = float(np.nanmax(table["finite_years"].values))
        for who in learners:
            shortest = float(np.nanmin(table["finite_years"].sel(learner=who).values))
            if shortest < longest:
                lines.append(f"* {who}: a rollout is non-finite after {shortest:.4g} years (blow-up): its budget "
                             "residual is inf and its sensitivity and adjustment time are undefined (—).")
    if attrs.get("annual_means"):
        lines.append("* seasonal cycle: the sensitivity, adjustment time, warming and TCR use annual means; the "
                     "base temperature is the reference's control-climate annual mean.")
    if attrs.get("outside"):
        lines.append(f"* CO2 levels {attrs['outside']} lie outside the training range {attrs.get('training_range')}.")
    if attrs.get("note"):
        lines.append(f"* {attrs['note']}")
    return [""] + lines if lines else []


def evaluate(cfg: DictConfig | dict, *, log: Callable[[str], None] | None = None) -> EvaluateResult:
    """Run the ``evaluate`` config (``configs/evaluate.yaml``) on a run directory.

    Raises :class:`ConfigError` for bad config values and :class:`StoreError` for a
    missing run directory, a run without a checkpoint or split, or a missing store.
    """
    from ..data.store import open_dataset
    from ..train.checkpoint import latest_checkpoint, load_emulator

    log = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    from ..runs import check_device
    from ..schemas import validate_command

    c = validate_command("evaluate", to_container(cfg))
    check_device(c["device"])
    opts = EvalOptions.from_dict(c["eval"])
    run = c.get("run")
    if not run:
        raise ConfigError("run must name a run directory written by dynlab train, e.g. run=runs/l96_s4d")
    run_dir = Path(str(run)).expanduser()
    if not run_dir.is_dir():
        raise StoreError(f"run={str(run)!r}: no run directory there")
    from .jump import evaluate_jump_run, is_jump_run

    if is_jump_run(run_dir):  # a Markov-jump-process run: its rate-matrix estimates, re-scored from the store
        return evaluate_jump_run(run_dir, store=c.get("store"), out=c.get("out"), log=log)
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
    device = c["device"]
    ds = open_dataset(store)
    emulator = load_emulator(run_dir, checkpoint=checkpoint, device=device, log=log)
    codec = getattr(emulator, "codec", None) or (StateCodec.from_dict(info["codec"]) if "codec" in info else None)
    learner = (run_cfg.get("learner") or {}).get("name") or getattr(emulator, "learner_name", "emulator")
    if opts.context is None:
        opts = opts.replace(context=int((run_cfg.get("data") or {}).get("context") or 16))
    test_members, train_members = split["test"], split.get("train") or None
    extra = {"run": str(run_dir), "store": str(store)}
    store_hash = ds.attrs.get("dynlab_config_hash")
    own_hash = info.get("config_hash")
    other = c.get("store") is not None and own_hash is not None and store_hash != own_hash
    if other:
        _check_compatible(codec, ds, store, run_dir)
        test_members, train_members = _other_store_members(ds)
        extra.update({"store_hash": store_hash, "trained_on_hash": own_hash,
                      "note": "another store: climatology, sigma_clim, lambda_1 and the baselines' fits come from "
                              f"its members {train_members}; forecasts on its members {test_members}"})
    out_dir = Path(c.get("out") or (run_dir / f"eval-{store_hash}" if other else run_dir))
    log(f"evaluating {run_dir} ({learner}) on {len(test_members)} test members of {store}"
        + (f" (another store, config hash {store_hash}; results in {out_dir})" if other else ""))
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a blown-up baseline overflows: scored as such
            metrics, summ = evaluate_emulators(
                {learner: emulator}, ds, test_members, opts, train_members=train_members, codec=codec,
                out_dir=out_dir, device=device, title=f"Evaluation of {run_dir.name} ({learner})"
                + (f" on {Path(store).name}" if other else ""), extra=extra, log=log)
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    summ = _tipping_checks(emulator, ds, codec, out_dir, summ, opts, log)
    with np.errstate(over="ignore", invalid="ignore"):
        summ = _physics_checks(emulator, learner, ds, test_members, codec, out_dir, summ, log)
    paths = {"metrics": out_dir / "metrics.zarr", "summary": out_dir / "summary.json", "report": out_dir / "report.md",
             **{f"figure_{p.stem}": p for p in sorted((out_dir / "figures").glob("*.png"))}}
    best = summ["ranking"][0] if summ.get("ranking") else learner
    log(f"wrote {out_dir / 'report.md'}: {learner} ranks {summ.get('rank')} of {len(summ.get('ranking') or [1])} "
        f"by {summ.get('ranking_key')} (best: {best})")
    return EvaluateResult(out_dir, paths, summ, metrics)
