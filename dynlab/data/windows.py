r"""Training windows over a dataset store: lazy, chunk-aware, split by member.

A trajectory of member m is the encoded state :math:`x^{(m)}_t \in \mathbb{R}^D`,
t = 0 … T−1 (see :class:`~dynlab.emulators.codec.StateCodec`). A window of
length W = C + H starting at s is :math:`x^{(m)}_{s : s+W}`, shape ``(W, D)``:
C context steps (warm-up, teacher-forced input) followed by H horizon steps
(targets of a rollout). Windows start every ``stride`` steps, so member m gives
:math:`n_w = \lfloor (T - W)/\text{stride} \rfloor + 1` windows.

Reading is lazy and chunk-aware: the store is chunked by whole members, and a
window is served from a cached copy of the member chunk that holds it, read with
one ``isel(member=...)`` of that chunk (never the whole store). A small LRU keeps
``cache_chunks`` chunks. :class:`ChunkBatchSampler` orders each epoch chunk group
by chunk group (a group is as many chunks as the cache holds; windows are shuffled
within a group, groups are shuffled), so an epoch reads each chunk about once.

Splits are by member, never by cutting a trajectory: :func:`split_members`.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..emulators.codec import StateCodec
from ..errors import ConfigError

__all__ = ["split_members", "WindowDataset", "ChunkBatchSampler", "make_loader", "SPLITS"]

SPLITS = ("train", "val", "test")


def split_members(members: int | Sequence[int], fractions: Mapping[str, float], seed: int) -> dict[str, list[int]]:
    """Split ensemble members into disjoint ``train``/``val``/``test`` sets.

    The members are permuted with ``numpy.random.default_rng(seed)`` and cut in the
    order train, val, test with sizes ``round(f · M)`` (largest remainders fix the
    total). A split with a positive fraction gets at least one member when M allows.
    Each returned list is sorted.

    Args:
        members: the number of members M (ids 0 … M−1) or the member ids.
        fractions: ``{"train": f_tr, "val": f_va, "test": f_te}``, each ≥ 0, summing to 1.
        seed: the permutation seed.
    """
    ids = list(range(members)) if isinstance(members, int) else [int(m) for m in members]
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ConfigError(f"data.split has unknown keys {unknown}; use {list(SPLITS)} (and seed)")
    fr = {}
    for name in SPLITS:
        value = fractions.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"data.split.{name} must be a fraction in [0, 1], got {value!r}")
        fr[name] = float(value)
    if abs(sum(fr.values()) - 1.0) > 1e-6:
        raise ConfigError(f"data.split fractions must sum to 1, got {fr} (sum {sum(fr.values()):g})")
    if fr["train"] == 0.0:
        raise ConfigError("data.split.train must be > 0")
    M = len(ids)
    wanted = [n for n in SPLITS if fr[n] > 0]
    if M < len(wanted):
        raise ConfigError(f"{M} members cannot be split into {len(wanted)} non-empty sets {wanted}; "
                          "simulate more members or set unused fractions to 0")
    exact = {n: fr[n] * M for n in SPLITS}
    sizes = {n: int(math.floor(exact[n])) for n in SPLITS}
    for n in sorted(SPLITS, key=lambda n: exact[n] - sizes[n], reverse=True)[:M - sum(sizes.values())]:
        sizes[n] += 1
    for n in wanted:  # every requested split gets a member, taken from the largest
        if sizes[n] == 0:
            donor = max(SPLITS, key=lambda k: sizes[k])
            sizes[donor] -= 1
            sizes[n] += 1
    order = np.random.default_rng(seed).permutation(M)
    out, start = {}, 0
    for n in SPLITS:
        out[n] = sorted(ids[i] for i in order[start:start + sizes[n]])
        start += sizes[n]
    return out


class WindowDataset(Dataset):
    """Windows ``(W, D)`` of the encoded state of some members of a store.

    Item ``i`` is a dict ``{"x": (W, D) tensor}`` plus ``"forcing": (W, F)`` when
    forcing variables are given; W = ``context + horizon``. Items are ordered member
    by member (in increasing member id), window start by window start, so consecutive
    indices come from the same member chunk.

    Args:
        store: path of a dataset written by ``dynlab simulate`` (opened lazily, also
            after pickling into a DataLoader worker).
        members: the member ids to serve (e.g. one split).
        context, horizon: C ≥ 1 and H ≥ 0; W = C + H must not exceed the stored length T.
        stride: steps between window starts (≥ 1).
        variables: the state variables (default: those whose role is ``state``,
            :attr:`ds.dynlab.states <dynlab.data.accessor.DynlabAccessor.states>`).
        forcing: forcing variables (inputs only), on (member, time, ...) (default: those
            whose role is ``forcing``; ``()`` for none).
        dtype: the torch dtype of the items.
        cache_chunks: how many member chunks the LRU cache keeps (≥ 1).
    """

    def __init__(self, store: str | Path, members: Sequence[int], context: int, horizon: int, stride: int = 1,
                 variables: Sequence[str] | None = None, forcing: Sequence[str] | None = None,
                 dtype: torch.dtype = torch.float32, cache_chunks: int = 2):
        from .store import open_dataset

        self.store = str(store)
        ds = open_dataset(self.store)
        for name, value, low in (("context", context, 1), ("horizon", horizon, 0), ("stride", stride, 1),
                                 ("cache_chunks", cache_chunks, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        self.context, self.horizon, self.stride = context, horizon, stride
        self.cache_chunks = cache_chunks
        self.dtype = dtype
        if "time" not in ds.sizes or "member" not in ds.sizes:
            raise ConfigError(f"{self.store} has no (member, time) dims to cut windows from")
        if variables is None:
            variables = ds.dynlab.states or None  # role-aware default; None: every (member, time) variable
        if forcing is None:
            forcing = [name for name in ds.dynlab.forcings if name not in set(variables or ())]
        try:
            self.codec = StateCodec.from_dataset(ds, variables)
            forcing = list(forcing or [])
            overlap = sorted(set(forcing) & set(self.codec.names))
            if overlap:
                raise ConfigError(f"variables {overlap} are listed both as state and as forcing")
            self.forcing_codec = StateCodec.from_dataset(ds, forcing) if forcing else None
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.n_times = int(ds.sizes["time"])
        if self.window > self.n_times:
            raise ConfigError(f"window context + horizon = {context} + {horizon} = {self.window} steps is longer "
                              f"than the stored trajectories ({self.n_times} times in {self.store})")
        n_members = int(ds.sizes["member"])
        members = [int(m) for m in members]
        bad = [m for m in members if not 0 <= m < n_members]
        if bad:
            raise ConfigError(f"members {bad} are not in {self.store} (it has members 0-{n_members - 1})")
        if len(set(members)) != len(members):
            raise ConfigError("members must not repeat")
        self.members = sorted(members)
        first = self.codec.names[0]
        self.member_chunk = int((ds[first].encoding.get("chunks") or (n_members,))[0])
        self.windows_per_member = (self.n_times - self.window) // stride + 1
        self._ds = ds
        self._cache: OrderedDict[int, tuple[dict[int, int], np.ndarray, np.ndarray | None]] = OrderedDict()
        self.reads = 0  # chunk reads so far (a spy for tests and logs)

    # -- geometry ---------------------------------------------------------------------
    @property
    def window(self) -> int:
        """W = context + horizon."""
        return self.context + self.horizon

    @property
    def n_features(self) -> int:
        return self.codec.n_features

    @property
    def n_forcing(self) -> int:
        return 0 if self.forcing_codec is None else self.forcing_codec.n_features

    def drop_forcing(self) -> None:
        """Serve windows without forcing (for a learner that takes no inputs)."""
        self.forcing_codec = None
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.members) * self.windows_per_member

    def locate(self, index: int) -> tuple[int, int]:
        """Item index → (member id, first time index of the window)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window index {index} out of range for {len(self)} windows")
        p, w = divmod(index, self.windows_per_member)
        return self.members[p], w * self.stride

    def chunk_of(self, member: int) -> int:
        return member // self.member_chunk

    def window_chunks(self) -> np.ndarray:
        """The storage chunk of every item: ``(len(self),)`` int64."""
        chunks = np.asarray([self.chunk_of(m) for m in self.members], dtype=np.int64)
        return np.repeat(chunks, self.windows_per_member)

    # -- reading ----------------------------------------------------------------------
    def _dataset(self):
        if self._ds is None:
            from .store import open_dataset

            self._ds = open_dataset(self.store)
        return self._ds

    def _read_block(self, members: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """Read the given members (all in one storage chunk): ``(m, T, D)`` and ``(m, T, F)``."""
        self.reads += 1
        block = self._dataset().isel(member=members)
        x = self.codec.encode(block)
        f = self.forcing_codec.encode(block) if self.forcing_codec is not None else None
        return x, f

    def _chunk(self, chunk: int) -> tuple[dict[int, int], np.ndarray, np.ndarray | None]:
        if chunk in self._cache:
            self._cache.move_to_end(chunk)
            return self._cache[chunk]
        lo, hi = chunk * self.member_chunk, (chunk + 1) * self.member_chunk
        wanted = [m for m in self.members if lo <= m < hi]
        x, f = self._read_block(wanted)
        entry = ({m: i for i, m in enumerate(wanted)}, x, f)
        self._cache[chunk] = entry
        while len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return entry

    def member_trajectories(self, members: Sequence[int]) -> np.ndarray:
        """Whole trajectories ``(len(members), T, D)`` of the given members, read chunk by chunk."""
        out = []
        for m in members:
            rows, x, _ = self._chunk(self.chunk_of(int(m)))
            if int(m) not in rows:
                raise ConfigError(f"member {m} is not served by this dataset")
            out.append(x[rows[int(m)]])
        return np.stack(out) if out else np.zeros((0, self.n_times, self.n_features))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        member, start = self.locate(int(index))
        rows, x, f = self._chunk(self.chunk_of(member))
        r = rows[member]
        item = {"x": torch.as_tensor(np.ascontiguousarray(x[r, start:start + self.window]), dtype=self.dtype)}
        if f is not None:
            item["forcing"] = torch.as_tensor(np.ascontiguousarray(f[r, start:start + self.window]), dtype=self.dtype)
        return item

    # -- pickling (spawned DataLoader workers reopen the store) -------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ds"] = None
        state["_cache"] = OrderedDict()
        return state


class ChunkBatchSampler:
    """Deterministic, resumable, chunk-aware batches; one rank's share of each global batch.

    Epoch e (seeded by ``(seed, e)``): the storage chunks are permuted and cut into
    groups of ``group_chunks`` consecutive chunks; the windows of each group are
    permuted; the concatenation is cut into global batches of ``global_batch``
    windows (the incomplete last batch is dropped). Rank r of R gets rows
    ``[r·G/R, (r+1)·G/R)`` of every global batch, so the union over ranks is exactly
    the single-process batch. Iteration is endless (epoch after epoch) and starts at
    global batch ``start``; the position of the trainer is the number of global
    batches it consumed.

    With ``shuffle=False`` the order is the dataset order (for validation).
    """

    def __init__(self, chunks: np.ndarray, global_batch: int, *, seed: int = 0, shuffle: bool = True,
                 group_chunks: int = 1, rank: int = 0, world_size: int = 1, start: int = 0):
        if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
            raise ConfigError(f"train.batch_size must be a positive integer, got {global_batch!r}")
        if global_batch % world_size:
            raise ConfigError(f"train.batch_size={global_batch} must be divisible by the number of "
                              f"processes ({world_size}) so every rank gets the same share")
        if len(chunks) < global_batch:
            raise ConfigError(f"train.batch_size={global_batch} is larger than the {len(chunks)} training "
                              "windows; lower it, lower data.stride or add members")
        self.chunks = np.asarray(chunks, dtype=np.int64)
        self.global_batch = global_batch
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.group_chunks = max(1, int(group_chunks))
        self.rank, self.world_size = rank, world_size
        self.start = int(start)
        self.batches_per_epoch = len(self.chunks) // global_batch
        # window indices of each chunk (chunk ids ascending), found once: O(n log n)
        by_chunk = np.argsort(self.chunks, kind="stable")
        _, first = np.unique(self.chunks[by_chunk], return_index=True)
        self._chunk_windows = np.split(by_chunk, first[1:])
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    def epoch_order(self, epoch: int) -> np.ndarray:
        """All window indices of epoch ``epoch`` in order: ``(n_windows,)``."""
        if self._epoch_cache is not None and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        if not self.shuffle:
            order = np.arange(len(self.chunks))
        else:
            rng = np.random.default_rng([self.seed, epoch])
            chunk_order = rng.permutation(len(self._chunk_windows))
            parts = []
            for g in range(0, len(chunk_order), self.group_chunks):
                windows = np.concatenate([self._chunk_windows[c] for c in chunk_order[g:g + self.group_chunks]])
                parts.append(windows[rng.permutation(len(windows))])
            order = np.concatenate(parts)
        self._epoch_cache = (epoch, order)
        return order

    def global_batch_indices(self, g: int) -> np.ndarray:
        epoch, b = divmod(g, self.batches_per_epoch)
        return self.epoch_order(epoch)[b * self.global_batch:(b + 1) * self.global_batch]

    def __iter__(self) -> Iterator[list[int]]:
        share = self.global_batch // self.world_size
        g = self.start
        while True:
            rows = self.global_batch_indices(g)
            yield rows[self.rank * share:(self.rank + 1) * share].tolist()
            g += 1


def make_loader(dataset: WindowDataset, sampler: ChunkBatchSampler | Sequence[Sequence[int]],
                num_workers: int = 0):
    """A DataLoader over ``dataset`` with the given batch sampler.

    Workers (``num_workers > 0``) are started with the ``spawn`` context: zarr's
    async machinery is not fork-safe. Each worker reopens the store and keeps its own
    chunk cache.
    """
    from torch.utils.data import DataLoader

    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"data.num_workers must be an integer >= 0, got {num_workers!r}")
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        import multiprocessing

        kwargs = {"multiprocessing_context": multiprocessing.get_context("spawn"), "persistent_workers": True}
    # a private generator: creating the iterator then draws no number from the global
    # torch RNG, so a resumed run's random stream (dropout, ...) matches an uninterrupted one
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(0), **kwargs)
