"""Explicit pyarrow schemas of every lake table and where each table lives.

Partition columns (hive ``key=value`` folders) are not stored inside the files: DuckDB adds
them back from the path when it reads the lake. Column names follow SeisBench's
``PickList.to_dataframe()`` and QuakeML vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its file schema and the hive partition keys of its folders."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()
    description: str = ""


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields])


STATIONS = TableSpec(
    "stations",
    _schema(
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channel", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("elevation_m", pa.float64()),
        ("sampling_rate", pa.float64()),
        ("start", TS),
        ("end", TS),
    ),
    ("source",),
    "one row per channel epoch",
)

WAVEFORM_INDEX = TableSpec(
    "waveform_index",
    _schema(
        ("path", pa.string()),
        ("format", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channel", pa.string()),
        ("start", TS),
        ("end", TS),
        ("sampling_rate", pa.float64()),
        ("npts", pa.int64()),
        ("file_size", pa.int64()),
        ("file_mtime", pa.float64()),
    ),
    ("archive",),
    "one row per trace segment in a waveform archive",
)

PICKS = TableSpec(
    "picks",
    _schema(
        ("pick_id", pa.string()),
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("weights", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("band", pa.string()),  # HH, EH, HN ...: the instrument the pick was made on
        ("station_id", pa.string()),  # NET.STA.LOC (SeisBench's trace id); NET.STA.LOC.BAND before
        ("phase", pa.string()),
        ("time", TS),
        ("start_time", TS),
        ("end_time", TS),
        ("probability", pa.float32()),
        (
            "denoiser",
            pa.string(),
        ),  # Class/weights of the denoiser the picks were made after; "" on raw data
    ),
    ("day",),
    "one row per phase pick",
)

ENSEMBLE_PICKS = TableSpec(
    "ensemble_picks",
    _schema(
        ("pick_id", pa.string()),
        ("run_id", pa.string()),
        ("weights", pa.string()),
        ("station_id", pa.string()),  # NET.STA.LOC
        ("phase", pa.string()),
        ("time", TS),
        ("n_members", pa.int32()),
        ("n_agree", pa.int32()),
        ("spread_s", pa.float64()),
        ("agreeing", pa.string()),
        ("band", pa.string()),  # added with the band's own column: older lakes read it as NULL
    ),
    ("day",),
    "one row per ensemble (consensus) pick: members agreeing and their time spread (join picks on pick_id)",
)

EVENTS = TableSpec(
    "events",
    _schema(
        ("event_id", pa.string()),
        ("run_id", pa.string()),
        ("associator", pa.string()),
        ("config_fingerprint", pa.string()),
        ("pick_source", pa.string()),
        ("time", TS),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("depth_km", pa.float64()),
        ("magnitude", pa.float64()),
        ("n_picks", pa.int32()),
        ("n_p", pa.int32()),
        ("n_s", pa.int32()),
        ("n_stations", pa.int32()),
        ("score", pa.float64()),
        ("rms_residual_s", pa.float64()),
        # local magnitude (the magnitude stage fills `magnitude` and these; see quakelake.association.magnitudes)
        ("magnitude_type", pa.string()),
        ("magnitude_uncertainty", pa.float64()),
        ("magnitude_station_count", pa.int32()),
        # location quality (quakelake.association.relocation.QUALITY_COLUMNS): 1-sigma uncertainties of the
        # relocation, station geometry, and "constrained"/"unconstrained" (gap > 300 deg or < 3 stations)
        ("time_uncertainty_s", pa.float64()),
        ("latitude_uncertainty_km", pa.float64()),
        ("longitude_uncertainty_km", pa.float64()),
        ("horizontal_uncertainty_km", pa.float64()),
        ("vertical_uncertainty_km", pa.float64()),
        ("azimuthal_gap_deg", pa.float64()),
        ("min_distance_km", pa.float64()),
        ("location_quality", pa.string()),
        # the origin quality gate (quakelake.association.quality): QuakeML evaluation mode and status
        # ("automatic"; "preliminary" or "rejected") and the rules a rejected origin broke
        ("evaluation_mode", pa.string()),
        ("evaluation_status", pa.string()),
        ("evaluation_reason", pa.string()),
    ),
    ("day",),
    "one row per associated origin (rejected ones kept for audit, with their reason)",
)

ASSIGNMENTS = TableSpec(
    "assignments",
    _schema(
        ("event_id", pa.string()),
        ("pick_id", pa.string()),
        ("run_id", pa.string()),
        ("associator", pa.string()),
        ("config_fingerprint", pa.string()),
        ("station_id", pa.string()),
        ("phase", pa.string()),
        ("time", TS),
        ("residual_s", pa.float64()),
    ),
    ("day",),
    "one row per pick assigned to an event",
)

AMPLITUDES = TableSpec(
    "amplitudes",
    _schema(
        ("event_id", pa.string()),
        ("pick_id", pa.string()),
        ("run_id", pa.string()),
        ("associator", pa.string()),
        ("config_fingerprint", pa.string()),
        ("station_id", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channel", pa.string()),
        ("phase", pa.string()),
        ("amplitude_m", pa.float64()),
        ("period_s", pa.float64()),
        ("time", TS),
        ("window_start", TS),
        ("window_end", TS),
        ("type", pa.string()),
        ("unit", pa.string()),
    ),
    ("day",),
    "one row per Wood-Anderson amplitude (event x horizontal channel), with the pick that placed its window",
)

STATION_MAGNITUDES = TableSpec(
    "station_magnitudes",
    _schema(
        ("event_id", pa.string()),
        ("run_id", pa.string()),
        ("associator", pa.string()),
        ("config_fingerprint", pa.string()),
        ("station_id", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channels", pa.string()),
        ("magnitude", pa.float64()),
        ("magnitude_type", pa.string()),
        ("law", pa.string()),
        ("distance_km", pa.float64()),
        ("epicentral_km", pa.float64()),
        ("amplitude_m", pa.float64()),
        ("n_channels", pa.int32()),
    ),
    ("day",),
    "one row per station magnitude of an event",
)

STATION_CORRECTIONS = TableSpec(
    "station_corrections",
    _schema(
        ("station_id", pa.string()),  # NET.STA
        ("correction", pa.float64()),  # added to the station's ML: median(reference - ours)
        ("n_events", pa.int32()),
        ("spread", pa.float64()),  # standard deviation of the residuals
        ("mad", pa.float64()),
        ("against", pa.string()),  # event: the reference's event ML; station: its station ML
        ("law", pa.string()),
        ("run_id", pa.string()),
        ("estimated", TS),
    ),
    ("reference",),
    "one row per ML station correction estimated against a reference, with its support",
)

REFERENCE_EVENTS = TableSpec(
    "reference_events",
    _schema(
        ("event_id", pa.string()),
        ("time", TS),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("depth_km", pa.float64()),
        ("magnitude", pa.float64()),
        ("magnitude_type", pa.string()),
        ("n_picks", pa.int32()),
        ("source_file", pa.string()),
        ("event_type", pa.string()),
    ),
    ("catalog",),
    "one row per event of an imported reference catalogue (event_type in QuakeML vocabulary)",
)

REFERENCE_PICKS = TableSpec(
    "reference_picks",
    _schema(
        ("pick_id", pa.string()),
        ("event_id", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channel", pa.string()),
        ("station_id", pa.string()),
        ("phase", pa.string()),
        ("time", TS),
        ("weight", pa.float64()),
        ("source_file", pa.string()),
        # the analyst's time uncertainty (s): QuakeML time_errors, a CSV 'uncertainty' column
        ("time_uncertainty_s", pa.float64()),
    ),
    ("catalog",),
    "one row per pick of an imported reference catalogue",
)

RUNS = TableSpec(
    "runs",
    _schema(
        ("run_id", pa.string()),
        ("flow_run_id", pa.string()),
        ("command", pa.string()),
        ("started", TS),
        ("finished", TS),
        ("status", pa.string()),
        ("config_json", pa.string()),
        ("versions_json", pa.string()),
        ("weights_json", pa.string()),
        ("host", pa.string()),
    ),
    (),
    "one row per run status change; the view keeps the latest",
)

UNITS = TableSpec(
    "units",
    _schema(
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("unit", pa.string()),
        ("status", pa.string()),
        ("rows", pa.int64()),
        ("error", pa.string()),
        ("seconds", pa.float64()),
        ("output", pa.string()),
        ("finished", TS),
        ("inputs", pa.string()),
        ("notes", pa.string()),
    ),
    ("stage",),
    "one row per unit of work attempted (the ledger)",
)

PICK_MATCHES = TableSpec(
    "pick_matches",
    _schema(
        ("run_id", pa.string()),
        ("reference", pa.string()),
        ("model", pa.string()),
        ("weights", pa.string()),
        ("station_id", pa.string()),
        ("phase", pa.string()),
        ("pick_id", pa.string()),
        ("reference_pick_id", pa.string()),
        ("time", TS),
        ("reference_time", TS),
        ("residual_s", pa.float64()),
        ("tolerance_s", pa.float64()),
        ("outcome", pa.string()),
    ),
    ("reference",),
    "one row per pick or reference pick: TP (matched), FP (pick only) or FN (reference only)",
)

EVENT_MATCHES = TableSpec(
    "event_matches",
    _schema(
        ("run_id", pa.string()),
        ("reference", pa.string()),
        ("associator", pa.string()),
        ("event_id", pa.string()),
        ("reference_event_id", pa.string()),
        ("time", TS),
        ("reference_time", TS),
        ("dt_s", pa.float64()),
        ("distance_km", pa.float64()),
        ("outcome", pa.string()),
        ("magnitude", pa.float64()),
        ("reference_magnitude", pa.float64()),
        ("magnitude_residual", pa.float64()),
        # the catalogue the event belongs to (quakelake.catalogs.catalogues); older lakes read NULL
        ("model", pa.string()),
        ("weights", pa.string()),
        ("catalogue", pa.string()),
    ),
    ("reference",),
    "one row per event or reference event: TP, FP or FN (magnitude residual: ours - reference, TP)",
)

METRICS = TableSpec(
    "metrics",
    _schema(
        ("run_id", pa.string()),
        ("reference", pa.string()),
        ("level", pa.string()),
        ("group_by", pa.string()),
        ("group_value", pa.string()),
        ("model", pa.string()),
        ("weights", pa.string()),
        ("associator", pa.string()),
        ("phase", pa.string()),
        ("tp", pa.int64()),
        ("fp", pa.int64()),
        ("fn", pa.int64()),
        ("precision", pa.float64()),
        ("recall", pa.float64()),
        ("f1", pa.float64()),
        ("residual_mean", pa.float64()),
        ("residual_median", pa.float64()),
        ("residual_std", pa.float64()),
        ("residual_mae", pa.float64()),
        ("catalogue", pa.string()),  # event/magnitude rows: the catalogue scored (NULL before)
    ),
    ("reference",),
    "precision/recall/residual figures per model x weights (and per group)",
)

DOWNLOADS = TableSpec(
    "downloads",
    _schema(
        ("run_id", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("day", pa.string()),
        ("client", pa.string()),
        ("status", pa.string()),
        ("bytes", pa.int64()),
        ("path", pa.string()),
        ("error", pa.string()),
        ("seconds", pa.float64()),
        ("finished", TS),
    ),
    (),
    "one row per (station, day) download attempt",
)

METADATA_QC = TableSpec(
    "metadata_qc",
    _schema(
        ("run_id", pa.string()),
        ("pick_source", pa.string()),
        ("network", pa.string()),
        ("station", pa.string()),
        ("location", pa.string()),
        ("channel", pa.string()),
        ("in_metadata", pa.bool_()),
        ("epoch_start", TS),
        ("epoch_end", TS),
        ("epoch_covers_data", pa.bool_()),
        ("has_coordinates", pa.bool_()),
        ("has_elevation", pa.bool_()),
        ("has_response", pa.bool_()),
        ("response_stages", pa.int32()),
        ("response_valid", pa.bool_()),
        ("data_start", TS),
        ("data_end", TS),
        ("used_picking", pa.bool_()),
        ("used_location", pa.bool_()),
        ("used_magnitude", pa.bool_()),
        ("reason", pa.string()),
    ),
    (),
    "one row per channel per association run: the station metadata it had (coordinates, "
    "elevation, response valid for the data) and what it was used for, with the reason when not "
    "(quakelake.association.metadata_qc)",
)

# --- near-real-time monitoring (quakelake monitor): rows appended every cycle, inlined in the
# catalog (no file per cycle) and flushed to Parquet by the monitor's maintenance.
LIVE_PICKS = TableSpec(
    "live_picks",
    pa.schema(
        [f for f in PICKS.schema]
        + [
            pa.field("day", pa.string()),
            pa.field("status", pa.string()),  # provisional, final, confirmed, withdrawn
            pa.field("supersedes", pa.string()),  # the provisional pick a final/withdrawn row ends
            pa.field("monitor", pa.string()),
            pa.field("delivered", TS),  # when the record holding the pick's peak sample arrived
            pa.field("committed", TS),
        ]
    ),
    (),
    "every pick state the monitor published (provisional, final, withdrawn)",
)

LIVE_ORIGINS = TableSpec(
    "live_origins",
    pa.schema(
        [
            pa.field("origin_id", pa.string()),
            pa.field("revision", pa.int32()),
            pa.field("status", pa.string()),  # new, updated, deleted
            pa.field("monitor", pa.string()),
            pa.field("creation_time", TS),
            pa.field("first_p_delivered", TS),  # when the 4th station's P record arrived
        ]
        + [f for f in EVENTS.schema if f.name not in ("run_id",)]
    ),
    (),
    "every origin revision of every event the monitor found (latest = preferred)",
)

LIVE_ARRIVALS = TableSpec(
    "live_arrivals",
    _schema(
        ("origin_id", pa.string()),
        ("event_id", pa.string()),
        ("pick_id", pa.string()),
        ("station_id", pa.string()),
        ("phase", pa.string()),
        ("time", TS),
        ("residual_s", pa.float64()),
        ("monitor", pa.string()),
    ),
    (),
    "the picks each origin revision used",
)

LIVE_AMPLITUDES = TableSpec(
    "live_amplitudes",
    pa.schema(
        [
            f
            for f in AMPLITUDES.schema
            if f.name not in ("run_id", "associator", "config_fingerprint")
        ]
        + [pa.field("monitor", pa.string()), pa.field("committed", TS)]
    ),
    (),
    "every Wood-Anderson amplitude the monitor measured (one per event x horizontal channel, "
    "measured once when the window and its padding are in)",
)

MONITOR_STATE = TableSpec(
    "monitor_state",
    _schema(
        ("monitor", pa.string()),
        ("key", pa.string()),
        ("state", pa.string()),  # JSON
        ("committed", TS),
    ),
    (),
    "where each monitor stands (per-lane grid position, triggers, source marks), replaced each cycle",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        STATIONS,
        WAVEFORM_INDEX,
        PICKS,
        ENSEMBLE_PICKS,
        EVENTS,
        ASSIGNMENTS,
        AMPLITUDES,
        STATION_MAGNITUDES,
        STATION_CORRECTIONS,
        REFERENCE_EVENTS,
        REFERENCE_PICKS,
        RUNS,
        UNITS,
        PICK_MATCHES,
        EVENT_MATCHES,
        METRICS,
        DOWNLOADS,
        METADATA_QC,
        LIVE_PICKS,
        LIVE_ORIGINS,
        LIVE_ARRIVALS,
        LIVE_AMPLITUDES,
        MONITOR_STATE,
    )
}
