"""Waveform archive: scanning, station-day units and reading, on real recordings."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest
from obspy import UTCDateTime

from quakelake.archive.waveforms import (
    StationDay,
    archive_key,
    read_station_day,
    scan_archive,
    station_days,
)
from quakelake.config import StationSelection, TimeWindow
from quakelake.lakehouse.schema import WAVEFORM_INDEX
from quakelake.lakehouse.writer import to_arrow

SALTON_STATIONS = sorted("BOM COA CRR DRE ERR FRK IMP RXH SAL SGL SLV SNR SWS WES WMD YUH2".split())
MESETAS_HH = ["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"]


def _contiguous(stream: obspy.Stream) -> bool:
    return all(not np.ma.isMaskedArray(tr.data) for tr in stream)


def _by_channel(instruments) -> dict[str, list[obspy.Trace]]:
    out: dict[str, list[obspy.Trace]] = {}
    for inst in instruments:
        for tr in inst.stream:
            out.setdefault(tr.id, []).append(tr)
    return out


# --------------------------------------------------------------------------- identity


def test_archive_key_is_short_stable_and_path_based(tmp_path: Path):
    (tmp_path / "a").mkdir()
    key = archive_key(tmp_path / "a")
    assert key == archive_key(tmp_path / "a" / ".." / "a")
    assert key != archive_key(tmp_path)
    assert len(key) == 16 and all(c in "0123456789abcdef" for c in key)


# --------------------------------------------------------------------------- Salton Sea


@pytest.mark.parametrize("layout", ["mseed", "sac", "mseed_array"])
def test_salton_sea_layouts_give_the_same_station_days(salton: Path, layout: str):
    scan = scan_archive(salton / layout)
    assert scan.failures == []
    index = scan.index
    assert list(index.columns) == WAVEFORM_INDEX.schema.names
    to_arrow("waveform_index", index)  # casts to the lake schema without loss
    assert len(index) == 48
    assert sorted(index["station"].unique()) == SALTON_STATIONS
    assert set(index["channel"]) == {"HHE", "HHN", "HHZ"}
    assert (index["sampling_rate"] == 100.0).all()
    assert set(index["npts"]) == {18000, 18001}  # 180 s; some stations start 5 ms earlier
    assert str(index["start"].dtype) == "datetime64[us, UTC]"
    assert set(index["start"]) == {
        pd.Timestamp("2020-10-01T00:00:00.003", tz="UTC"),
        pd.Timestamp("2020-10-01T00:00:00.0083", tz="UTC"),
    }
    assert set(index["format"]) == {"SAC" if layout == "sac" else "MSEED"}

    units = station_days(index)
    assert [u.key for u in units] == [f"CI.{s}.2020-10-01" for s in SALTON_STATIONS]
    if layout == "mseed_array":
        assert all(len(u.paths) == 1 for u in units)

    instruments, failures = read_station_day(units[SALTON_STATIONS.index("SWS")])
    assert failures == []
    assert len(instruments) == 1
    inst = instruments[0]
    assert (inst.network, inst.station, inst.location, inst.band) == ("CI", "SWS", "", "HH")
    assert inst.components == "ZNE"
    npts = index[index["station"] == "SWS"].set_index("channel")["npts"]
    assert [tr.stats.npts for tr in inst.stream] == [npts["HHE"], npts["HHN"], npts["HHZ"]]


def test_salton_sea_streams_are_equivalent_across_formats(salton: Path):
    data = {}
    for layout in ("mseed", "sac", "mseed_array"):
        unit = station_days(scan_archive(salton / layout).index)[0]  # CI.BOM
        instruments, _ = read_station_day(unit)
        data[layout] = {tr.id: tr for tr in instruments[0].stream}
    assert data["mseed"].keys() == data["sac"].keys() == data["mseed_array"].keys()
    for seed_id, ref in data["mseed"].items():
        for layout in ("sac", "mseed_array"):
            other = data[layout][seed_id]
            assert abs(other.stats.starttime - ref.stats.starttime) < 1e-4
            assert other.stats.npts == ref.stats.npts
            if layout == "sac":  # the SAC copies are scaled by the sensitivity (counts -> m/s)
                assert np.corrcoef(other.data, ref.data)[0, 1] > 0.999999
            else:
                np.testing.assert_array_equal(other.data, ref.data)


def test_whole_folder_skips_metadata_and_merges_duplicate_copies(salton: Path):
    scan = scan_archive(salton)  # mseed + sac + mseed_array + StationXML, CSV, JSON, notes
    assert scan.failures == []
    assert len(scan.index) == 3 * 48
    assert any(p.endswith("stations.xml") for p in scan.skipped)
    assert len(station_days(scan.index)[0].paths) == 5  # 3 SAC + 2 miniSEED
    # two miniSEED copies of the same samples (per-station and multi-station file) overlap
    # completely and collapse into one trace per channel
    unit = station_days(scan.index[scan.index["format"] == "MSEED"])[0]
    assert len(unit.paths) == 2
    instruments, failures = read_station_day(unit)
    assert failures == []
    single = obspy.read(str(salton / "mseed" / "CI.BOM.2020-10-01T00:00.mseed"))
    for tr in instruments[0].stream:
        np.testing.assert_array_equal(tr.data, single.select(channel=tr.stats.channel)[0].data)


def test_selection_wildcards(salton: Path):
    sel = StationSelection(stations=["S*"], channels=["HHZ"])
    scan = scan_archive(salton / "mseed", selection=sel)
    assert sorted(scan.index["station"].unique()) == ["SAL", "SGL", "SLV", "SNR", "SWS"]
    assert set(scan.index["channel"]) == {"HHZ"}

    full = scan_archive(salton / "mseed").index
    units = station_days(full, selection=StationSelection(stations="W*,Y*"))
    assert [u.station for u in units] == ["WES", "WMD", "YUH2"]
    instruments, _ = read_station_day(units[0], selection=StationSelection(channels=["HH?"]))
    assert instruments[0].components == "ZNE"
    instruments, _ = read_station_day(units[0], selection=StationSelection(channels=["HHZ"]))
    assert instruments[0].components == "Z"  # single component: only Z
    assert [tr.stats.channel for tr in instruments[0].stream] == ["HHZ"]


# --------------------------------------------------------------------------- ELEP (PNW)


def test_elep_borehole_components_renamed_and_selection(shared_data: Path):
    folder = shared_data / "elep_pnw"
    scan = scan_archive(folder, selection=StationSelection(stations=["B*"]))
    assert set(scan.index["channel"]) == {"EH1", "EH2", "EHZ"}
    assert set(scan.index["station"]) == {"B204"}
    (unit,) = station_days(scan.index)
    assert unit.key == "PB.B204.2022-02-06"
    instruments, failures = read_station_day(unit)
    assert failures == []
    (inst,) = instruments
    assert inst.band == "EH" and inst.components == "ZNE"
    traces = {tr.stats.channel: tr for tr in inst.stream}
    assert sorted(traces) == ["EHE", "EHN", "EHZ"]
    raw = obspy.read(str(folder / "PB.B204..EH.ms"))
    np.testing.assert_array_equal(traces["EHN"].data, raw.select(channel="EH1")[0].data)
    np.testing.assert_array_equal(traces["EHE"].data, raw.select(channel="EH2")[0].data)
    assert all(tr.stats.npts == 4 * 3600 * 100 for tr in inst.stream)  # 4 h continuous

    both = station_days(scan_archive(folder).index)
    assert [u.key for u in both] == ["PB.B204.2022-02-06", "UW.SHW.2022-02-06"]


# --------------------------------------------------------------------------- Mesetas


@pytest.fixture(scope="module")
def mesetas(shared_data: Path):
    folder = shared_data / "seismonitor_mesetas_2019" / "mseed"
    return folder, scan_archive(folder)


def test_mesetas_chunks_span_two_days(mesetas):
    _, scan = mesetas
    assert scan.failures == []
    assert scan.index.groupby(["network", "station", "location", "channel"]).ngroups == 24
    units = station_days(scan.index)
    expected = sorted(
        [f"CM.{s}.2019-12-24" for s in MESETAS_HH + ["CLEJA"]]
        + [f"CM.{s}.2019-12-25" for s in MESETAS_HH]
    )
    assert [u.key for u in units] == expected  # CLEJA stops at 23:00: one day only

    late = station_days(scan.index, window=TimeWindow(start="2019-12-25", end="2019-12-25"))
    assert [u.station for u in late] == MESETAS_HH
    # the last chunk (22:59:59 -> 00:59:59) is the only file of the 25th
    assert all(len(u.paths) == 3 for u in late)
    opened = station_days(scan.index, window=TimeWindow(start="2019-12-25"))
    assert opened == late


def test_mesetas_chunk_joins_are_contiguous(mesetas):
    _, scan = mesetas
    units = {u.key: u for u in station_days(scan.index)}
    instruments, failures = read_station_day(units["CM.CHI.2019-12-24"], pad_s=60)
    assert failures == []
    (inst,) = instruments
    assert inst.band == "HH" and _contiguous(inst.stream)
    assert len(inst.stream) == 3  # three 2-h chunks per channel joined into one trace
    for tr in inst.stream:
        assert tr.stats.sampling_rate == 100.0
        assert abs(tr.stats.starttime - UTCDateTime("2019-12-24T18:59:59.998")) < 0.01
        # trimmed to the end of the day plus the 60 s pad
        assert (
            UTCDateTime("2019-12-25T00:00:59.98")
            <= tr.stats.endtime
            < UTCDateTime("2019-12-25T00:01:00")
        )

    instruments, failures = read_station_day(units["CM.CLEJA.2019-12-24"])
    assert failures == []
    (inst,) = instruments
    assert (inst.location, inst.band, inst.components) == ("10", "HN", "ZNE")
    for tr in inst.stream:
        assert tr.stats.sampling_rate == 200.0
        assert tr.stats.starttime == UTCDateTime("2019-12-24T19:03:36")
        assert tr.stats.endtime == UTCDateTime("2019-12-24T23:00:00")
        assert tr.stats.npts == 1396801 + 1440001 - 1  # the shared boundary sample once

    # FLO2's files hold every record twice: the duplicates collapse into one trace per channel
    flo2 = scan.index[scan.index["station"] == "FLO2"]
    assert len(flo2) == 2 * flo2["path"].nunique()
    (inst,), failures = read_station_day(units["CM.FLO2.2019-12-24"])
    assert failures == [] and len(inst.stream) == 3 and _contiguous(inst.stream)

    instruments, _ = read_station_day(units["CM.CHI.2019-12-25"], pad_s=0)
    for tr in instruments[0].stream:
        assert tr.stats.starttime >= UTCDateTime("2019-12-25T00:00:00")
        assert tr.stats.endtime < UTCDateTime("2019-12-25T01:00:00")


def test_rescan_reuses_unchanged_rows(mesetas):
    folder, scan = mesetas
    again = scan_archive(folder, previous=scan.index)
    pd.testing.assert_frame_equal(again.index, scan.index)
    sel = StationSelection(stations=["CLEJA"])
    subset = scan_archive(folder, selection=sel, previous=scan.index)
    assert set(subset.index["station"]) == {"CLEJA"} and len(subset.index) == 6


# --------------------------------------------------------------------------- Hengill


def test_hengill_mixed_sampling_rates(shared_data: Path):
    scan = scan_archive(shared_data / "malmi_hengill_20181230" / "mseed", progress=True)
    assert scan.failures == [] and len(scan.index) == 60
    assert set(scan.index["sampling_rate"]) == {100.0, 200.0}
    units = {u.station: u for u in station_days(scan.index)}
    assert len(units) == 20
    for station, band, rate in (
        ("LAK24", "EH", 200.0),
        ("NESJV", "HH", 100.0),
        ("INNST", "HH", 200.0),
    ):
        (inst,), failures = read_station_day(units[station])
        assert failures == [] and inst.band == band and inst.components == "ZNE"
        assert {tr.stats.sampling_rate for tr in inst.stream} == {rate}


def test_one_channel_with_two_rates_keeps_the_dominant(shared_data: Path, tmp_path: Path):
    src = shared_data / "malmi_hengill_20181230" / "mseed"
    shutil.copy(src / "2C.BIT06..HHZ__20181230T030000Z__20181230T030500Z.mseed", tmp_path)
    later = obspy.read(str(src / "2C.BIT06..HHZ__20181230T030000Z__20181230T030500Z.mseed"))
    later[0].stats.starttime += 600  # a later 5 minutes recorded at 100 Hz
    later.decimate(2, no_filter=True)
    odd = tmp_path / "BIT06_100Hz.mseed"
    later.write(str(odd), format="MSEED")
    (unit,) = station_days(scan_archive(tmp_path).index)
    (inst,), failures = read_station_day(unit)
    assert [tr.stats.sampling_rate for tr in inst.stream] == [200.0]
    assert [f.path for f in failures] == [str(odd)]
    assert "100 Hz" in failures[0].reason and "200 Hz" in failures[0].reason


# --------------------------------------------------------------------------- SDS


def test_sds_tree(mesetas, tmp_path: Path):
    folder, _ = mesetas
    root = tmp_path / "sds"
    for station in ("CHI", "CLEJA"):
        st = obspy.read(str(folder / f"CM.{station}.*"))
        st.merge(method=1)
        for day in (dt.date(2019, 12, 24), dt.date(2019, 12, 25)):
            t0 = UTCDateTime(day.isoformat())
            part = st.slice(t0, t0 + 86400 - 1e-6)
            for tr in part:
                s = tr.stats
                doy = t0.julday
                name = f"{s.network}.{s.station}.{s.location}.{s.channel}.D.{t0.year}.{doy:03d}"
                path = root / str(t0.year) / s.network / s.station / f"{s.channel}.D" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                tr.write(str(path), format="MSEED")
    (root / ".snapshot").mkdir()
    (root / ".snapshot" / "junk.mseed").write_bytes(b"")  # hidden: ignored
    (root / "2019" / "partial.mseed.tmp").write_bytes(b"x")  # temporary: ignored

    scan = scan_archive(root)
    assert scan.failures == [] and scan.skipped == []
    assert set(scan.index["format"]) == {"MSEED"} and len(scan.index) == 9
    units = station_days(scan.index)
    assert [u.key for u in units] == [
        "CM.CHI.2019-12-24",
        "CM.CHI.2019-12-25",
        "CM.CLEJA.2019-12-24",
    ]
    # the 60 s pad reaches into the neighbouring day file
    assert len(units[0].paths) == 6 and len(units[1].paths) == 6

    flat = {u.key: u for u in station_days(scan_archive(folder).index)}
    for key in ("CM.CHI.2019-12-24", "CM.CHI.2019-12-25"):
        sds_data = _by_channel(read_station_day(units[[u.key for u in units].index(key)])[0])
        flat_data = _by_channel(read_station_day(flat[key])[0])
        assert sds_data.keys() == flat_data.keys()
        for seed_id, (tr,) in flat_data.items():
            (other,) = sds_data[seed_id]
            assert abs(other.stats.starttime - tr.stats.starttime) < 1e-5
            assert other.stats.npts == tr.stats.npts
            np.testing.assert_array_equal(other.data, tr.data)

    only = scan_archive(root, selection=StationSelection(stations=["CL*"], channels=["HNZ"]))
    assert set(only.index["station"]) == {"CLEJA"} and set(only.index["channel"]) == {"HNZ"}


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_archive(shared_data: Path, tmp_path: Path) -> dict[str, Path]:
    salton = shared_data / "phasenet_saltonsea_20201001"
    root = tmp_path / "bad"
    root.mkdir()
    good = root / "CI.BOM.mseed"
    shutil.copy(salton / "mseed" / "CI.BOM.2020-10-01T00:00.mseed", good)
    raw = (salton / "mseed" / "CI.COA.2020-10-01T00:00.mseed").read_bytes()
    truncated = root / "CI.COA.mseed"
    truncated.write_bytes(raw[: len(raw) // 2 + 1000])  # cut in the middle of a 4096-byte record
    sac_raw = (salton / "sac" / "CI.CRR.2020-10-01T00:00.HHZ.sac").read_bytes()
    truncated_sac = root / "CI.CRR.HHZ.sac"
    truncated_sac.write_bytes(sac_raw[:5000])
    empty = root / "CI.DRE.mseed"
    empty.write_bytes(b"")
    text = root / "x.mseed"
    text.write_text("network,station\nCI,ERR\n")
    # 4096-byte records followed by 512-byte records: valid miniSEED, not a truncated file
    mixed = root / "mixed_record_lengths.mseed"
    mixed.write_bytes(
        (salton / "mseed" / "CI.ERR.2020-10-01T00:00.mseed").read_bytes()
        + (shared_data / "elep_pnw" / "PB.B204..EH.ms").read_bytes()[: 512 * 7]
    )
    (root / "notes.txt").write_text("not a waveform and does not claim to be one\n")
    (root / ".hidden.mseed").write_text("ignored")
    (root / "download.tmp").write_bytes(raw[:100])
    return {
        "good": good,
        "truncated": truncated,
        "truncated_sac": truncated_sac,
        "empty": empty,
        "text": text,
    }


def test_bad_files_are_reported_and_the_scan_goes_on(bad_archive: dict[str, Path]):
    scan = scan_archive(bad_archive["good"].parent)
    reasons = {Path(f.path).name: f.reason for f in scan.failures}
    assert set(reasons) == {"CI.COA.mseed", "CI.CRR.HHZ.sac", "CI.DRE.mseed", "x.mseed"}
    assert reasons["CI.COA.mseed"].startswith("truncated miniSEED record")
    assert reasons["CI.CRR.HHZ.sac"].startswith("truncated SAC file")
    assert reasons["CI.DRE.mseed"] == "empty file (0 bytes)"
    assert reasons["x.mseed"].startswith("not a waveform file")
    assert all(Path(f.path).is_absolute() for f in scan.failures)
    assert [Path(p).name for p in scan.skipped] == ["notes.txt"]
    # the whole records before the cut one are indexed; the cut one is reported
    assert set(scan.index["station"]) == {"BOM", "ERR", "B204", "COA"}
    assert "whole records read" in reasons["CI.COA.mseed"]
    assert len(scan.index[scan.index["station"] == "BOM"]) == 3

    # a unit listing bad files still returns the good data
    unit = StationDay(
        "CI", "BOM", dt.date(2020, 10, 1), tuple(str(p) for p in bad_archive.values())
    )
    instruments, failures = read_station_day(unit)
    assert {Path(f.path).name for f in failures} == set(reasons)
    assert instruments[0].components == "ZNE"
    assert [tr.stats.npts for tr in instruments[0].stream] == [18000] * 3


def test_gap_splits_traces_and_overlap_is_resolved(shared_data: Path, tmp_path: Path):
    raw = obspy.read(str(shared_data / "elep_pnw" / "PB.B204..EH.ms"))
    t0 = raw[0].stats.starttime
    raw.trim(t0, t0 + 1800)
    first = raw.slice(t0, t0 + 600)
    second = raw.slice(t0 + 700, None)  # 100 s cut out
    (first + second).write(str(tmp_path / "gap.mseed"), format="MSEED")
    raw.slice(t0 + 1000, t0 + 1200).write(str(tmp_path / "overlap.mseed"), format="MSEED")

    scan = scan_archive(tmp_path)
    assert scan.failures == []
    gap_rows = scan.index[scan.index["path"].str.endswith("gap.mseed")]
    assert len(gap_rows) == 6  # two segments per channel
    (unit,) = station_days(scan.index)
    (inst,), failures = read_station_day(unit)
    assert failures == [] and _contiguous(inst.stream)
    for channel in ("EHZ", "EHN", "EHE"):
        parts = inst.stream.select(channel=channel)
        assert len(parts) == 2
        assert parts[0].stats.endtime == t0 + 600
        assert parts[1].stats.starttime == t0 + 700
        # the overlapping copy collapsed into the second part
        assert parts[1].stats.npts == 1100 * 100 + 1


def test_a_second_scan_in_the_process_reads_changed_files_only(salton_minute: Path, tmp_path: Path):
    """The process keeps its last index of an archive: files whose path, size and modification
    time are unchanged keep their rows (the command's check and its flow scan once); a replaced,
    added or removed file is seen, and another selection is scanned for itself."""
    folder = tmp_path / "archive"
    shutil.copytree(salton_minute / "mseed", folder)
    first = scan_archive(folder)
    assert first.failures == [] and first.index["station"].nunique() == 6
    bom = folder / "CI.BOM.2020-10-01T00:02.mseed"
    stat = bom.stat()
    # the same size and modification time: unchanged for the scan, not read again (before, the
    # overwritten file was read and reported unreadable)
    original = bom.read_bytes()
    bom.write_bytes(b"\0" * len(original))
    os.utime(bom, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = scan_archive(folder)
    assert again.failures == []
    pd.testing.assert_frame_equal(again.index, first.index)
    # a changed file (another size) is read again; a new file is added, a removed one dropped
    cut = obspy.read(io.BytesIO(original))
    cut.trim(cut[0].stats.starttime, cut[0].stats.starttime + 20)
    bom.unlink()
    cut.write(str(bom), format="MSEED")
    shutil.copy(folder / "CI.ERR.2020-10-01T00:02.mseed", folder / "copy.mseed")
    (folder / "CI.IMP.2020-10-01T00:02.mseed").unlink()
    third = scan_archive(folder)
    assert third.failures == []
    rows = third.index[third.index["path"] == str(bom.resolve())]
    assert len(rows) == 3 and (rows["end"] - rows["start"]).max() <= pd.Timedelta(seconds=20)
    assert (third.index["path"] == str((folder / "copy.mseed").resolve())).sum() == 3
    assert "IMP" not in set(third.index["station"])
    # another selection: its own scan, whatever was kept for the first
    only = scan_archive(folder, selection=StationSelection(channels=["HHZ"]))
    assert set(only.index["channel"]) == {"HHZ"}
    assert len(only.index) == len(third.index) // 3
