"""StationXML as data centres deliver it: every valid file loads (issue 23, defect 1).

The files are built from the Salton Sea StationXML (SCSN, ``phasenet_saltonsea_20201001``) with
ObsPy, changed the way other data centres write theirs: open epochs closed at 2500-12-31
(RESIF, ICGC) or 2599-12-31 (EarthScope), no end date, several epochs per channel, ``HH1/HH2``
horizontals, channels without a response or with sensor and datalogger stages only, and
locations ``""``, ``00`` and ``--``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from quakelake.archive.stations import read_stations, station_coordinates, stations_at


def _inventory(shared_data: Path):
    import obspy

    return obspy.read_inventory(str(shared_data / "phasenet_saltonsea_20201001" / "stations.xml"))


def _as_delivered(shared_data: Path, path: Path) -> Path:
    """Write the Salton Sea StationXML changed the way data centres deliver theirs."""
    from obspy import UTCDateTime

    inv = _inventory(shared_data)
    stations = {s.code: s for s in inv[0]}
    # RESIF/ICGC: open epochs end 2500-12-31; EarthScope: 2599-12-31; some give no end date
    for code, end in (("BOM", 2500), ("COA", 2599), ("CRR", None)):
        sta = stations[code]
        sta.end_date = UTCDateTime(end, 12, 31, 23, 59, 59) if end else None
        for cha in sta:
            cha.end_date = sta.end_date
    # HH1/HH2 horizontals (and a BH1/BH2 pair) instead of N/E
    for cha in stations["SWS"]:
        cha.code = {"HHN": "HH1", "HHE": "HH2"}.get(cha.code, cha.code)
    for cha in stations["ERR"]:
        cha.code = {"HHN": "BH1", "HHE": "BH2", "HHZ": "BHZ"}.get(cha.code, cha.code)
    # a channel without a response, one with sensor and datalogger stages only
    frk = list(stations["FRK"])
    frk[0].response = None
    frk[1].response.response_stages = frk[1].response.response_stages[:2]
    # locations 00 and --
    for cha in stations["IMP"]:
        cha.location_code = "00"
    for cha in stations["RXH"]:
        cha.location_code = "--"
    # a second epoch of every SAL channel: the station moved 0.1 deg north when the first ended
    sal = stations["SAL"]
    moved = []
    for cha in sal:
        new = copy.deepcopy(cha)
        new.start_date = cha.end_date
        new.end_date = UTCDateTime(2599, 12, 31, 23, 59, 59)
        new.latitude = cha.latitude + 0.1
        moved.append(new)
    sal.channels.extend(moved)
    sal.end_date = UTCDateTime(2599, 12, 31, 23, 59, 59)
    inv.write(str(path), format="STATIONXML")
    return path


@pytest.fixture
def delivered(shared_data, tmp_path) -> Path:
    return _as_delivered(shared_data, tmp_path / "stations.xml")


def test_stationxml_as_data_centres_deliver_it_loads(shared_data, delivered):
    st = read_stations(delivered)
    # 16 stations x 3 channels, plus the second epoch of SAL's 3 channels
    assert len(st) == 51 and st["station"].nunique() == 16
    # far-future and missing end dates are open epochs: no end
    for code in ("BOM", "COA", "CRR"):
        assert st.loc[st["station"] == code, "end"].isna().all(), code
    assert st.loc[st["station"] == "SLV", "end"].notna().all()
    assert set(st.loc[st["station"] == "SWS", "channel"]) == {"HH1", "HH2", "HHZ"}
    assert set(st.loc[st["station"] == "ERR", "channel"]) == {"BH1", "BH2", "BHZ"}
    assert set(st.loc[st["station"] == "IMP", "location"]) == {"00"}
    assert set(st.loc[st["station"] == "RXH", "location"]) == {""}
    assert st["latitude"].notna().all() and st["elevation_m"].notna().all()


def test_the_epoch_valid_for_the_data_places_the_station(shared_data, delivered):
    st = read_stations(delivered)
    sal = st[st["station"] == "SAL"]
    old_lat = float(sal["latitude"].min())
    day = pd.Timestamp("2020-10-01", tz="UTC")
    then = station_coordinates(stations_at(st, day, day + pd.Timedelta(days=1)))
    assert float(then.loc[then["station"] == "SAL", "latitude"].iloc[0]) == pytest.approx(old_lat)
    later = pd.Timestamp("2024-01-01", tz="UTC")
    now = station_coordinates(stations_at(st, later, later + pd.Timedelta(days=1)))
    assert float(now.loc[now["station"] == "SAL", "latitude"].iloc[0]) == pytest.approx(
        old_lat + 0.1
    )
    # every site keeps one row either way: a site whose epochs all ended before 2024 (SLV's
    # ended 2021-08-03) keeps them (the metadata QC table says its epoch does not cover the data)
    assert len(now) == len(then) == 16


def test_associate_with_delivered_stationxml(
    shared_data, delivered, prefect_server, lake_root, capsys
):
    """`associate -F` with the delivered file runs and locates the SCSN event (it once refused the file)."""
    from quakelake.cli import main

    picks = shared_data / "phasenet_saltonsea_20201001" / "DERIVED_phasenet_ref_picks_first180s.csv"
    code = main(
        ["associate", "--lake", str(lake_root), "--picks", str(picks), "-F", str(delivered)]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "error:" not in out.err
    from quakelake.lakehouse import Lake

    events = Lake(lake_root).query(
        "SELECT time, latitude, longitude FROM events WHERE evaluation_status = 'preliminary'"
    )
    assert any(
        abs((pd.Timestamp(t) - pd.Timestamp("2020-10-01T00:02:21.07Z")).total_seconds()) <= 2
        and abs(la - 33.092) < 0.08
        for t, la in zip(events["time"], events["latitude"], strict=True)
    )
    # the metadata QC table says, per channel, what the metadata gave and what it was used for
    qc = Lake(lake_root).query("SELECT * FROM metadata_qc")
    assert len(qc) == 48 and qc["in_metadata"].all() and qc["has_coordinates"].all()
    frk = qc[qc["station"] == "FRK"].set_index("channel")
    no_response = frk[~frk["has_response"]]
    assert len(no_response) == 1 and not no_response["response_valid"].iloc[0]
    assert "no response: no amplitude" in no_response["reason"].iloc[0]
    two_stages = frk[frk["response_stages"] == 2]
    assert len(two_stages) == 1 and two_stages["response_valid"].iloc[0]
    # SAL: the first epoch (ends 2020-10-26) is the one valid for the data, not the open one
    sal = qc[qc["station"] == "SAL"]
    assert len(sal) == 3 and sal["epoch_covers_data"].all()
    assert (sal["epoch_end"] == pd.Timestamp("2020-10-26T17:30:00Z")).all()
    sws = qc[qc["station"] == "SWS"]
    assert set(sws["channel"]) == {"HH1", "HH2", "HHZ"} and sws["used_picking"].all()
    assert qc.loc[qc["used_location"], "station"].nunique() >= 8


def test_amplitudes_on_hh1_hh2_and_none_without_a_response(shared_data, delivered):
    """Wood-Anderson amplitudes of the SCSN event with the delivered metadata.

    HH1/HH2 (and BH1/BH2) are horizontals: they get amplitudes like N/E, and so do RXH's
    channels of location ``--``. FRK's channel without a response gets none, with the reason;
    its channel with sensor and datalogger stages only gets one.
    """
    import obspy
    from test_magnitudes import SCSN_EVENT, _salton_event_picks

    from quakelake.association import magnitudes as mag

    folder = shared_data / "phasenet_saltonsea_20201001"
    inventory = mag.read_inventory([delivered])
    stream = obspy.Stream()
    for path in sorted((folder / "mseed").glob("*.mseed")):
        stream += obspy.read(str(path))
    renamed = {"SWS": {"HHN": "HH1", "HHE": "HH2"}, "ERR": {"HHN": "BH1", "HHE": "BH2"}}
    for tr in stream:
        tr.stats.channel = renamed.get(tr.stats.station, {}).get(tr.stats.channel, tr.stats.channel)
    stations = read_stations(delivered)
    picks = _salton_event_picks(folder, stations)
    picked = set(picks["station_id"].str.split(".").str[1])
    assert {"SWS", "ERR", "FRK"} <= picked
    amps, messages = mag.measure_amplitudes(
        "scsn", picks, stream, inventory, origin_time=SCSN_EVENT["time"]
    )
    by_station = amps.groupby("station")["channel"].apply(set).to_dict()
    assert by_station["SWS"] == {"HH1", "HH2"} and by_station["ERR"] == {"BH1", "BH2"}
    assert by_station["FRK"] == {"HHN"}
    assert any(m.startswith("scsn CI.FRK..HHE: no usable response") for m in messages)
    # the other stations are untouched: two horizontals each
    assert len(amps) == 2 * len(picked) - 1, (by_station, messages)
