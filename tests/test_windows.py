"""Training windows: shapes, stride, lazy chunk-wise reads, member splits, the batch sampler."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import dynlab
from dynlab.data import store as store_mod
from dynlab.data.windows import ChunkBatchSampler, WindowDataset, make_loader, split_members
from dynlab.errors import ConfigError, StoreError
from test_trainer_support import make_store


@pytest.fixture(scope="module")
def l96(tmp_path_factory):
    """10 members in chunks of 2, 81 times, K=8."""
    return make_store(tmp_path_factory.getbasetemp() / "stores")


def test_window_shapes_stride_and_values(l96):
    ds = WindowDataset(l96, [1, 4, 7], context=5, horizon=3, stride=4, dtype=torch.float64)
    T = dynlab.open_dataset(l96).sizes["time"]
    assert T == 81 and ds.window == 8
    assert ds.windows_per_member == (T - 8) // 4 + 1 == 19
    assert len(ds) == 3 * 19
    item = ds[19 + 2]  # member 4, third window: starts at 8
    assert set(item) == {"x"} and item["x"].shape == (8, 8) and item["x"].dtype == torch.float64
    assert ds.locate(19 + 2) == (4, 8)
    truth = dynlab.open_dataset(l96).X.isel(member=4, time=slice(8, 16)).values
    np.testing.assert_array_equal(item["x"].numpy(), truth)
    last_member, last_start = ds.locate(len(ds) - 1)
    assert last_member == 7 and last_start + ds.window <= T
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_reads_are_chunk_wise_and_cached(l96):
    """A full epoch reads each member chunk once, one chunk per read, never the whole store."""
    members = [0, 1, 2, 3, 5, 8]  # chunks 0, 1, 2, 4 (chunks of 2 members)
    ds = WindowDataset(l96, members, context=4, horizon=2, stride=3, cache_chunks=1)
    calls = []
    original = ds._read_block

    def spy(block_members):
        calls.append(list(block_members))
        return original(block_members)

    ds._read_block = spy
    sampler = ChunkBatchSampler(ds.window_chunks(), 5, seed=3, group_chunks=1)
    n = sampler.batches_per_epoch
    seen = []
    for b, batch in zip(range(n), sampler):
        seen += batch
        for i in batch:
            ds[i]
    assert len(calls) == 4, calls  # one read per chunk in the epoch
    for block in calls:
        assert len({m // 2 for m in block}) == 1  # each read stays inside one storage chunk
        assert set(block) <= set(members)  # and reads only the served members
    assert sorted(m for block in calls for m in block) == members
    assert len(set(seen)) == len(seen) == n * 5  # no window twice in an epoch
    # cached: reading the same window again costs nothing
    before = len(calls)
    ds[seen[-1]]
    assert len(calls) == before


def test_member_trajectories_read_by_chunk(l96):
    ds = WindowDataset(l96, [2, 3, 9], context=4, horizon=0, cache_chunks=4)
    traj = ds.member_trajectories([3, 9])
    np.testing.assert_array_equal(traj, dynlab.open_dataset(l96).X.isel(member=[3, 9]).values)
    assert ds.reads == 2


def test_splits_are_disjoint_by_member_and_seeded():
    split = split_members(20, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=1)
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert [len(s) for s in sets] == [14, 3, 3]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2]) and sets[1].isdisjoint(sets[2])
    assert set().union(*sets) == set(range(20))
    assert split == split_members(20, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=1)
    assert split != split_members(20, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=2)
    tiny = split_members(3, {"train": 0.9, "val": 0.05, "test": 0.05}, seed=0)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    no_test = split_members(5, {"train": 0.8, "val": 0.2, "test": 0.0}, seed=0)
    assert no_test["test"] == [] and len(no_test["train"]) == 4


@pytest.mark.parametrize("fractions, match", [
    ({"train": 0.5, "val": 0.2, "test": 0.2}, "sum to 1"),
    ({"train": 1.2, "val": -0.2, "test": 0.0}, "data.split.train"),
    ({"train": 0.8, "valid": 0.2}, "unknown keys"),
])
def test_bad_split_fractions(fractions, match):
    with pytest.raises(ConfigError, match=match):
        split_members(10, fractions, seed=0)


def test_split_needs_enough_members():
    with pytest.raises(ConfigError, match="2 members cannot be split into 3"):
        split_members(2, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)


def test_sampler_rank_shares_make_the_global_batch_and_resume():
    chunks = np.repeat(np.arange(5), 7)  # 35 windows in 5 chunks
    single = ChunkBatchSampler(chunks, 6, seed=4, group_chunks=2)
    it = iter(single)
    first = [next(it) for _ in range(12)]  # two epochs (5 batches each) and a bit
    ranks = [iter(ChunkBatchSampler(chunks, 6, seed=4, group_chunks=2, rank=r, world_size=2)) for r in range(2)]
    for g in range(12):
        a, b = next(ranks[0]), next(ranks[1])
        assert len(a) == len(b) == 3 and a + b == first[g]
    resumed = iter(ChunkBatchSampler(chunks, 6, seed=4, group_chunks=2, start=7))
    assert [next(resumed) for _ in range(5)] == first[7:12]
    assert first[0] != first[5]  # epochs are reshuffled
    epoch = np.concatenate(first[:5])
    assert len(set(epoch.tolist())) == 30
    # a group mixes at most group_chunks chunks: the first 14 windows come from 2 chunks
    assert len(set(chunks[single.epoch_order(0)[:14]].tolist())) == 2


def test_sampler_validates_batch():
    chunks = np.zeros(10, dtype=int)
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        ChunkBatchSampler(chunks, 5, world_size=2)
    with pytest.raises(ConfigError, match="larger than the 10 training windows"):
        ChunkBatchSampler(chunks, 16)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        ChunkBatchSampler(chunks, 0)


def test_bad_windows(l96, tmp_path):
    with pytest.raises(ConfigError, match=r"context \+ horizon = 60 \+ 30 = 90 steps is longer than the stored "
                                          r"trajectories \(81 times"):
        WindowDataset(l96, [0], context=60, horizon=30)
    with pytest.raises(ConfigError, match=r"members \[12\] are not in"):
        WindowDataset(l96, [0, 12], context=4, horizon=1)
    with pytest.raises(ConfigError, match="stride must be an integer >= 1"):
        WindowDataset(l96, [0], context=4, horizon=1, stride=0)
    with pytest.raises(ConfigError, match="variable 'Y' is not in the dataset"):
        WindowDataset(l96, [0], context=4, horizon=1, variables=["Y"])
    with pytest.raises(StoreError, match="does not exist"):
        WindowDataset(tmp_path / "missing.zarr", [0], context=4, horizon=1)


def _forced_store(path):
    """A hand-made dynlab store with a state ``u`` (member, time, site) and a forcing ``F`` (member, time)."""
    members, T, sites = 4, 12, 3
    variables = [store_mod.VariableSpec("u", ("member", "time", "site"), (members, T, sites), "<f8",
                                        {"units": "1", "long_name": "state"}),
                 store_mod.VariableSpec("F", ("member", "time"), (members, T), "<f8",
                                        {"units": "1", "long_name": "forcing"})]
    coords = {"member": (("member",), np.arange(members), {"units": "1", "long_name": "member"}),
              "time": (("time",), np.arange(T) * 0.1, {"units": "1", "long_name": "time"})}
    store_mod.create_store(path, variables, coords, {"dynlab_config_hash": "test", "save_every": 0.1}, 2)
    u = np.arange(members * T * sites, dtype=float).reshape(members, T, sites)
    F = -np.arange(members * T, dtype=float).reshape(members, T)
    store_mod.write_region(path, 0, {"u": u, "F": F})
    store_mod.mark_chunks_done(path, [0, 1])
    return u, F


def test_forcing_comes_as_a_separate_input(tmp_path):
    path = tmp_path / "forced.zarr"
    u, F = _forced_store(path)
    ds = WindowDataset(path, [1, 2], context=3, horizon=2, variables=["u"], forcing=["F"], dtype=torch.float64)
    assert ds.n_features == 3 and ds.n_forcing == 1
    item = ds[ds.windows_per_member + 4]  # member 2, start 4
    np.testing.assert_array_equal(item["x"].numpy(), u[2, 4:9])
    np.testing.assert_array_equal(item["forcing"].numpy(), F[2, 4:9, None])
    with pytest.raises(ConfigError, match="both as state and as forcing"):
        WindowDataset(path, [1], context=3, horizon=2, variables=["u", "F"], forcing=["F"])


def test_loader_spawns_workers_and_the_dataset_pickles(l96):
    """Workers use spawn (zarr is not fork-safe): the dataset must pickle without its open store."""
    ds = WindowDataset(l96, [0, 3, 4], context=4, horizon=2, stride=5, dtype=torch.float64)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._ds is None and not clone._cache  # reopened lazily in the worker
    torch.testing.assert_close(clone[7]["x"], ds[7]["x"], rtol=0, atol=0)
    loader = make_loader(ds, iter(ChunkBatchSampler(ds.window_chunks(), 4, seed=0)), 2)
    assert loader.multiprocessing_context.get_start_method() == "spawn" and loader.persistent_workers
    assert make_loader(ds, [[0]], 0).multiprocessing_context is None
    with pytest.raises(ConfigError, match="num_workers must be an integer >= 0"):
        make_loader(ds, [[0]], -1)


@pytest.mark.slow
def test_spawned_workers_serve_the_same_batches(l96):
    ds = WindowDataset(l96, [0, 3, 4], context=4, horizon=2, stride=5, dtype=torch.float64)
    batches = lambda: iter(ChunkBatchSampler(ds.window_chunks(), 4, seed=0))
    it0, it1 = iter(make_loader(ds, batches(), 0)), iter(make_loader(ds, batches(), 1))
    for _ in range(3):
        torch.testing.assert_close(next(it0)["x"], next(it1)["x"], rtol=0, atol=0)
    del it1
