"""``simulate(cfg)``: one ensemble into one Zarr store, resumable and deterministic.

The work is cut into member blocks (whole storage chunks). A block computes
its members, writes them into their region of the store and then marks its
chunks done, so a killed run loses at most the blocks in flight and the same
command resumes with only the missing ones. A member's data depends only on the
config, the seed and its index (counter-based random streams, chunk-wise
computation for batch-dependent integrators), so the bytes are the same for
any block size, worker count or resume history.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import sys
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import simulators
from simulators import AbstractIntegrator, AbstractSystem, BlowUpError, TimeGrid, make_integrator, make_system

from .. import __version__
from ..config import config_hash, dataset_identity, to_container
from ..data import store
from ..errors import ConfigError, SimulationError, StoreError
from ..locks import FolderLock, LockedError
from ..runs import remove_dynlab_store

__all__ = ["simulate", "SimulationPlan", "plan_simulation", "SimulateResult"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}
BLOCK_TARGET_MEMBERS = 256
BLOCK_MAX_BYTES = 256 << 20


@dataclass
class SimulationPlan:
    """Everything ``simulate`` needs, validated: built before any compute."""

    cfg: dict[str, Any]
    system: AbstractSystem
    integrator: AbstractIntegrator
    grid: TimeGrid
    dtype: torch.dtype
    device: torch.device
    members: int
    seed: int
    out: Path
    identity: dict[str, Any]
    config_hash: str
    variables: list[store.VariableSpec]
    coords: dict[str, Any]
    member_chunk: int
    block_chunks: int

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.members / self.member_chunk)

    def chunk_members(self, chunk: int) -> range:
        return range(chunk * self.member_chunk, min((chunk + 1) * self.member_chunk, self.members))


@dataclass
class SimulateResult:
    path: Path
    config_hash: str
    computed_members: int
    seconds: float


#: the most integration steps one member may take (1e9 steps are hours for the smallest system)
MAX_STEPS_PER_MEMBER = 10**9


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def _check_size(out: Path, members: int, bytes_per_member: int, block_members: int, state_bytes: int,
                steps_per_member: int) -> None:
    """Refuse a configuration whose store, block memory or step count cannot be afforded,
    with the estimate, before any file is written."""
    import shutil

    if steps_per_member > MAX_STEPS_PER_MEMBER:
        raise ConfigError(f"this config integrates {steps_per_member:.3g} steps per member (time.spinup + time.t_end "
                          f"over time.dt), more than {MAX_STEPS_PER_MEMBER:.0e}; use a larger time.dt or a shorter run")
    total = members * bytes_per_member
    target = out
    while not target.exists():
        target = target.parent
    free = shutil.disk_usage(target).free
    if total > free:
        raise ConfigError(f"the store would take about {_human(total)} (ensemble.members={members} x "
                          f"{_human(bytes_per_member)} per member) but {str(target)!r} has {_human(free)} free; "
                          "lower ensemble.members or time.t_end, or raise time.save_every")
    block = block_members * (bytes_per_member + 8 * state_bytes)
    available = _available_memory()
    if available is not None and block > available:
        raise ConfigError(f"one block of {block_members} members needs about {_human(block)} of memory but "
                          f"{_human(available)} is available; set a smaller ensemble.block_size")


def _check_writable(out: Path) -> None:
    """Refuse an output path that cannot be written, before any compute."""
    from ..runs import check_writable_dir

    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} exists and is not a directory (a Zarr store is a directory)")
    check_writable_dir("out", out)


def plan_simulation(cfg: DictConfig | dict) -> SimulationPlan:
    """Validate a ``simulate`` config and build the system, integrator and layout.

    Raises :class:`ConfigError` naming the bad value; computes nothing.
    """
    from ..runs import check_device
    from ..schemas import validate_command

    c = validate_command("simulate", to_container(cfg))
    check_device(c["device"])
    sys_cfg = dict(c["system"])
    name = sys_cfg.pop("name", None)
    try:
        system = make_system(name, **sys_cfg)
        int_cfg = dict(c["integrator"])
        int_name = int_cfg.pop("name", None)
        if int_name == "auto":
            int_name = system.default_integrator
        integrator = make_integrator(int_name, **int_cfg)
        t = c["time"]
        grid = TimeGrid(dt=t["dt"], save_every=t["save_every"], t_end=t["t_end"], spinup=t["spinup"])
        system.check_grid(grid, integrator)  # the system's own word first: it knows what suits it
        integrator.check_system(system)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    members = c["ensemble"]["members"]
    seed = c["seed"]
    block_size = c["ensemble"]["block_size"]
    device = torch.device(c["device"])
    out = Path(c["out"]).expanduser()
    _check_writable(out)

    np_dtype = np.dtype(c["dtype"])
    sizes = {"member": members, "time": grid.n_saves, **system.dim_sizes}
    variables = []
    for v in system.variables:
        missing = [d for d in v.dims if d not in sizes]
        if missing:
            raise ConfigError(f"system {name!r} declares variable {v.name} on unknown dims {missing}")
        dims = ("member", *v.dims)
        var_dtype = np.dtype(v.dtype) if v.dtype is not None else np_dtype
        variables.append(store.VariableSpec(v.name, dims, tuple(sizes[d] for d in dims), var_dtype.str,
                                            {"units": v.units, "long_name": v.long_name, "dynlab_role": v.role}))
    bytes_per_member = sum(math.prod(v.shape[1:]) * np.dtype(v.dtype).itemsize for v in variables)
    chunk_members = c["ensemble"].get("chunk_members")
    if chunk_members is None:
        member_chunk = store.member_chunk_size(bytes_per_member, members)
    else:
        member_chunk = min(chunk_members, members)
    if block_size is None:
        block_chunks = max(1, min(math.ceil(BLOCK_TARGET_MEMBERS / member_chunk),
                                  BLOCK_MAX_BYTES // max(1, bytes_per_member * member_chunk)))
    else:
        block_chunks = math.ceil(block_size / member_chunk)  # blocks are whole chunks

    state_bytes = math.prod(system.state_shape) * np_dtype.itemsize if hasattr(system, "state_shape") else 0
    _check_size(out, members, bytes_per_member, min(members, block_chunks * member_chunk), state_bytes,
                system.progress_total(grid))

    coords: dict[str, Any] = {"member": (("member",), np.arange(members), {"long_name": "ensemble member", "units": "1"})}
    if any("time" in v.dims for v in variables):
        coords["time"] = (("time",), grid.times.numpy(),
                          {"long_name": "model time since the end of the spin-up", "units": system.time_units,
                           "standard_name": "time" if system.time_units != "1" else "model_time"})
    for dim, spec in system.coords().items():
        coords[dim] = spec

    # the integrator as built (auto resolved, defaults filled) identifies the data
    c["integrator"] = {"name": integrator.name, **integrator.options()}
    identity = dataset_identity(c)
    version = getattr(system, "generator_version", 0)
    if version:
        # the system's generated bytes changed at this version: its stores get a new identity
        identity["generator_version"] = version
    if not integrator.batch_independent:
        # a batch-dependent integrator (adaptive steps over the batch) integrates one
        # storage chunk at a time, so the chunking is part of what fixes the bytes
        identity["member_chunk"] = member_chunk
    return SimulationPlan(cfg=c, system=system, integrator=integrator, grid=grid, dtype=DTYPES[c["dtype"]],
                          device=device, members=members, seed=seed, out=out, identity=identity,
                          config_hash=config_hash(identity), variables=variables, coords=coords,
                          member_chunk=member_chunk, block_chunks=block_chunks)


def _attrs(plan: SimulationPlan) -> dict[str, Any]:
    import xarray
    import zarr

    c = plan.cfg
    return {
        "title": f"dynlab {plan.system.name} ensemble",
        "Conventions": "CF-1.10",
        "system": plan.system.name,
        "system_parameters": str(plan.system.params.as_dict()),
        "integrator": plan.integrator.name,
        "integrator_options": str(plan.integrator.options()),
        "dt": plan.grid.dt,
        "save_every": plan.grid.save_every,
        "spinup": plan.grid.spinup,
        "t_end": plan.grid.t_end,
        "seed": plan.seed,
        "members": plan.members,
        "member_chunk": plan.member_chunk,
        "dtype": c["dtype"],
        "dynlab_config_hash": plan.config_hash,
        "dynlab_config": OmegaConf.to_yaml(OmegaConf.create(c)),
        "dynlab_identity": OmegaConf.to_yaml(OmegaConf.create(plan.identity)),
        "dynlab_version": __version__,
        "versions": f"torch {torch.__version__}; numpy {np.__version__}; xarray {xarray.__version__}; "
                    f"zarr {zarr.__version__}; python {sys.version.split()[0]}",
        "history": f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} dynlab simulate",
    }


def _work_units(plan: SimulationPlan, done: np.ndarray) -> list[list[int]]:
    """Pending chunks grouped into blocks: runs of consecutive pending chunks inside
    each aligned block of ``block_chunks`` chunks."""
    units: list[list[int]] = []
    for first in range(0, plan.n_chunks, plan.block_chunks):
        run: list[int] = []
        for chunk in range(first, min(first + plan.block_chunks, plan.n_chunks)):
            if done[chunk]:
                if run:
                    units.append(run)
                run = []
            else:
                run.append(chunk)
        if run:
            units.append(run)
    return units


def compute_block(plan: SimulationPlan, chunks: list[int], progress: Callable[[int], None] | None = None) -> None:
    """Simulate the members of ``chunks`` (consecutive), write them, mark them done.

    A batch-independent integrator computes the whole block at once; otherwise
    each chunk is integrated alone, so a chunk's bytes never depend on the block.
    """
    groups = [chunks] if plan.integrator.batch_independent else [[c] for c in chunks]
    for group in groups:
        members = range(plan.chunk_members(group[0]).start, plan.chunk_members(group[-1]).stop)
        step_progress = (lambda n: progress(n * len(members))) if progress else None
        out = plan.system.simulate(plan.integrator, plan.grid, seed=plan.seed, members=members,
                                   dtype=plan.dtype, device=plan.device, progress=step_progress)
        arrays = {v.name: out[v.name].detach().cpu().numpy().astype(v.dtype, copy=False) for v in plan.variables}
        store.write_region(plan.out, members.start, arrays)
        store.mark_chunks_done(plan.out, group)


def _compute_block_task(cfg: dict[str, Any], chunks: list[int]) -> list[int]:
    """dask task: rebuild the plan in the worker and compute one block."""
    torch.set_num_threads(1)
    compute_block(plan_simulation(cfg), chunks)
    return chunks


def _blowup_message(plan: SimulationPlan, err: BlowUpError) -> str:
    done = store.chunks_done(plan.out)
    kept = int(done.sum()) if done is not None else 0
    return (f"simulation blew up: {err}; {kept} of {plan.n_chunks} member chunks finished "
            f"and kept in {plan.out} (try a smaller time.dt)")


def _check_done_chunks(plan: SimulationPlan, done: np.ndarray, log: Callable[[str], None]) -> np.ndarray:
    """Trust the completion record only where every chunk file of a done block exists;
    blocks that lost one are recomputed."""
    from ..data.integrity import scan_store

    lost = [int(c) for c in scan_store(plan.out, read=False, chunks=[int(c) for c in np.flatnonzero(done)]).bad_chunks]
    if lost:
        log(f"{plan.out}: member chunks {lost} are marked done but lost chunk files; recomputing them")
        done = done.copy()
        done[lost] = False
    return done


def _prepare_store(plan: SimulationPlan, overwrite: bool, log: Callable[[str], None]) -> np.ndarray:
    """Create, reuse or refuse the store at ``plan.out``; returns the completion record."""
    out = plan.out
    if out.exists():
        attrs = store.store_attrs(out)
        is_empty_dir = out.is_dir() and not any(out.iterdir())
        if attrs is None and not is_empty_dir:
            raise StoreError(f"out={str(out)!r} exists and is not a dynlab dataset; dynlab never replaces "
                             "what it did not write: choose another out")
        elif attrs is not None:
            existing = attrs.get("dynlab_config_hash")
            if existing is None and "dynlab_format" not in attrs:
                raise StoreError(f"out={str(out)!r} is a Zarr store that dynlab did not write; dynlab never "
                                 "replaces what it did not write: choose another out")
            if existing is not None and existing != plan.config_hash and not overwrite:
                raise StoreError(
                    f"out={str(out)!r} holds a different dataset (config hash {existing}) than this config "
                    f"(config hash {plan.config_hash}); choose another out or pass overwrite=true to replace it")
            done = store.chunks_done(out)
            if existing == plan.config_hash and attrs.get("dynlab_format") == store.STORE_FORMAT \
                    and done is not None and len(done) == plan.n_chunks:
                return _check_done_chunks(plan, done, log)
        log(f"replacing {out}")
        if is_empty_dir:
            out.rmdir()
        else:
            remove_dynlab_store(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    store.create_store(out, plan.variables, plan.coords, _attrs(plan), plan.member_chunk)
    return np.zeros(plan.n_chunks, dtype=bool)


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", unit_scale=True, desc="simulate", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


def _dask_client(plan: SimulationPlan):
    """Connect to the scheduler at ``parallel.address`` (within ``parallel.timeout``) or start a
    LocalCluster: ``(client, cluster or None)``. Called before the store is touched."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("parallel=dask needs dask.distributed: pip install 'dynlab[parallel]'") from None
    pcfg = plan.cfg["parallel"]
    address = pcfg.get("address")
    if address:
        try:
            return Client(address, timeout=pcfg["timeout"]), None
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"parallel.address={address!r}: no dask scheduler answered within "
                              f"parallel.timeout={pcfg['timeout']:g} s ({type(err).__name__}); start one there "
                              "or drop parallel.address to use a LocalCluster") from None
    cluster = LocalCluster(n_workers=pcfg["n_workers"], threads_per_worker=pcfg["threads_per_worker"],
                           processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _run_dask(plan: SimulationPlan, units: list[list[int]], bar, client) -> None:
    from dask.distributed import as_completed

    per_member = plan.system.progress_total(plan.grid)
    failure: Exception | None = None
    futures = [client.submit(_compute_block_task, plan.cfg, unit, pure=False) for unit in units]
    for future in as_completed(futures):
        try:
            chunks = future.result()
        except BlowUpError as err:
            failure = failure or err
            continue
        if bar is not None:
            n = sum(len(plan.chunk_members(c)) for c in chunks)
            bar.update(n * per_member)
    if failure is not None:
        raise failure


def simulate(cfg: DictConfig | dict, *, log: Callable[[str], None] | None = None) -> SimulateResult:
    """Run the ``simulate`` config: write (or finish) its Zarr store and return where it is.

    Same config and seed → bit-identical arrays, whatever ``ensemble.block_size``,
    the number of dask workers, or how often the run was interrupted and resumed.
    """
    log = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    start = _time.perf_counter()
    plan = plan_simulation(cfg)
    c = plan.cfg
    try:
        lock = FolderLock(plan.out, what="store", wait=c["wait"], log=log).acquire()
    except LockedError as err:
        raise StoreError(str(err)) from None
    try:
        return _simulate_locked(plan, log, start)
    finally:
        lock.release()


def _simulate_locked(plan: SimulationPlan, log: Callable[[str], None], start: float) -> SimulateResult:
    c = plan.cfg
    if c["parallel"]["name"] == "dask":
        client, cluster = _dask_client(plan)  # an unreachable scheduler fails before the store is touched
        try:
            return _simulate_blocks(plan, log, start, client)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return _simulate_blocks(plan, log, start, None)


def _simulate_blocks(plan: SimulationPlan, log: Callable[[str], None], start: float, client) -> SimulateResult:
    c = plan.cfg
    done = _prepare_store(plan, c["overwrite"], log)
    units = _work_units(plan, done)
    if not units:
        log(f"{plan.out} is already complete (config hash {plan.config_hash}); nothing to do")
        return SimulateResult(plan.out, plan.config_hash, 0, _time.perf_counter() - start)
    n_members = sum(len(plan.chunk_members(ch)) for unit in units for ch in unit)
    if done.any():
        log(f"resuming {plan.out}: {n_members} of {plan.members} members left")
    bar = _progress_bar(bool(c.get("progress", True)), n_members * plan.system.progress_total(plan.grid))
    parallel = (c.get("parallel") or {}).get("name", "serial")
    try:
        if parallel == "serial":
            for unit in units:
                compute_block(plan, unit, progress=bar.update if bar is not None else None)
        elif parallel == "dask":
            _run_dask(plan, units, bar, client)
        else:
            raise ConfigError(f"parallel={parallel!r} is not known; use serial or dask")
    except BlowUpError as err:
        raise SimulationError(_blowup_message(plan, err)) from None
    finally:
        if bar is not None:
            bar.close()
    store.consolidate(plan.out)  # only once every block is whole
    seconds = _time.perf_counter() - start
    log(f"wrote {plan.out} ({plan.members} members x {plan.grid.n_saves} times, "
        f"config hash {plan.config_hash}) in {seconds:.1f} s")
    return SimulateResult(plan.out, plan.config_hash, n_members, seconds)
