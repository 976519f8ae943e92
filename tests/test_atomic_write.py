"""lakehouse.atomic_write: the one way QuakeLake writes a file for others to read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quakelake.archive.sds import INCOMING, incoming_file
from quakelake.lakehouse import atomic_write


def test_bytes_text_and_writer_land_whole(tmp_path):
    assert atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert atomic_write(tmp_path / "a" / "c.txt", "CI.BOM").read_text() == "CI.BOM"
    frame = pd.DataFrame({"station_id": ["CI.BOM.", "CI.COA."], "n": [3, 4]})
    target = atomic_write(tmp_path / "d.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.bin", "c.txt", "d.parquet"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "record.json", '{"workers": 1}')

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"work')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{"workers": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_download_writes_through_the_archives_incoming_folder(tmp_path):
    target = tmp_path / "2020" / "CI" / "BOM" / "HHZ.D" / "CI.BOM..HHZ.D.2020.275"
    temporary = incoming_file(tmp_path, target, "CI.BOM.2020-10-01")
    assert temporary.parent == tmp_path / INCOMING
    assert temporary.name.startswith("CI.BOM.2020-10-01.CI.BOM..HHZ.D.2020.275.")
    assert temporary.suffix == ".part"
    atomic_write(target, b"miniseed", temporary=temporary)
    assert target.read_bytes() == b"miniseed"
    assert list((tmp_path / INCOMING).iterdir()) == []
