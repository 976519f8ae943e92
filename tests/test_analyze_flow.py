"""The analyze flow on a real Prefect server: OGS manual picks/events vs the imported OGS bulletin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quakelake.analysis.plotting import plot_station_day, save
from quakelake.catalogs import read_catalog
from quakelake.lakehouse import Lake, write_table
from quakelake.params.evaluation import MatchParams, RunSelection


def _seed_lake(lake_root: Path, ogs) -> tuple[int, int]:
    """Store two days of OGS manual picks and events as if a pipeline had produced them."""
    end = pd.Timestamp("2024-01-03", tz="UTC")
    picks = ogs.picks[ogs.picks["time"] < end]
    # drop 10 % of the picks and shift the rest by 0.1 s: recall 0.9, residual 0.1 s
    kept = picks.iloc[[i for i in range(len(picks)) if i % 10]]
    rows = kept.assign(
        run_id="pipe-1",
        model="Manual",
        weights="ogs",
        band="HH",
        probability=1.0,
        network="",
        station_id="." + kept["station"] + ".",
        time=kept["time"] + pd.Timedelta(seconds=0.1),
    ).drop(
        # a reference pick's columns (its uncertainty too) are not the picks table's
        columns=["event_id", "channel", "weight", "source_file", "time_uncertainty_s"],
        errors="ignore",
    )
    for day, group in rows.groupby(rows["time"].dt.strftime("%Y-%m-%d")):
        write_table(lake_root, "picks", group, name=f"manual.{day}", partition={"day": day})
    events = ogs.events[ogs.events["time"] < end]
    ev = events.drop(columns=["magnitude_type", "source_file", "event_type"]).assign(
        run_id="pipe-1",
        associator="pyocto",
        event_id="ml-" + events["event_id"],
        longitude=events["longitude"] + 0.05,  # ~4 km east: still matched within 8 km
    )
    for day, group in ev.groupby(ev["time"].dt.strftime("%Y-%m-%d")):
        write_table(lake_root, "events", group, name=f"pyocto.{day}", partition={"day": day})
    n_ref_picks = len(picks)
    return len(kept), n_ref_picks


@pytest.mark.slow
def test_analyze_flow_writes_matches_metrics_report(
    prefect_server, shared_data, lake_root, tmp_path
):
    from quakelake.flows.analyze import analyze_run

    manual = shared_data / "ogs_rsfvg_2024" / "manual"
    n_picks, n_ref = _seed_lake(lake_root, read_catalog(manual))
    summary = analyze_run(
        lake=lake_root,
        reference="ogs",
        selection=RunSelection(run_ids=["pipe-1"]),
        params=MatchParams(),
        reference_paths=[manual],
        report_dir=tmp_path / "report",
    )
    lake = Lake(lake_root)
    run_id = summary["run_id"]
    assert summary["reference_picks"] == n_ref
    m = lake.query(
        "SELECT tp, fp, fn, recall, precision, residual_median FROM metrics "
        "WHERE run_id = ? AND reference = ? AND group_by = ?",
        [run_id, "ogs", "model,weights"],
    ).iloc[0]
    assert (m["tp"], m["fp"], m["fn"]) == (n_picks, 0, n_ref - n_picks)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(n_picks / n_ref)
    assert m["residual_median"] == pytest.approx(0.1, abs=1e-6)
    ev = lake.query(
        "SELECT outcome, count(*) AS n, max(distance_km) AS km FROM event_matches "
        "WHERE run_id = ? GROUP BY outcome",
        [run_id],
    ).set_index("outcome")
    assert list(ev.index) == ["TP"] and ev.loc["TP", "km"] < 5
    runs = lake.query("SELECT status FROM runs WHERE run_id = ?", [run_id])
    assert runs["status"].tolist() == ["completed"]
    units = lake.query("SELECT unit, status FROM units WHERE run_id = ? ORDER BY unit", [run_id])
    assert units["status"].tolist() == ["done", "done"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Picks per model x weights" in report and "Manual" in report
    for name in ("pick_residuals", "precision_recall", "event_map", "cumulative_events"):
        png = tmp_path / "report" / f"{name}.png"
        assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report" / "report.html").read_text().count("<img") == 4
    # The UI renders the report artifact in a browser: its plots are inline images, not file links.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    flow_run_id = lake.query("SELECT flow_run_id FROM runs WHERE run_id = ?", [run_id])[
        "flow_run_id"
    ][0]
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["analysis-report"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert run_id in artifact.data
    assert artifact.data.count("](data:image/png;base64,iVBORw0KGgo") == 4
    assert ".png)" not in artifact.data


def test_station_day_figure(shared_data, tmp_path):
    import obspy

    folder = shared_data / "phasenet_saltonsea_20201001"
    stream = obspy.read(str(folder / "mseed" / "CI.IMP.2020-10-01T00:00.mseed"))
    ref = read_catalog(folder / "DERIVED_phasenet_ref_picks_first180s.csv").picks
    ref = ref[ref["station"] == "IMP"]
    assert ref["phase"].value_counts().to_dict() == {"P": 12, "S": 10}  # the CSV's IMP rows
    fig = plot_station_day(stream, None, ref, ref, title="CI.IMP")
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == [tr.stats.channel for tr in stream]
    assert fig._suptitle.get_text() == "CI.IMP"
    t0 = min(tr.stats.starttime for tr in stream)
    expected = sorted(
        (pd.to_datetime(ref["time"], utc=True) - pd.Timestamp(t0.datetime, tz="UTC"))
        .dt.total_seconds()
        .round(3)
    )
    for ax in axes:
        trace, *marks = ax.get_lines()
        assert len(trace.get_xdata()) == stream[0].stats.npts
        solid = sorted(round(m.get_xdata()[0], 3) for m in marks if m.get_linestyle() == "-")
        dashed = sorted(round(m.get_xdata()[0], 3) for m in marks if m.get_linestyle() == "--")
        assert solid == dashed == expected  # one line per pick at its time, picks and reference
        colours = {m.get_color() for m in marks}
        assert colours == {"tab:blue", "tab:red"}  # P and S told apart
    path = save(fig, tmp_path / "imp.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
