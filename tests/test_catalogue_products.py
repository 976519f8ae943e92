"""Catalogue products: OGS event types, leaving non-earthquakes out, analysis figures and tables."""

from __future__ import annotations

import pandas as pd
import pytest

from quakelake.analysis.evaluation import MatchParams, evaluate, match_events
from quakelake.analysis.plotting import (
    plot_cumulative_events,
    plot_event_map,
    plot_precision_recall,
)
from quakelake.analysis.report import summary_tables
from quakelake.catalogs import read_catalog, read_ogs_catalogue


@pytest.fixture(scope="module")
def ogs_txt(shared_data):
    return shared_data / "ogs_rsfvg_2024" / "manual" / "RSFVG-2024.txt"


def _with_blasts(ogs_txt, tmp_path, rows: list[int]):
    """A copy of the OGS 2024 catalogue with the event type of ``rows`` (data lines) set to quarry blast."""
    lines = ogs_txt.read_text(encoding="latin-1").splitlines()
    for i in rows:
        lines[1 + i] = lines[1 + i].replace("[earthquake]", "[quarry blast]")
    path = tmp_path / "RSFVG-2024-blasts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def test_ogs_event_types_imported(ogs_txt, tmp_path):
    """The bulletin's event_type column lands in reference_events (QuakeML vocabulary)."""
    events = read_ogs_catalogue(ogs_txt).events
    assert len(events) == 1858 and set(events["event_type"]) == {"earthquake"}
    typed = read_catalog(_with_blasts(ogs_txt, tmp_path, [3, 10])).events
    assert typed["event_type"].value_counts().to_dict() == {"earthquake": 1856, "quarry blast": 2}


def test_analyzer_can_leave_non_earthquakes_out(ogs_txt, tmp_path):
    """With event_types=['earthquake'] the two blasts are no longer reference events: our copies become extras."""
    reference = read_catalog(_with_blasts(ogs_txt, tmp_path, [3, 10])).events.head(40)
    ours = reference.assign(
        event_id="q" + reference["event_id"],
        associator="pyocto",
        magnitude=reference["magnitude"] + 0.1,
    ).drop(columns="event_type")
    no_picks = pd.DataFrame(columns=["event_id", "station_id", "phase", "time"])
    everything = evaluate(pd.DataFrame(), ours, reference, no_picks)
    only_eq = evaluate(
        pd.DataFrame(), ours, reference, no_picks, MatchParams(event_types=["earthquake"])
    )
    assert everything.reference_events == 40 and only_eq.reference_events == 38
    count = only_eq.event_matches["outcome"].value_counts().to_dict()
    assert count == {"TP": 38, "FP": 2}
    # magnitude residuals: ours minus the bulletin's ML/Md, on matched events
    mag = only_eq.metrics[only_eq.metrics["level"] == "magnitude"].iloc[0]
    assert mag["tp"] == 38 and mag["residual_median"] == pytest.approx(0.1)
    tables = summary_tables(only_eq.metrics)
    assert (
        "residual_median (s)"
        in tables["Events per catalogue (associator x model x weights)"].columns
    )
    assert (
        "residual_median (magnitude units)"
        in tables["Magnitude residuals per catalogue (ours - reference)"]
    )


def test_figures_tell_associators_apart_and_show_values(shared_data):
    """Map: one marker per associator, reference events, station codes; cumulative plot with a
    one-event reference; precision/recall bars per phase with their values."""
    folder = shared_data / "phasenet_saltonsea_20201001"
    scsn = read_catalog(folder / "DERIVED_scsn_events_first10min.csv").events
    reference = scsn.head(1)  # the one SCSN event inside the 180 s of waveforms
    gamma = scsn.head(3).assign(event_id=lambda d: "g" + d["event_id"], associator="gamma")
    pyocto = scsn.head(2).assign(event_id=lambda d: "p" + d["event_id"], associator="pyocto")
    events = pd.concat([gamma, pyocto], ignore_index=True)
    matches = pd.concat(
        [match_events(g, reference).assign(associator=a) for a, g in events.groupby("associator")],
        ignore_index=True,
    )
    from quakelake.archive.stations import read_stations

    stations = read_stations(folder / "stations.xml")
    ax = plot_event_map(matches, events, reference, stations).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "reference (1)" in labels
    assert {
        "gamma: matched (1)",
        "gamma: extra (not in reference) (2)",
        "pyocto: matched (1)",
    } <= set(labels)
    assert {t.get_text() for t in ax.texts} == set(stations["station"])

    ax = plot_cumulative_events(events, reference).axes[0]
    ref_line = next(line for line in ax.get_lines() if line.get_label() == "reference (1)")
    assert list(ref_line.get_ydata()) == [0, 1, 1]  # a visible step even for one event

    metrics = pd.DataFrame(
        {
            "level": "pick",
            "group_by": "model,weights,phase",
            "model": "PhaseNet",
            "weights": "original",
            "phase": ["P", "S"],
            "precision": [0.91, 0.85],
            "recall": [0.97, 0.88],
            "f1": [0.94, 0.865],
        }
    )
    ax = plot_precision_recall(metrics).axes[0]
    values = {t.get_text() for t in ax.texts}
    assert {"0.91", "0.97", "0.85", "0.88"} <= values
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "PhaseNet/original\nP",
        "PhaseNet/original\nS",
    ]
