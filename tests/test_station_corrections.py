"""ML station corrections and configurable attenuation laws (issue 23), on INGV's real station magnitudes.

INGV's QuakeML carries, per event, the Wood-Anderson amplitudes, the arrival distances and the
station MLs; our station MLs are their amplitudes through Hutton & Boore (1987), seeded into a
lake as one catalogue, INGV's bulletin imported as the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quakelake.association import station_corrections as sc
from quakelake.lakehouse import Lake, write_table
from quakelake.params.magnitudes import AttenuationLaw, MagnitudeError


@pytest.fixture(scope="module")
def ingv(shared_data) -> list[Path]:
    return sorted((shared_data / "ingv_quakeml_20210101").glob("*.qml"))


@pytest.fixture(scope="module")
def ingv_station_ml(ingv) -> tuple[pd.DataFrame, pd.DataFrame]:
    events, sm = sc.read_quakeml_station_magnitudes(ingv)
    sm = sm.dropna(subset=["amplitude_m", "distance_km"]).reset_index(drop=True)
    ours = AttenuationLaw().magnitude(sm["amplitude_m"], sm["distance_km"])
    return events, sm.assign(reference_ml=sm["magnitude"], magnitude=ours)


def test_read_station_magnitudes_of_a_real_bulletin(ingv_station_ml):
    events, sm = ingv_station_ml
    assert len(events) == 10 and len(sm) == 262 and sm["event_id"].nunique() == 8
    # INGV's station MLs are HB87 of their own amplitudes: ours agree to a few hundredths
    assert (sm["magnitude"] - sm["reference_ml"]).abs().median() < 0.03


def test_corrections_are_estimated_with_their_support(ingv_station_ml):
    events, sm = ingv_station_ml
    table = sc.estimate_corrections(sm, events, against="event", min_events=2)
    # 10 stations recorded two of the 8 events; no other has the support asked for
    assert len(table) == 10 and set(table["n_events"]) == {2}
    one = table.iloc[0]
    mine = sm[sm["station_id"].str.startswith(one["station_id"] + ".")]
    ref = events.set_index("event_id")["magnitude"]
    residuals = (mine["event_id"].map(ref) - mine["magnitude"]).groupby(mine["event_id"]).median()
    assert one["correction"] == pytest.approx(np.median(residuals))
    assert one["spread"] == pytest.approx(np.std(residuals, ddof=1))
    # applied where estimated, they pull those stations' MLs onto the event MLs
    at = sm[sm["station_id"].map(sc.station_key).isin(set(table["station_id"]))]
    before = (at["magnitude"] - at["event_id"].map(ref)).abs().mean()
    after = (sc.apply_corrections(at, table) - at["event_id"].map(ref)).abs().mean()
    assert after < before
    # against INGV's own station MLs: the corrections are the small law differences
    theirs = sm[["event_id", "station_id", "reference_ml"]].rename(
        columns={"reference_ml": "magnitude"}
    )
    vs_station = sc.estimate_corrections(sm, theirs, against="station", min_events=2)
    assert len(vs_station) == 10 and vs_station["correction"].abs().max() < 0.1


def _seed(lake_root: Path, ingv: list[Path], events: pd.DataFrame, sm: pd.DataFrame) -> None:
    from quakelake.catalogs import import_catalog

    import_catalog(lake_root, ingv, "ingv")
    ref = Lake(lake_root).read("reference_events")
    ours = ref[ref["event_id"].isin(set(sm["event_id"]))].assign(
        event_id=lambda d: "q" + d["event_id"].astype(str),
        run_id="assoc-1",
        associator="pyocto",
        config_fingerprint="cfg1",
        pick_source="lake-PhaseNet-instance",
    )
    cols = ["event_id", "run_id", "associator", "config_fingerprint", "pick_source", "time"]
    cols += ["latitude", "longitude", "depth_km"]
    write_table(lake_root, "events", ours[cols], name="e", partition={"day": "2021-01-01"})
    rows = sm.assign(
        event_id="q" + sm["event_id"],
        run_id="assoc-1",
        associator="pyocto",
        config_fingerprint="cfg1",
        law="HB87",
        magnitude_type="ML",
    )[["event_id", "run_id", "associator", "config_fingerprint", "station_id", "magnitude", "law"]]
    write_table(lake_root, "station_magnitudes", rows, name="m", partition={"day": "2021-01-01"})


def test_cli_estimates_stores_and_applies_corrections(ingv, ingv_station_ml, tmp_path, capsys):
    from quakelake.cli import build_parser, load_config, main

    events, sm = ingv_station_ml
    lake_root = tmp_path / "lake"
    _seed(lake_root, ingv, events, sm)
    args = ["ml-corrections", "--lake", str(lake_root), "--reference", "ingv"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "catalogue: pyocto PhaseNet/instance" in out and "8 events matched to ingv" in out
    stored = Lake(lake_root).query("SELECT * FROM station_corrections")
    assert len(stored) == 10 and set(stored["n_events"]) == {2} and set(stored["law"]) == {"HB87"}
    assert set(stored["reference"]) == {"ingv"} and stored["spread"].notna().all()

    # associate/run with --ml-corrections: the law carries them, its name says so
    ns = build_parser().parse_args(
        ["associate", "--lake", str(lake_root), "--ml-law", "HB87", "--ml-corrections", "ingv"]
    )
    cfg = load_config(ns)
    law = cfg.magnitude.law
    assert law.name == "HB87+corrections:ingv"
    assert law.station_corrections == pytest.approx(
        dict(zip(stored["station_id"], stored["correction"], strict=True))
    )
    station = stored["station_id"].iloc[0]
    assert law.correction(station + ".") == pytest.approx(stored["correction"].iloc[0])

    # an unknown reference, or a law the corrections were not estimated with: one error line
    for extra, message in (
        (["--ml-corrections", "ogs"], "error: --ml-corrections ogs: the lake has no station "),
        (
            ["--ml-law", "0 1.3; 60 2.8; 400 4.5", "--ml-corrections", "ingv"],
            "error: --ml-corrections ingv: the lake has no station corrections of that reference "
            "for law table (known: ingv)",
        ),
    ):
        code = main(["associate", "--lake", str(lake_root), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(message), err


def test_seiscomp_style_laws(tmp_path):
    law = AttenuationLaw.from_text("0 1.3; 60 2.8; 400 4.5; 1000 5.85")
    assert law.name == "table" and law.table == [(0, 1.3), (60, 2.8), (400, 4.5), (1000, 5.85)]
    # SeisComP's own logA0 parameter: distance:logA0, negated into -log A0
    same = AttenuationLaw(table="0:-1.3,60:-2.8,400:-4.5,1000:-5.85")
    assert same.table == law.table
    assert law.minus_log_a0(np.array([30.0, 230.0])) == pytest.approx([2.05, 3.65])
    # ML of 1 mm at 60 km: -log A0 (60) = 2.8
    assert law.magnitude(1e-3, 60.0) == pytest.approx(2.8)
    assert AttenuationLaw.from_text("HB87") == AttenuationLaw()
    with pytest.raises(MagnitudeError, match="'60' is not 'distance value'"):
        AttenuationLaw.from_text("0 1.3; 60")
    from quakelake.cli import main

    code = main(["associate", "--lake", str(tmp_path / "lake"), "--ml-law", "0 1.3; 60"])
    assert code == 2
