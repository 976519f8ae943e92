"""The per-user cache trusts no entry because it parses (issue 21 item 3).

Planted, tampered and wrong-typed entries of the three kinds (StationXML tables, first
association passes, eikonal travel-time tables) are recomputed with a warning, on real data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_association_auto import ogs_month

from quakelake.archive import stations as st
from quakelake.association.settings import resolve_for_network
from quakelake.association.velocity import TravelTimeTable, cached_table, standard_model
from quakelake.lakehouse import cache
from quakelake.params.association import PyOctoConfig

SALTON_XML = "phasenet_saltonsea_20201001/stations.xml"


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    st._read_stations_once.cache_clear()
    yield tmp_path / "cache"
    st._read_stations_once.cache_clear()


def _old_key(*parts: bytes | str) -> str:
    """The key of the cache before issue 21 (no code version, no format)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:40]


def _warned(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_planted_stationxml_table_is_never_used(shared_data, tmp_path, user_cache, caplog):
    xml = tmp_path / "stations.xml"
    xml.write_bytes((shared_data / SALTON_XML).read_bytes())
    truth = st._parse_stationxml(xml)
    shifted = truth.assign(latitude=truth["latitude"] + 0.5)
    # the entry the old scheme would have looked up
    old = cache.cache_dir("stationxml") / f"{_old_key('stationxml', '1', xml.read_bytes())}.parquet"
    old.parent.mkdir(parents=True)
    shifted.to_parquet(old, index=False)
    pd.testing.assert_frame_equal(st.read_stations(xml), truth)
    # the entry the new scheme wrote, replaced by the shifted table (plain Parquet, no checksum)
    (entry,) = [p for p in cache.cache_dir("stationxml").glob("*.parquet") if p != old]
    shifted.to_parquet(entry, index=False)
    st._read_stations_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        pd.testing.assert_frame_equal(st.read_stations(xml), truth)
    assert any(str(entry) in m and "checksum" in m for m in _warned(caplog))
    # ... and with a checksum made for it: the coordinates are not the file's
    table = pa.Table.from_pandas(shifted, preserve_index=False)
    meta = {
        b"quakelake.cache": json.dumps(
            {"key": entry.stem, "sha256": cache.frame_digest(entry.stem, shifted)}
        ).encode()
    }
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **meta}), entry)
    st._read_stations_once.cache_clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pd.testing.assert_frame_equal(st.read_stations(xml), truth)
    assert any("not those of the StationXML file" in m for m in _warned(caplog))
    # the entry is replaced by the true table, which is used from then on
    pd.testing.assert_frame_equal(st._finish(pd.read_parquet(entry)), truth)


def test_a_wrong_typed_stationxml_table_is_recomputed(shared_data, tmp_path, user_cache, caplog):
    xml = tmp_path / "stations.xml"
    xml.write_bytes((shared_data / SALTON_XML).read_bytes())
    truth = st.read_stations(xml)
    (entry,) = cache.cache_dir("stationxml").glob("*.parquet")
    wrong = truth.astype({"latitude": str, "start": str}).assign(start="yesterday")
    wrong.to_parquet(entry, index=False)
    st._read_stations_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        pd.testing.assert_frame_equal(st.read_stations(xml), truth)
    assert any(str(entry) in m for m in _warned(caplog))


@pytest.mark.slow  # a few seconds: out of the fast lane (< 2 min)
def test_a_planted_first_pass_is_never_trusted(shared_data, user_cache, caplog):
    picks, stations, _, _ = ogs_month(shared_data, 3)
    counts = picks.groupby("station_id").size().rename("n").reset_index()

    def derived() -> dict:
        _, settings = resolve_for_network(PyOctoConfig(), stations, counts, 744.0, picks)
        d = settings["derived"]
        return {k: d[k] for k in ("area.depth_km", "velocity.vp_vs", "velocity.vp_vs_events")}

    truth = derived()
    assert 1.70 <= truth["velocity.vp_vs"] <= 1.85
    (entry,) = cache.cache_dir("first_pass").glob("*.json")
    planted = {"depths": [3.0] * 40, "vp_vs": 2.4, "vp_vs_events": 40}
    entry.write_text(json.dumps(planted))  # as the cache before issue 21 stored a value
    assert derived() == truth
    # a plain value (the old layout), one with a checksum made for it, a wrong-typed one
    with_sum = {
        "key": entry.stem,
        "sha256": cache.digest(entry.stem, json.dumps(planted, sort_keys=True).encode()),
        "value": planted,
    }
    wrong = {"depths": "deep", "vp_vs": "1.7", "vp_vs_events": "many"}
    wrong_sum = {
        "key": entry.stem,
        "sha256": cache.digest(entry.stem, json.dumps(wrong, sort_keys=True).encode()),
        "value": wrong,
    }
    for plant, why in (
        (planted, "not a QuakeLake cache entry"),
        (with_sum, "vp_vs 2.4"),
        (wrong_sum, "depths"),
    ):
        entry.write_text(json.dumps(plant))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert derived() == truth
        assert any(str(entry) in m and why in m for m in _warned(caplog)), (why, _warned(caplog))


def test_first_pass_schema():
    from quakelake.association.settings import first_pass_problem

    good = {"depths": [1.0, 12.5], "vp_vs": 1.74, "vp_vs_events": 12}
    assert first_pass_problem(good) is None
    assert first_pass_problem({**good, "vp_vs": None, "vp_vs_events": 0}) is None
    for bad in (
        {**good, "vp_vs": 2.4},
        {**good, "vp_vs": 1.74, "vp_vs_events": 3},
        {**good, "depths": ["3"]},
        {**good, "depths": [5000.0]},
        {**good, "vp_vs_events": -1},
        {**good, "extra": 1},
        [1, 2],
    ):
        assert first_pass_problem(bad), bad


def test_a_planted_travel_time_table_is_recomputed(user_cache, caplog):
    model = standard_model("ak135", 40.0)
    path, truth = cached_table(model, 2.0, 60.0, 40.0)
    assert path.is_relative_to(user_cache)  # the user's cache, not the shared /tmp

    def plant(table: TravelTimeTable) -> None:
        nx, nz = table.p.shape
        path.write_bytes(
            struct.pack("iid", nx, nz, table.delta) + table.p.tobytes() + table.s.tobytes()
        )

    slower = TravelTimeTable(truth.delta, truth.p * 1.2, truth.s * 1.2)
    late = TravelTimeTable(truth.delta, truth.p + 5.0, truth.s + 5.0)
    sidecar = path.with_name(path.name + ".sha256")
    for table, fix_sum, why in (
        (slower, False, "checksum"),
        (late, True, "not zero at the source"),
    ):
        plant(table)
        if fix_sum:
            sidecar.write_text(cache.digest(path.name[3:-7], path.read_bytes()))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again, table_read = cached_table(model, 2.0, 60.0, 40.0)
        assert again == path
        np.testing.assert_array_equal(table_read.p, truth.p)
        np.testing.assert_array_equal(TravelTimeTable.read_pyocto(path).s, truth.s)
        assert any(why in m for m in _warned(caplog)), (why, _warned(caplog))
