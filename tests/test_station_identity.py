"""One station identity: ``station_id`` = NET.STA.LOC everywhere, the band in its own column.

Salton Sea (CI, 180 s): CI.IMP's real recording is read twice, once as its broadband ``HH``
and once under a strong-motion band code ``HN`` (a co-located accelerometer sees the same
ground motion), so one station picks the same onsets on two bands.
"""

from __future__ import annotations

import hashlib

import obspy
import pandas as pd
import pytest
from pick_rows import reference_pick_rows

from quakelake.analysis.compare import load_reference
from quakelake.analysis.evaluation import MatchParams, evaluate, station_key, station_level
from quakelake.archive.stations import read_stations
from quakelake.archive.waveforms import InstrumentStream
from quakelake.association import associate as association
from quakelake.association.inputs import one_band_per_station
from quakelake.lakehouse import Lake, queries, write_table
from quakelake.params import PickParams
from quakelake.params.association import PyOctoConfig
from quakelake.picking import models as picking
from quakelake.tasks.associate import PickSource, read_picks

PHASENET = PickParams(models=["PhaseNet"], weights=["original"])


def _reference_picks(salton) -> pd.DataFrame:
    """The real PhaseNet reference picks (``CI.IMP..HH``) as lake pick rows."""
    csv = salton / "DERIVED_phasenet_ref_picks_first180s.csv"
    return reference_pick_rows(csv, [f"ref{i:03d}" for i in range(len(pd.read_csv(csv)))])


def _second_band(picks: pd.DataFrame, stations: list[str], band: str = "HN") -> pd.DataFrame:
    """The picks of ``stations`` again, as their second band would pick them (50 ms later)."""
    again = picks[picks["station"].isin(stations)].copy()
    again["band"] = band
    again["pick_id"] = again["pick_id"] + "-" + band
    again["time"] = again["time"] + pd.Timedelta(milliseconds=50)
    return again


def test_picks_carry_the_trace_id_and_their_band(salton, weights_cache):
    """Picks on two bands of CI.IMP: one station_id, two bands, distinct ids (band in the hash)."""
    raw = obspy.read(str(salton / "mseed" / "CI.IMP.2020-10-01T00:00.mseed"))
    hn = raw.copy()
    for tr in hn:
        tr.stats.channel = "HN" + tr.stats.channel[-1]
    instruments = [
        InstrumentStream("CI", "IMP", "", "HH", raw),
        InstrumentStream("CI", "IMP", "", "HN", hn),
    ]
    spec = picking.ModelSpec("PhaseNet", "original")
    model = picking.load_model("PhaseNet", "original", "cpu")
    picks = picking.pick_streams(model, instruments, spec, PHASENET)
    assert set(picks["station_id"]) == {"CI.IMP."}
    assert set(picks["band"]) == {"HH", "HN"}
    hh, hn_picks = picks[picks["band"] == "HH"], picks[picks["band"] == "HN"]
    # the same samples give the same onsets on both bands, under different pick ids
    assert len(hh) >= 4 and sorted(hh["time"]) == sorted(hn_picks["time"])
    assert picks["pick_id"].is_unique
    # ids hash NET.STA.LOC.BAND: a pick's id is the one it had before the band had its column
    for row in hh.itertuples():
        text = f"PhaseNet|original|CI.IMP..HH|{row.phase}|{row.time.value}"
        assert row.pick_id == hashlib.sha1(text.encode()).hexdigest()[:20]


def test_association_sees_one_band_per_station(salton):
    """A second band at three stations changes no event: the associator gets the HH picks only."""
    stations = read_stations(salton / "stations.xml")
    picks = _reference_picks(salton)
    both = pd.concat([picks, _second_band(picks, ["IMP", "WMD", "COA"])], ignore_index=True)
    kept, messages = one_band_per_station(both)
    assert sorted(kept["pick_id"]) == sorted(picks["pick_id"])
    assert len(messages) == 1 and "CI.COA. HN" in messages[0] and "kept HH" in messages[0]

    cfg = PyOctoConfig()
    one = association.associate(picks, stations, cfg)
    two = association.associate(both, stations, cfg)
    assert len(one.events) >= 1
    cols = ["time", "latitude", "longitude", "depth_km", "n_picks", "n_stations"]
    pd.testing.assert_frame_equal(one.events[cols], two.events[cols])
    assert not two.assignments["pick_id"].str.endswith("-HN").any()
    assert set(two.assignments["station_id"]) <= set(picks["station_id"])
    assert any("another band" in m for m in two.messages)


@pytest.mark.slow
def test_lake_written_before_the_band_column_reads_the_same(salton, lake_root):
    """A lake whose picks store NET.STA.LOC.BAND in station_id (older lakes) reads NET.STA.LOC.

    The association input keeps one band per station and the analysis matches every pick to the
    reference it was made from.
    """
    from quakelake.catalogs import import_catalog

    picks = _reference_picks(salton)
    old = pd.concat([picks, _second_band(picks, ["IMP"])], ignore_index=True)
    old["station_id"] = old["station_id"] + "." + old["band"]  # how older lakes stored it
    write_table(lake_root, "picks", old, name="old.2020-10-01", partition={"day": "2020-10-01"})
    import_catalog(lake_root, salton / "DERIVED_phasenet_ref_picks_first180s.csv", "phasenet")
    lake = Lake(lake_root)
    stored = lake.query("SELECT DISTINCT station_id FROM picks WHERE station = 'IMP'")
    assert set(stored["station_id"]) == {"CI.IMP..HH", "CI.IMP..HN"}

    read = queries.picks(lake)
    assert set(read["station_id"]) == set(picks["station_id"])
    day = pd.Timestamp("2020-10-01", tz="UTC")
    assoc = read_picks(lake_root, PickSource(), day, day + pd.Timedelta(days=1))
    assert sorted(assoc["pick_id"]) == sorted(picks["pick_id"])

    events, ref = load_reference(lake, "phasenet")
    # every location code of this reference is empty: it is compared on NET.STA
    assert station_level(ref) == "network"
    hh = read[read["band"] == "HH"]
    ev = evaluate(hh, pd.DataFrame(), events, ref, MatchParams())
    overall = ev.metrics[ev.metrics["group_by"] == "model,weights"].iloc[0]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (len(picks), 0, 0)


def test_references_without_locations_or_networks_compare_on_what_they_name(shared_data):
    """OGS bulletins name station codes only: compared on STA; a NET-only reference on NET.STA."""
    from quakelake.catalogs import read_catalog

    ref = read_catalog(shared_data / "ogs_rsfvg_2024" / "manual" / "RSFVG-2024.dat").picks
    assert len(ref) > 1000
    assert station_level(ref) == "station"
    assert set(station_key(ref.head(3), "station")) <= set(ref["station"])
    with_net = ref.head(3).assign(network="OX", location="")
    assert station_level(with_net) == "network"
    assert station_key(with_net, "network").tolist() == ("OX." + with_net["station"]).tolist()
    assert station_level(with_net.assign(location="00")) == "station_id"
