"""Reference catalogue readers against the real OGS, INGV and Salton Sea files."""

from __future__ import annotations

import pandas as pd
import pytest

from quakelake.catalogs import (
    CatalogError,
    detect_format,
    import_catalog,
    read_catalog,
    read_hypo71_phases,
    read_hypo71_printout,
    read_hypo71_summary,
    read_ogs_catalogue,
    read_quakeml,
)
from quakelake.catalogs.export import write_quakeml
from quakelake.lakehouse import Lake


@pytest.fixture(scope="module")
def ogs(shared_data):
    return shared_data / "ogs_rsfvg_2024" / "manual"


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_detect_formats(ogs, shared_data):
    assert detect_format(ogs / "RSFVG-2024.dat") == "hypo71_phase"
    assert detect_format(ogs / "RSFVG-2024.pun") == "hypo71_summary"
    assert detect_format(ogs / "RSFVG-2024.hpc") == "hypo71_printout"
    assert detect_format(ogs / "RSFVG-2024.txt") == "ogs_txt"
    assert detect_format(shared_data / "phasenet_saltonsea_20201001" / "stations.xml") is None
    assert detect_format(shared_data / "phasenet_saltonsea_20201001" / "mseed.csv") is None


def test_hypo71_phase_file_counts_and_rows(ogs):
    picks = read_hypo71_phases(ogs / "RSFVG-2024.dat").picks
    # 15,694 station cards, each with a P; 11,237 also carry an S
    assert (picks["phase"] == "P").sum() == 15694
    assert (picks["phase"] == "S").sum() == 11237
    assert picks["event_id"].nunique() == 1858
    assert picks["pick_id"].is_unique
    # first card: DAVOePc2 1240101 0351 P 02.26 s, S 04.66 s weight 2
    davo = picks[picks["event_id"] == "2024_00001"].set_index("pick_id")
    assert davo.loc["2024_00001.DAVO.P", "time"] == _ts("2024-01-01T03:51:02.26")
    assert davo.loc["2024_00001.DAVO.S", "time"] == _ts("2024-01-01T03:51:04.66")
    assert davo.loc["2024_00001.DAVO.P", "weight"] == 2.0
    assert len(davo) == 20  # 10 stations, all with P and S
    # seconds beyond 60 roll into the next minute (ZIAN 2053 + 61.08 s)
    zian = picks.set_index("pick_id").loc["2024_00004.ZIAN.P", "time"]
    assert zian == _ts("2024-01-01T20:54:01.08")


def test_printout_agrees_with_phase_file(ogs):
    printout = read_hypo71_printout(ogs / "RSFVG-2024.hpc")
    phases = read_hypo71_phases(ogs / "RSFVG-2024.dat").picks
    assert len(printout.events) == 1858
    both = phases.merge(printout.picks, on="pick_id", suffixes=("_dat", "_hpc"))
    assert len(both) == len(phases) == len(printout.picks) == 26931
    assert (both["time_dat"] == both["time_hpc"]).all()


def test_summary_and_catalogue_agree(ogs):
    pun = read_hypo71_summary(ogs / "RSFVG-2024.pun").events
    txt = read_ogs_catalogue(ogs / "RSFVG-2024.txt").events
    assert len(pun) == len(txt) == 1858
    both = pun.merge(txt, on="event_id", suffixes=("_pun", "_txt"))
    assert len(both) == 1858
    assert (both["time_pun"] == both["time_txt"]).all()
    assert (both["latitude_pun"] - both["latitude_txt"]).abs().max() < 1e-4
    assert (both["longitude_pun"] - both["longitude_txt"]).abs().max() < 1e-4
    first = pun.iloc[0]
    assert first["event_id"] == "2024_00001"
    assert first["time"] == _ts("2024-01-01T03:50:59.05")
    assert first["latitude"] == pytest.approx(46 + 49.99 / 60)
    assert first["longitude"] == pytest.approx(10 + 4.83 / 60)
    assert first["depth_km"] == pytest.approx(9.27)
    assert first["magnitude"] == pytest.approx(1.54) and first["magnitude_type"] == "Md"
    last = txt.iloc[-1]
    assert last["event_id"] == "2024_01858"
    assert last["time"] == _ts("2024-12-31T21:36:51.69")
    assert last["magnitude"] == pytest.approx(0.3) and last["magnitude_type"] == "ML"


def test_read_whole_ogs_folder(ogs):
    cat = read_catalog(ogs)
    assert len(cat.events) == 1858
    assert len(cat.picks) == 26931
    # the .txt wins for events (ML), picks per event are those of the .dat
    assert set(cat.events["magnitude_type"]) == {"ML"}
    per_event = cat.picks.groupby("event_id").size()
    assert (cat.events.set_index("event_id")["n_picks"] == per_event).all()
    assert set(cat.picks["event_id"]) == set(cat.events["event_id"])


@pytest.mark.slow
def test_quakeml_ingv(shared_data):
    cat = read_catalog(shared_data / "ingv_quakeml_20210101")
    assert len(cat.events) == 10
    assert len(cat.picks) == 672
    counts = cat.events.set_index("event_id")["n_picks"]
    assert counts["smi:webservices.ingv.it/fdsnws/event/1/query?eventId=25883121"] == 154
    assert (cat.picks.groupby("event_id").size() == counts[counts > 0]).all()
    one = read_quakeml(
        shared_data / "ingv_quakeml_20210101" / "20210101-000333__25883121__INGV-EVENT.qml"
    ).events.iloc[0]
    assert one["time"] == _ts("2021-01-01T00:03:33.23")
    assert one["latitude"] == pytest.approx(44.3323) and one["depth_km"] == pytest.approx(26.1)
    assert one["magnitude"] == pytest.approx(2.4) and one["magnitude_type"] == "ML"
    assert {"IV", "MN", "OX"} <= set(cat.picks["network"])


