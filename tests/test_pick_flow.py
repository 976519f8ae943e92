"""The pick flow on real recordings with real pretrained weights, into a real lake."""

from __future__ import annotations

import shutil
from pathlib import Path

import obspy
import pandas as pd
import pytest

from quakelake.config import PickParams, StationSelection, TimeWindow
from quakelake.lakehouse import Lake, stem_of
from quakelake.picking import models as picking

PHASENET = PickParams(models=["PhaseNet"], weights=["original"])


def _flow():
    from quakelake.flows.pick import pick_phases

    return pick_phases


def _lake_files(root: Path) -> dict[str, str]:
    """Committed pick files: logical file (unit key + inputs) -> the data file holding it."""
    return {stem_of(p): p.name for p in Lake(root).files("picks")}


def _matched(picks: pd.DataFrame, ref: pd.DataFrame, tol: float) -> int:
    hits = 0
    for row in ref.itertuples():
        cand = picks[
            (picks["station_id"] == row.station_id)
            & (picks["band"] == row.band)
            & (picks["phase"] == row.phase)
        ]
        if len(cand) and (cand["time"] - row.time).abs().min() <= pd.Timedelta(seconds=tol):
            hits += 1
    return hits


def test_salton_sea_picks_agree_with_reference_and_plain_seisbench(
    salton, weights_cache, prefect_server, lake_root
):
    summary = _flow()(salton / "mseed", lake_root, pick=PHASENET)
    assert summary["done"] == 16 and summary["failed"] == 0
    picks = Lake(lake_root).read("picks")
    assert set(picks["run_id"]) == {summary["run_id"]}
    assert set(zip(picks["model"], picks["weights"], strict=True)) == {("PhaseNet", "original")}

    # >= 85 % of the reference PhaseNet P picks away from the window edges, within 0.5 s.
    ref = pd.read_csv(salton / "DERIVED_phasenet_ref_picks_first180s.csv")
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    # the reference names NET.STA.LOC.BAND; the lake: station_id NET.STA.LOC and its band
    ref["band"] = ref["station_id"].str.rsplit(".", n=1).str[1]
    ref["station_id"] = ref["station_id"].str.rsplit(".", n=1).str[0]
    assert (picks["station_id"] == picks["network"] + "." + picks["station"] + ".").all()
    assert set(picks["band"]) == {"HH"}
    t0 = pd.Timestamp("2020-10-01T00:00:00.003", tz="UTC")
    inner = ref[
        (ref["time"] > t0 + pd.Timedelta(seconds=3))
        & (ref["time"] < t0 + pd.Timedelta(seconds=177))
    ]
    p_ref = inner[inner["phase"] == "P"]
    assert _matched(picks, p_ref, 0.5) / len(p_ref) >= 0.85

    # The pipeline loses no pick the model makes: plain SeisBench classify on the same files.
    model = picking.load_model("PhaseNet", "original", "cpu")
    plain = []
    for path in sorted((salton / "mseed").glob("*.mseed")):
        out = model.classify(obspy.read(str(path)), **picking.classify_kwargs(PHASENET))
        plain.extend(out.picks)
    assert len(plain) == len(picks)
    plain_df = picking.picks_frame(plain, picking.ModelSpec("PhaseNet", "original"), {})
    for phase in "PS":
        ours = picks[picks["phase"] == phase]["time"].sort_values().reset_index(drop=True)
        theirs = plain_df[plain_df["phase"] == phase]["time"].sort_values().reset_index(drop=True)
        assert (ours - theirs).abs().max() <= pd.Timedelta(milliseconds=10)

    # Lineage: the run row holds the config and versions; the ledger one row per unit.
    lake = Lake(lake_root)
    run = lake.read("runs")
    assert run["status"].tolist() == ["completed"] and "PhaseNet" in run["config_json"][0]
    assert "PhaseNet/original" in run["weights_json"][0]
    assert (
        len(
            lake.query(
                "SELECT * FROM units WHERE run_id = ? AND status = 'done'", [summary["run_id"]]
            )
        )
        == 16
    )


