"""Station files of the real data sets into the `stations` table schema."""

from __future__ import annotations

import pandas as pd
import pytest

from quakelake.archive.stations import (
    COLUMNS,
    StationFileError,
    read_stations,
    station_coordinates,
    write_stations,
)
from quakelake.lakehouse import Lake


def test_ogs_csv_without_network_or_elevation(shared_data):
    st = read_stations(shared_data / "ogs_rsfvg_2024" / "DERIVED_station_coords_from_hpc.csv")
    assert list(st.columns) == COLUMNS
    assert len(st) == 106
    acom = st[st["station"] == "ACOM"].iloc[0]
    assert acom["latitude"] == pytest.approx(46.548, abs=0.01)
    assert acom["longitude"] == pytest.approx(13.515, abs=0.01)
    assert (st["network"] == "").all() and st["elevation_m"].isna().all()


def test_csv_parquet_and_real_lists(shared_data):
    malmi = read_stations(shared_data / "malmi_hengill_20181230" / "stations.csv")
    assert (
        len(malmi) == 20 and set(malmi["network"]) >= {"2C"} and malmi["elevation_m"].notna().all()
    )
    chile = read_stations(shared_data / "pyocto_chile_test" / "stations.parquet")
    assert len(chile) == 20 and set(chile["network"]) == {"CX"} and "PB01" in set(chile["station"])
    real = read_stations(shared_data / "real_demo_italy_20161014" / "station.dat")
    arro = real[real["station"] == "ARRO"].iloc[0]
    assert arro["network"] == "IV" and arro["elevation_m"] == pytest.approx(253.0)


def test_stationxml_channel_epochs(salton_minute):
    st = read_stations(salton_minute / "stations.xml")
    assert st["channel"].str.len().eq(3).all()
    assert st["start"].notna().all() and st["sampling_rate"].gt(0).all()
    sites = station_coordinates(st)
    assert len(sites) == st.groupby(["network", "station", "location"]).ngroups


def test_stationxml_is_parsed_once_per_content(salton_minute, tmp_path, monkeypatch):
    """A rerun reads the parsed table from the per-user cache: same rows, no ObsPy parse.

    An edited file (other bytes) is parsed anew, and a damaged cache entry is parsed and replaced.
    """
    import quakelake.archive.stations as stations

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    xml = tmp_path / "stations.xml"
    xml.write_bytes((salton_minute / "stations.xml").read_bytes())
    parsed = stations._parse_stationxml(xml)
    first = read_stations(xml)
    pd.testing.assert_frame_equal(first, parsed)
    (entry,) = stations.stationxml_cache_dir().glob("*.parquet")

    def refuse(path):
        raise AssertionError(f"parsed {path} again")

    monkeypatch.setattr(stations, "_parse_stationxml", refuse)
    stations._read_stations_once.cache_clear()
    pd.testing.assert_frame_equal(read_stations(xml), parsed)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # one station less: other bytes, another entry, one station fewer
    text = xml.read_text()
    start = text.index("<Station ", text.index("<Station ") + 1)
    end = text.index("</Station>", start) + len("</Station>")
    xml.write_text(text[:start] + text[end:])
    fewer = read_stations(xml)
    assert fewer["station"].nunique() == parsed["station"].nunique() - 1
    assert len(list(stations.stationxml_cache_dir().glob("*.parquet"))) == 2
    # a damaged entry is parsed again and replaced
    entry.write_bytes(b"not parquet")
    xml.write_text(text)
    stations._read_stations_once.cache_clear()
    pd.testing.assert_frame_equal(read_stations(xml), parsed)
    pd.testing.assert_frame_equal(stations._finish(pd.read_parquet(entry)), parsed)


def test_an_inventory_is_parsed_once_per_file_version_and_each_reader_gets_its_own(
    salton_minute, tmp_path
):
    """The metadata check and the magnitudes both read the StationXML: one parse, two copies."""
    import obspy

    from quakelake.archive.stations import read_inventory

    xml = tmp_path / "stations.xml"
    xml.write_bytes((salton_minute / "stations.xml").read_bytes())
    first, second = read_inventory(xml), read_inventory(xml)
    assert first == second == obspy.read_inventory(str(xml))
    first[0][0][0].location_code = "99"  # a reader changes its copy (magnitudes do: "--" -> "")
    assert read_inventory(xml)[0][0][0].location_code != "99"
    # the file edited: the new version is read
    text = xml.read_text()
    start = text.index("<Station ")
    end = text.index("</Station>", start) + len("</Station>")
    xml.write_text(text[:start] + text[end:])
    assert len(read_inventory(xml)[0]) == len(second[0]) - 1


def test_missing_columns_name_the_file(tmp_path):
    bad = tmp_path / "stations.csv"
    bad.write_text("name,x,y\nA,1,2\n")
    with pytest.raises(StationFileError, match=r"stations.csv lacks columns latitude, longitude;"):
        read_stations(bad)
    with pytest.raises(StationFileError, match="does not exist"):
        read_stations(tmp_path / "absent.xml")


def test_write_into_lake(salton_minute, lake_root):
    st = read_stations(salton_minute / "stations.xml")
    path = write_stations(lake_root, st, source="salton")
    assert path.is_file()
    back = Lake(lake_root).query("SELECT * FROM stations WHERE source = ?", ["salton"])
    assert len(back) == len(st) == 18
    assert pd.api.types.is_float_dtype(back["latitude"])


def test_same_station_file_makes_no_new_snapshot(salton_minute, lake_root):
    """Associating again with the same -F writes no stations file; an edited one replaces it."""
    st = read_stations(salton_minute / "stations.xml")
    first = write_stations(lake_root, st, source="salton")
    lake = Lake(lake_root)
    snapshots = len(lake.history())
    assert write_stations(lake_root, st, source="salton") == first
    assert len(lake.history()) == snapshots
    moved = st.assign(elevation_m=st["elevation_m"].fillna(0) + 1.0)
    second = write_stations(lake_root, moved, source="salton")
    assert second != first and len(lake.history()) == snapshots + 1
    back = lake.query("SELECT * FROM stations WHERE source = ?", ["salton"])
    assert len(back) == 18  # the edited file replaced the first, rows not doubled
    assert (
        back["elevation_m"].sort_values().to_numpy()
        == moved["elevation_m"].sort_values().to_numpy()
    ).all()
