"""The origin quality gate: QuakeML evaluation status per origin (issue 23, defect 2).

A run where only 2 stations have coordinates used to write every origin as an event with an
ML. The 2-station metadata is the Salton Sea StationXML (SCSN) cut to 2 of its 16 stations.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from quakelake.archive.stations import read_stations
from quakelake.association import associate_day
from quakelake.params.association import OriginGateParams, PyOctoConfig

SCSN_EVENT = pd.Timestamp("2020-10-01T00:02:21.07Z")


def _two_stations(shared_data: Path, path: Path) -> Path:
    import obspy

    inv = obspy.read_inventory(str(shared_data / "phasenet_saltonsea_20201001" / "stations.xml"))
    inv[0].stations = [s for s in inv[0] if s.code in ("WMD", "IMP")]
    inv.write(str(path), format="STATIONXML")
    return path


def _reference_picks(shared_data: Path) -> pd.DataFrame:
    picks = pd.read_csv(
        shared_data / "phasenet_saltonsea_20201001" / "DERIVED_phasenet_ref_picks_first180s.csv"
    )
    picks["time"] = pd.to_datetime(picks["time"], utc=True, format="ISO8601")
    return picks


def test_gate_rejects_two_station_origins_and_reports_located_ones(shared_data, tmp_path):
    picks = _reference_picks(shared_data)
    day = dt.date(2020, 10, 1)
    two = read_stations(_two_stations(shared_data, tmp_path / "two.xml"))
    ev = associate_day(picks, two, day, PyOctoConfig()).events
    assert len(ev) >= 1
    assert set(ev["evaluation_mode"]) == {"automatic"}
    assert set(ev["evaluation_status"]) == {"rejected"}
    assert ev["evaluation_reason"].str.contains("stations 2 < 3").all()
    assert ev["evaluation_reason"].str.contains(r"gap \d+ > 320 deg").all()

    full = read_stations(shared_data / "phasenet_saltonsea_20201001" / "stations.xml")
    ev = associate_day(picks, full, day, PyOctoConfig()).events
    scsn = ev[(ev["time"] - SCSN_EVENT).abs() <= pd.Timedelta(seconds=2)]
    assert list(scsn["evaluation_status"]) == ["preliminary"]
    assert (ev.loc[ev["evaluation_status"] == "preliminary", "evaluation_reason"] == "").all()
    # every rule can be relaxed: with no geometry rules the two-station origins are reported
    loose = PyOctoConfig(
        gate=OriginGateParams(min_stations=2, max_gap_deg=None, max_horizontal_uncertainty_km=None)
    )
    ev = associate_day(picks, two, day, loose).events
    assert set(ev["evaluation_status"]) == {"preliminary"}


def test_two_station_run_reports_no_events(
    shared_data, weights_cache, prefect_server, lake_root, tmp_path, capsys
):
    from quakelake.cli import main

    salton = shared_data / "phasenet_saltonsea_20201001"
    two = _two_stations(shared_data, tmp_path / "two.xml")
    args = ["--lake", str(lake_root), "-F", str(two), "-M", "PhaseNet", "-W", "original"]
    assert main(["run", "-d", str(salton / "mseed"), *args, "--silent"]) == 0
    out, err = capsys.readouterr()
    from quakelake.lakehouse import Lake

    ev = Lake(lake_root).query("SELECT evaluation_status, evaluation_reason, magnitude FROM events")
    assert len(ev) >= 1 and set(ev["evaluation_status"]) == {"rejected"}
    assert ev["magnitude"].isna().all()
    assert "0 events written, lake holds 0 events for these days " in out
    assert f"({len(ev)} origins: 0 reported, {len(ev)} rejected: " in out
    assert "stations < 3" in out
    assert f"warning: the quality gate rejected all {len(ev)} origins" in err
    # the metadata QC table says why: the other stations with picks are not in the station
    # file, and the 2 that are located only rejected origins, so they measured no amplitude
    qc = Lake(lake_root).query("SELECT * FROM metadata_qc")
    missing = qc[~qc["in_metadata"]]
    picked = set(Lake(lake_root).query("SELECT DISTINCT station FROM picks")["station"])
    assert set(missing["station"]) == picked - {"WMD", "IMP"} and len(missing) >= 10
    assert not missing["has_coordinates"].any()
    assert missing["reason"].str.startswith("not in the station file").all()
    listed = qc[qc["in_metadata"]]
    assert set(listed["station"]) == {"WMD", "IMP"} and len(listed) == 6
    assert listed["used_picking"].all() and not listed["used_location"].any()
    assert not qc["used_magnitude"].any() and listed["response_valid"].all()
    assert listed["reason"].str.contains("only in origins the quality gate rejected").all()

    # the analyzer scores reported origins only: none here
    from quakelake.analysis.compare import load_events
    from quakelake.params.evaluation import RunSelection

    assert len(load_events(Lake(lake_root), RunSelection())) == 0

    # exports leave rejected origins out unless asked
    quakeml = tmp_path / "events.xml"
    assert main(["export", "--lake", str(lake_root), "--quakeml", str(quakeml)]) == 0
    assert f"left out {len(ev)} origins the quality gate rejected" in capsys.readouterr().out
    import obspy

    assert len(obspy.read_events(str(quakeml))) == 0
    assert main(["export", "--lake", str(lake_root), "--quakeml", str(quakeml), "--rejected"]) == 0
    catalog = obspy.read_events(str(quakeml))
    assert len(catalog) == len(ev)
    for event in catalog:
        origin = event.preferred_origin()
        assert (origin.evaluation_mode, origin.evaluation_status) == ("automatic", "rejected")
        assert origin.latitude_errors.uncertainty is not None
        assert origin.depth_errors.uncertainty is not None
        assert origin.quality.azimuthal_gap > 320
        assert not event.magnitudes


@pytest.mark.parametrize("bad", [{"max_gap_deg": 400}, {"min_stations": 0}])
def test_gate_settings_are_checked(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        OriginGateParams(**bad)
