"""Units committed together: one snapshot, each unit's files with its ledger row, first commit wins."""

from __future__ import annotations

from quakelake.archive.waveforms import scan_archive
from quakelake.lakehouse import Lake, stage_table
from quakelake.lakehouse.lineage import UnitResult, commit_unit, commit_units

STATIONS = ["BOM", "COA", "CRR"]


def _unit(lake, index, station: str, run: str) -> UnitResult:
    rows = index[index["station"] == station]
    change = stage_table(
        lake, "waveform_index", rows, f"idx.{station}.inputs", {"archive": "a"}, f"idx.{station}"
    )
    return UnitResult("pick", f"{run}:{station}", "done", rows=len(rows), changes=[change])


def test_a_group_is_one_commit_and_a_unit_committed_first_by_another_run_is_skipped(
    shared_data, tmp_path
):
    index = scan_archive(shared_data / "phasenet_saltonsea_20201001" / "mseed").index
    lake = tmp_path / "lake"
    # another run commits BOM's logical file first
    commit_unit(lake, "other", _unit(lake, index, "BOM", "other"))
    before = len(Lake(lake).history())

    out = commit_units(lake, "mine", [_unit(lake, index, s, "mine") for s in STATIONS])

    assert [(r.unit, r.status) for r in out] == [
        ("mine:BOM", "skipped"),
        ("mine:COA", "done"),
        ("mine:CRR", "done"),
    ]
    assert out[0].error == "committed by another run" and out[0].rows == 0
    assert len(Lake(lake).history()) == before + 1  # one snapshot for the three units
    ledger = Lake(lake).query(
        "SELECT unit, status, rows FROM units WHERE run_id = ? ORDER BY unit", ["mine"]
    )
    expected = [("mine:BOM", "skipped", 0)] + [
        (f"mine:{s}", "done", int((index["station"] == s).sum())) for s in STATIONS[1:]
    ]
    assert list(ledger.itertuples(index=False, name=None)) == expected
    held = Lake(lake).read("waveform_index")["station"].value_counts().to_dict()
    assert held == {s: int((index["station"] == s).sum()) for s in STATIONS}  # BOM once
    # the skipped unit's own file was deleted: only committed files stay on disk
    on_disk = sorted((lake / "waveform_index").rglob("*.parquet"))
    assert on_disk == Lake(lake).files("waveform_index")
