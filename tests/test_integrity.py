"""Store integrity: checksums catch flipped bytes on read, lost chunks are recomputed by a rerun
and by `dynlab verify repair=true` (bit-identical), old stores get the missing-chunk check."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import dynlab
from dynlab.cli import main as cli_main
from dynlab.data import store as store_mod
from dynlab.data.integrity import DamagedChunkError, scan_store

ARGS = ["system=lorenz63", "ensemble.members=8", "ensemble.chunk_members=2", "time.t_end=5", "time.spinup=1",
        "progress=false"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "l63.zarr"
    assert cli_main(["simulate", *ARGS, f"out={out}"]) == 0
    return out, dynlab.open_dataset(out).x.values


def copy_store(pristine, tmp_path):
    out = tmp_path / "l63.zarr"
    shutil.copytree(pristine[0], out)
    return out


def flip_byte(path, offset=30):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_caught_on_read(pristine, tmp_path, capsys):
    out = copy_store(pristine, tmp_path)
    flip_byte(out / "x" / "c" / "1" / "0")
    ds = dynlab.open_dataset(out)
    with pytest.raises(DamagedChunkError, match=r"variable x, members 2-3: a chunk is damaged .*"
                                                r"dynlab verify store=.* repair=true"):
        ds.x.values
    assert float(ds.x.isel(member=0).mean()) == pytest.approx(float(pristine[1][0].mean()))  # others read
    assert cli_main(["verify", f"store={out}"]) == 1
    err = capsys.readouterr().err
    assert "x: members 2-3 damaged" in err and "repair with: dynlab verify" in err
    assert cli_main(["verify", f"store={out}", "repair=true"]) == 0
    np.testing.assert_array_equal(dynlab.open_dataset(out).x.values, pristine[1])


def test_lost_chunk_is_recomputed_by_a_rerun(pristine, tmp_path, capsys):
    out = copy_store(pristine, tmp_path)
    (out / "y" / "c" / "3" / "0").unlink()
    assert [str(p) for p in scan_store(out).problems] == ["y: members 6-7 missing"]
    assert cli_main(["simulate", *ARGS, f"out={out}"]) == 0
    assert "member chunks [3] are marked done but lost chunk files" in capsys.readouterr().err
    ds = dynlab.open_dataset(out)
    np.testing.assert_array_equal(ds.x.values, pristine[1])
    assert not scan_store(out).problems


def test_old_store_without_checksums_reports_missing_chunks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(store_mod, "CHUNK_CHECKSUMS", False)
    out = tmp_path / "old.zarr"
    assert cli_main(["simulate", *ARGS, f"out={out}"]) == 0
    reference = dynlab.open_dataset(out).z.values
    (out / "z" / "c" / "0" / "0").unlink()
    capsys.readouterr()
    assert cli_main(["verify", f"store={out}", "repair=true"]) == 0
    err = capsys.readouterr().err
    assert "before chunk checksums: only missing chunks are detected" in err and "z: members 0-1 missing" in err
    np.testing.assert_array_equal(dynlab.open_dataset(out).z.values, reference)


def test_verify_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    assert cli_main(["verify", f"store={tmp_path / 'mine'}"]) == 2
    assert "not a dataset written by dynlab simulate" in capsys.readouterr().err