def test_csv_picks_and_events(shared_data):
    cat = read_catalog(shared_data / "phasenet_saltonsea_20201001")
    assert len(cat.picks) == 184
    assert (cat.picks["phase"] == "P").sum() == 96
    assert cat.picks.iloc[0]["station_id"] == "CI.IMP."
    assert len(cat.events) == 9
    ev = cat.events.iloc[0]
    assert ev["time"] == _ts("2020-10-01T00:02:21.07")
    assert ev["depth_km"] == pytest.approx(2.51) and ev["longitude"] == pytest.approx(-115.585)


@pytest.mark.slow
def test_quakeml_round_trip(shared_data, tmp_path):
    cat = read_catalog(shared_data / "ingv_quakeml_20210101")
    path = write_quakeml(cat.events, cat.picks, tmp_path / "out.xml", evaluation_mode=None)
    back = read_catalog(path)
    assert len(back.events) == 10 and len(back.picks) == 672
    assert (back.events["time"].to_numpy() == cat.events["time"].to_numpy()).all()


@pytest.mark.slow
def test_import_catalog_is_idempotent(ogs, shared_data, lake_root):
    counts = import_catalog(lake_root, [ogs], "ogs")
    assert counts["events"] == 1858 and counts["picks"] == 26931
    import_catalog(lake_root, [ogs], "ogs")
    import_catalog(lake_root, shared_data / "ingv_quakeml_20210101", "ingv")
    lake = Lake(lake_root)
    got = lake.query(
        "SELECT catalog, count(*) AS n FROM reference_events GROUP BY catalog ORDER BY catalog"
    )
    assert got.to_dict("list") == {"catalog": ["ingv", "ogs"], "n": [10, 1858]}
    n = lake.query("SELECT count(*) AS n FROM reference_picks WHERE catalog = ?", ["ogs"])
    assert n["n"].iloc[0] == 26931


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.bin"
    bad.write_text("hello")
    with pytest.raises(CatalogError, match="notes.bin"):
        read_catalog(bad)
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "missing.dat")
    with pytest.raises(CatalogError, match="name"):
        import_catalog(tmp_path / "lake", tmp_path, "bad name/")


def test_pnsn_analyst_pick_csv_with_epoch_timestamps(shared_data):
    """PNSN/ELEP analyst picks: epoch-second `timestamp`, `--` for the empty location."""
    import csv as _csv
    import datetime as _dt

    from quakelake.catalogs import read_catalog

    path = shared_data / "elep_pnw" / "UW.SHW.2022.037.csv"
    with path.open() as fh:
        rows = list(_csv.DictReader(fh))
    cat = read_catalog(path)
    assert len(cat.picks) == len(rows) and len(cat.events) == 0
    expected = [
        _dt.datetime(
            int(r["year"]),
            int(r["month"]),
            int(r["day"]),
            int(r["hour"]),
            int(r["minute"]),
            int(r["second"]),
            int(r["microsecond"]),
            tzinfo=_dt.UTC,
        )
        for r in rows
    ]
    assert [t.to_pydatetime() for t in cat.picks["time"]] == expected  # to the microsecond
    assert set(cat.picks["station_id"]) == {"UW.SHW."}
    assert cat.picks["phase"].tolist() == [r["phase"] for r in rows]


def test_catalogue_errors_name_what_is_missing(tmp_path):
    from quakelake.catalogs import CatalogError, read_catalog

    no_time = tmp_path / "picks.csv"
    no_time.write_text("network,station,phase,arrival\nUW,SHW,P,soon\n")
    with pytest.raises(
        CatalogError, match=r"no time column .*its columns: network, station, phase, arrival"
    ):
        read_catalog(no_time)
    bad_time = tmp_path / "bad.csv"
    bad_time.write_text(
        "network,station,phase,time\nUW,SHW,P,2022-02-06T02:14:59Z\nUW,SHW,S,yesterday\n"
    )
    with pytest.raises(
        CatalogError, match=r"column 'time': 1 values are not times, e\.g\. yesterday \(lines 3\)"
    ):
        read_catalog(bad_time)
    junk = tmp_path / "events.xml"
    junk.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(CatalogError, match="is not QuakeML"):
        read_catalog(junk)


def test_csv_picks_with_posix_second_times(shared_data):
    # PNSN analyst picks (ELEP data) give their times as POSIX seconds next to calendar columns.
    import pandas as pd

    path = shared_data / "elep_pnw" / "UW.SHW.2022.037.csv"
    raw = pd.read_csv(path)
    picks = read_catalog(path).picks
    assert len(picks) == len(raw) == 7
    calendar = pd.to_datetime(
        raw[["year", "month", "day", "hour", "minute", "second", "microsecond"]], utc=True
    )
    assert (picks["time"].reset_index(drop=True) - calendar).abs().max() <= pd.Timedelta(
        microseconds=1
    )
    assert set(picks["station"]) == {"SHW"} and set(picks["phase"]) <= {"P", "S"}
