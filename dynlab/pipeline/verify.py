"""``verify(cfg)``: ``dynlab verify store=PATH [repair=true]``.

Reads every chunk of a dataset store and lists the damaged (checksum or decoding failure)
and missing chunks by variable and member range. With ``repair=true`` it marks exactly the
member chunks that hold them as not done and reruns the stored ``simulate`` config, which
recomputes those members bit-identically (counter-based random streams) and leaves every
other chunk alone. Stores written before checksums get the missing-chunk check only, and
the report says so.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config import to_container
from ..errors import StoreError
from ..schema import REQUIRED, option

__all__ = ["VerifySchema", "verify", "VerifyResult"]


@dataclass
class VerifySchema:
    store: str = option(REQUIRED, "the dataset store to check")
    repair: bool = option(False, "recompute the member chunks that are damaged or missing")
    progress: bool = option(False, "progress bar while repairing")


@dataclass
class VerifyResult:
    path: Path
    problems: list  # ChunkProblem, as found before any repair
    checksums: bool
    repaired: list[int]


def verify(cfg: Mapping[str, Any], *, log: Callable[[str], None] | None = None) -> VerifyResult:
    """Check (and with ``repair=true`` repair) a store; see the module docstring."""
    import zarr

    from ..data import store as store_mod
    from ..data.integrity import repair_command, scan_store
    from ..schema import check
    from .simulate import simulate

    say = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
    c = check(to_container(cfg), VerifySchema)
    path = Path(c["store"]).expanduser()
    attrs = store_mod.store_attrs(path) if path.exists() else None
    if attrs is None or "dynlab_config_hash" not in attrs:
        raise StoreError(f"store={str(path)!r} is not a dataset written by dynlab simulate")
    scan = scan_store(path)
    found = list(scan.problems)
    if not scan.checksums:
        say(f"{path} was written before chunk checksums: only missing chunks are detected, not damaged ones")
    if not found:
        say(f"{path}: all {scan.chunks_read} chunks read back whole")
        return VerifyResult(path, [], scan.checksums, [])
    for p in found:
        say(f"{path}: {p}")
    bad = scan.bad_chunks
    if not c["repair"]:
        say(f"{len(found)} bad chunk(s) in {len(bad)} member chunk(s); repair with: {repair_command(path)}")
        return VerifyResult(path, found, scan.checksums, [])
    record = zarr.open_array(str(path), path=f"{store_mod.DONE_GROUP}/{store_mod.DONE_ARRAY}", mode="r+")
    for chunk in bad:
        record[chunk] = 0
    import yaml

    sim_cfg = yaml.safe_load(attrs["dynlab_config"])
    sim_cfg.update({"out": str(path), "overwrite": False, "progress": c["progress"], "wait": False})
    say(f"recomputing member chunks {bad} of {path} from its stored config")
    simulate(sim_cfg, log=say)
    after = scan_store(path, chunks=bad)
    if after.problems:
        raise StoreError(f"{path}: repair left {len(after.problems)} bad chunk(s): {after.problems[0]}")
    say(f"{path}: repaired {len(bad)} member chunk(s)")
    return VerifyResult(path, found, scan.checksums, bad)