def test_rerun_writes_nothing_and_force_recomputes(
    salton, weights_cache, prefect_server, lake_root
):
    sel = StationSelection(stations=["BOM", "COA", "CRR"])
    first = _flow()(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    files = _lake_files(lake_root)
    assert first["done"] == 3 and len(files) == 3
    second = _flow()(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    assert second["done"] == 0 and second["skipped"] == 3
    assert _lake_files(lake_root) == files
    n = len(Lake(lake_root).read("picks"))
    forced = _flow()(salton / "mseed", lake_root, selection=sel, pick=PHASENET, force=True)
    assert forced["done"] == 3
    after = _lake_files(lake_root)
    # the same logical files, each in a new data file (the old ones stay for time travel)
    assert after.keys() == files.keys() and all(after[k] != files[k] for k in files)
    assert len(Lake(lake_root).read("picks")) == n
    # Other thresholds recompute the units and replace their picks (never two pick sets of one
    # model x weights side by side: association would read both).
    strict = _flow()(
        salton / "mseed",
        lake_root,
        selection=sel,
        pick=PHASENET.model_copy(update={"p_threshold": 0.5}),
    )
    assert strict["done"] == 3 and len(_lake_files(lake_root)) == 3
    picks = Lake(lake_root).read("picks")
    assert len(picks) < n and (picks.loc[picks["phase"] == "P", "probability"] >= 0.5).all()


def test_bad_files_are_reported_and_skipped(
    salton, weights_cache, prefect_server, lake_root, tmp_path
):
    archive = tmp_path / "archive"
    archive.mkdir()
    for sta in ("BOM", "COA"):
        shutil.copy(salton / "mseed" / f"CI.{sta}.2020-10-01T00:00.mseed", archive)
    data = (salton / "mseed" / "CI.CRR.2020-10-01T00:00.mseed").read_bytes()
    (archive / "CI.CRR.truncated.mseed").write_bytes(data[: len(data) // 2 + 100])
    (archive / "empty.mseed").write_bytes(b"")
    (archive / "notes.mseed").write_text("this is not a waveform\n")
    # A 200 Hz version of a station: a rate PhaseNet (100 Hz) cannot use directly.
    st = obspy.read(str(salton / "mseed" / "CI.DRE.2020-10-01T00:00.mseed"))
    st.resample(200.0)
    st.write(str(archive / "CI.DRE.200hz.mseed"), format="MSEED")

    summary = _flow()(archive, lake_root, pick=PHASENET)
    assert summary["unreadable_files"] == 3
    lake = Lake(lake_root)
    bad = lake.query(
        "SELECT unit, status, error FROM units WHERE stage = 'pick' AND status IN ('failed', 'partial')"
    )
    names = bad["unit"].map(lambda p: Path(p).name)
    reasons = dict(zip(names, bad["error"], strict=True))
    statuses = dict(zip(names, bad["status"], strict=True))
    # unreadable files fail; the cut file is read up to its cut record and says what was lost
    assert statuses == {
        "empty.mseed": "failed",
        "notes.mseed": "failed",
        "CI.CRR.truncated.mseed": "partial",
    }
    assert "truncated miniSEED record" in reasons["CI.CRR.truncated.mseed"]
    stations = set(lake.read("picks")["station"])
    assert {"BOM", "COA", "DRE", "CRR"} <= stations  # good, resampled and readable part picked


def test_no_waveforms_in_range_fails_clearly(salton, weights_cache, prefect_server, lake_root):
    from quakelake.flows.pick import NoWaveforms

    window = TimeWindow(start="1998-01-01", end="1998-01-10")
    with pytest.raises(NoWaveforms, match="no waveforms in .* 1998-01-01..1998-01-10"):
        _flow()(salton / "mseed", lake_root, window=window, pick=PHASENET)


@pytest.mark.slow
def test_continuous_two_instrument_types_find_the_analyst_picks(
    shared_data, weights_cache, prefect_server, lake_root
):
    folder = shared_data / "elep_pnw"
    summary = _flow()(folder, lake_root, pick=PHASENET)
    assert summary["failed"] == 0
    picks = Lake(lake_root).read("picks")
    assert set(picks["band"]) == {"HH", "EH"}
    analyst = pd.concat([pd.read_csv(p) for p in folder.glob("*.csv")])
    analyst["time"] = pd.to_datetime(analyst["timestamp"], unit="s", utc=True)
    inside = analyst[analyst["time"] < pd.Timestamp("2022-02-06T04:00", tz="UTC")]
    inside = inside.assign(
        station_id=inside["network"] + "." + inside["station"] + ".",
        band=inside["channel"].str[:2],
    )
    assert len(inside) == 6
    assert _matched(picks, inside, 0.5) >= 5


@pytest.mark.slow
def test_chunked_accelerometer_and_mixed_rates_run_through(
    shared_data, weights_cache, prefect_server, lake_root
):
    mesetas = _flow()(
        shared_data / "seismonitor_mesetas_2019" / "mseed",
        lake_root,
        selection=StationSelection(stations=["CLEJA", "URMC"]),
        pick=PHASENET,
    )
    # URMC spans two days (19:00 -> 01:00), CLEJA ends at 23:00
    assert mesetas["failed"] == 0 and mesetas["done"] == 3
    malmi = _flow()(shared_data / "malmi_hengill_20181230" / "mseed", lake_root, pick=PHASENET)
    assert malmi["failed"] == 0 and malmi["done"] == 20
    picks = Lake(lake_root).read("picks")
    assert {"HN", "HH"} <= set(picks[picks["network"] == "CM"]["band"])
    assert picks[picks["network"] == "2C"]["station"].nunique() >= 15


def test_a_batch_fails_its_bad_units_alone_and_keeps_going(
    salton, weights_cache, prefect_server, tmp_path, monkeypatch
):
    """One pick task holds several station-days: each unit succeeds or fails on its own.

    A file truncated after the archive was indexed fails its unit (named), the other units of
    the batch are picked; a lake that cannot be written (its ``picks`` folder is a file) is a
    transient error: each unit is retried (the delays set to 0 here) and returned failed with the
    OS error, the batch still answers for every unit, and once the path is cleared it is done.
    """
    from prefect import flow

    from quakelake.tasks import pick as pick_tasks
    from quakelake.tasks.pick import index_archive, pick_station_days

    archive = tmp_path / "archive"
    shutil.copytree(salton / "mseed", archive)
    lake = tmp_path / "lake"
    units = sorted(
        index_archive.fn(archive, lake, TimeWindow(), StationSelection())[0], key=lambda u: u.key
    )[:4]
    spec = picking.available_specs(PHASENET, "cpu")[0][0]
    bad = units[1].paths[0]
    Path(bad).write_bytes(Path(bad).read_bytes()[:3000])  # corrupted after the scan
    monkeypatch.setattr(pick_tasks, "UNIT_RETRY_DELAYS_S", (0.0, 0.0))

    @flow
    def one_batch(lake: Path) -> list:
        return pick_station_days(units, spec, PHASENET, StationSelection(), lake, "r", False, {})

    results = one_batch(lake)
    assert [r.unit for r in results] == [f"{spec.label}:{u.key}" for u in units]
    assert [r.status for r in results] == ["done", "failed", "done", "done"]
    assert Path(bad).name in results[1].error
    assert all(r.rows > 0 and r.changes for r in (results[0], results[2], results[3]))

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "picks").write_text("not a folder\n")
    results = one_batch(blocked)
    assert [r.status for r in results] == ["failed"] * 4
    for r in (results[0], results[2], results[3]):
        assert r.error.startswith("NotADirectoryError") and str(blocked / "picks") in r.error
    assert Path(bad).name in results[1].error  # its own reason, not the lake's
    (blocked / "picks").unlink()
    assert [r.status for r in one_batch(blocked)] == ["done", "failed", "done", "done"]


def test_a_rerun_records_done_units_skipped_without_a_task(
    salton, weights_cache, prefect_server, lake_root
):
    """Units whose picks are committed are recorded by the flow itself: the same ledger rows, no
    Prefect task (one cost the flow ~0.3 s, issue 26)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    sel = StationSelection(stations=["BOM", "COA"])
    first = _flow()(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    second = _flow()(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    assert (first["done"], second["skipped"], second["done"]) == (2, 2, 0)
    units = Lake(lake_root).read("units").sort_values("unit")
    columns = ["stage", "unit", "output", "inputs"]
    picked = units[units["run_id"] == first["run_id"]][columns].reset_index(drop=True)
    skipped = units[units["run_id"] == second["run_id"]]
    assert (skipped["status"] == "skipped").all()
    pd.testing.assert_frame_equal(skipped[columns].reset_index(drop=True), picked)
    assert second["ran_on"] == first["ran_on"]  # this process, as its tasks would say
    runs = Lake(lake_root).read("runs")
    (flow_run,) = set(runs.loc[runs["run_id"] == second["run_id"], "flow_run_id"])
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run)]))
        )
    names = sorted(t.name for t in tasks)
    assert names and all(n.startswith("index-archive") for n in names), names
    # before: one "pick BOM..COA 2020-10-01 PhaseNet/original" task per batch of units too
