"""The associate flow: lake picks (or a pick file) + stations -> events and assignments, per day."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from quakelake.analysis.artifact_tables import catalogue_markdown, magnitudes_markdown
from quakelake.archive.stations import read_stations, write_stations
from quakelake.association.magnitudes import MagnitudeParams
from quakelake.association.plan import association_days, given_response_files, settings_span
from quakelake.association.quality import describe
from quakelake.association.settings import format_settings
from quakelake.errors import SAID_AGAIN, FailedWork
from quakelake.flows.common import (
    collect,
    current_flow_run_id,
    one_try,
    raise_if_workers_lost,
    recover_crashed_runs,
)
from quakelake.lakehouse.lineage import UnitResult, record_units, recorded_run
from quakelake.params import TimeWindow
from quakelake.params.association import GammaConfig, PyOctoConfig
from quakelake.tasks.associate import (
    LEDGER_COMMITTED,
    PickSource,
    associate_day_task,
    config_fingerprint,
    derive_settings_task,
    magnitudes_day_task,
)


class NoPicks(FailedWork):
    """No picks for the requested days."""


@flow(name="associate-events", log_prints=True)
def associate_events(
    lake: Path = Path("lake"),
    window: TimeWindow = TimeWindow(),
    config: PyOctoConfig | GammaConfig = PyOctoConfig(),
    picks_file: Path | None = None,
    station_file: Path | None = None,
    model: str | None = None,
    weights: str | None = None,
    margin_s: float = 120.0,
    force: bool = False,
    run_id: str | None = None,
    group: str | None = None,
    group_stations: list[str] | None = None,
    magnitude: MagnitudeParams | None = MagnitudeParams(),
    response_files: list[Path] | None = None,
) -> dict:
    """Associate picks into events, one task per UTC day, and write `events`/`assignments`.

    Args:
        lake: lake root folder.
        window: UTC days to associate (open ends: the days that have picks).
        config: associator configuration (PyOcto or GaMMA).
        picks_file: external pick table (CSV/Parquet); empty reads the lake's `picks` table.
        station_file: station metadata (StationXML/CSV); also imported into the `stations` table.
        model: only lake picks of this model.
        weights: only lake picks of these weights.
        margin_s: seconds of picks read on both sides of each day.
        force: recompute days whose events already exist.
        run_id: lineage id of the run (a new one when empty).
        group: associate only the picks of this station group (its events get the pick source
            ``...@group-<fingerprint>``); None: every station.
        group_stations: the group's NET.STA patterns.
        magnitude: local magnitude settings (amplitude window, attenuation law); None: no magnitudes.
        response_files: StationXML files with the instrument responses; empty: ``station_file``
            when it is StationXML.
    """
    logger = get_run_logger()
    lake = Path(lake)
    source = PickSource(
        picks_file=picks_file,
        model=model,
        weights=weights,
        station_file=station_file,
        group=group,
        group_stations=tuple(group_stations or ()),
    )
    run_config = {
        "window": window.model_dump(mode="json"),
        "config": config.model_dump(mode="json"),
        "config_fingerprint": config_fingerprint(config),
        "pick_source": source.label,
        "picks_file": str(picks_file or ""),
        "station_file": str(station_file or ""),
        "margin_s": margin_s,
        "force": force,
        "magnitude": magnitude.model_dump(mode="json") if magnitude is not None else None,
    }
    recover_crashed_runs(lake)
    with recorded_run(lake, "associate", run_config, run_id, current_flow_run_id()) as run:
        run_id = run.run_id
        if station_file is not None:
            write_stations(lake, read_stations(station_file), source=Path(station_file).stem)
        days = association_days(lake, source, window)
        if not days:
            raise NoPicks(
                f"no picks from {source.label} for days {window.start or 'any'}..{window.end or 'any'}; "
                "pick first (quakelake pick) or pass --picks FILE"
            )
        given = config
        config, settings = derive_settings_task(
            lake, config, source, *settings_span(days, margin_s)
        )
        if settings:
            logger.info("derived association settings (%s)", format_settings(settings))
        run_config.update(
            derived=settings,
            resolved_config=config.model_dump(mode="json"),
            config_fingerprint=config_fingerprint(config),
        )
        logger.info("associating %d days with %s (%s)", len(days), config.associator, source.label)
        futures = [
            (
                d.isoformat(),
                associate_day_task.submit(
                    d, lake, config, source, run_id, margin_s, force, key_config=given
                ),
            )
            for d in days
        ]
        results = [collect(key, fut, "associate") for key, fut in futures]
        record_units(lake, run_id, "associate", _not_yet_recorded(results))
        raise_if_workers_lost(results, "days")
        summary = _summary(run_id, config, source, results)
        if magnitude is not None:
            summary["magnitudes"] = _magnitudes(
                lake,
                run_id,
                config,
                source,
                magnitude,
                results,
                given_response_files(response_files, station_file),
                force,
            )
        summary["metadata_qc"] = _metadata_qc(
            lake, run_id, summary["config_fingerprint"], source, days
        )
        summary["settings"] = settings
        for r in results:
            for sid in r.extra.get("unknown_stations", []):
                logger.warning(
                    "day %s: picks on station %s without coordinates", r.unit, sid, extra=SAID_AGAIN
                )
        with one_try():
            _publish(summary, lake)
        run.status = "completed" if summary["failed"] == 0 else "completed_with_failures"
        return summary


def _not_yet_recorded(results: list[UnitResult]) -> list[UnitResult]:
    """Return the units whose ledger rows were not committed with their files by the task."""
    return [r for r in results if not r.extra.get(LEDGER_COMMITTED)]


def _magnitudes(
    lake: Path,
    run_id: str,
    config,
    source: PickSource,
    params: MagnitudeParams,
    days: list[UnitResult],
    response_files: list[Path],
    force: bool,
) -> dict:
    """Run the magnitude stage on the days that have events; return its counts.

    Without instrument responses (a CSV station file, nothing downloaded) the stage does not run.
    """
    counts: dict = {
        "done": 0,
        "skipped": 0,
        "failed": 0,
        "no_data": 0,
        "events_with_ml": 0,
        "law": params.law.name,
    }
    if not response_files:
        get_run_logger().warning(
            "magnitudes skipped: no StationXML with responses; pass -F/--file stations.xml"
        )
        return {**counts, "why_none": ["no StationXML with responses; pass -F/--file stations.xml"]}
    todo = [(r.unit, r.output) for r in days if r.status in ("done", "skipped") and r.output]
    futures = [
        (
            k,
            magnitudes_day_task.submit(
                dt.date.fromisoformat(k),
                lake,
                events,
                config,
                source,
                params,
                response_files,
                force,
                run_id,
            ),
        )
        for k, events in todo
    ]
    results = [collect(k, fut, "magnitude") for k, fut in futures]
    record_units(lake, run_id, "magnitude", _not_yet_recorded(results))
    raise_if_workers_lost(results, "magnitude days")
    counts.update(
        {
            s: sum(1 for r in results if r.status == s)
            for s in ("done", "skipped", "failed", "no_data")
        }
    )
    counts["events_with_ml"] = sum(r.extra.get("events_with_ml", 0) for r in results)
    counts["why_none"] = sorted({r.error for r in results if r.status == "no_data"})
    return counts


def _metadata_qc(
    lake: Path, run_id: str, config_fp: str, source: PickSource, days: list[dt.date]
) -> dict:
    """Write the run's per-channel metadata QC rows into the lake; return their counts.

    See :mod:`quakelake.association.metadata_qc`: one row per channel of the station metadata (and per
    site with picks but no metadata) saying what it had and what it was used for.
    """
    from quakelake.association.metadata_qc import channel_epochs, run_qc
    from quakelake.association.plan import read_picks, read_station_source
    from quakelake.lakehouse import Lake, queries, write_table
    from quakelake.lakehouse.lineage import fingerprint

    store = Lake(lake)
    start = pd.Timestamp(min(days), tz="UTC")
    end = pd.Timestamp(max(days), tz="UTC") + pd.Timedelta(days=1)
    if source.station_file is not None:
        epochs = channel_epochs(source.station_file)
    else:
        epochs = read_station_source(lake, source)
    if source.picks_file is not None:
        ids = read_picks(lake, source, start, end)["station_id"].astype(str).drop_duplicates()
        parts = ids.str.split(".", expand=True).reindex(columns=range(4)).fillna("")
        picks = pd.DataFrame(
            {"network": parts[0], "station": parts[1], "location": parts[2], "band": parts[3]}
        )
    else:
        picks = queries.pick_station_codes(
            store, start.to_pydatetime(), end.to_pydatetime(), source.model, source.weights
        )
    # the run's catalogue: days an earlier run made (skipped now) belong to it too
    events = pd.DataFrame({"event_id": [], "evaluation_status": []})
    if store.has_files("events"):
        events = queries.catalogue_statuses(store, config_fp, source.label, min(days), max(days))
    ids = list(events["event_id"].astype(str))
    empty = pd.DataFrame({"event_id": [], "station_id": [], "channel": []})
    assignments, amplitudes = empty, empty
    if ids:
        assignments = queries.event_rows(store, "assignments", ["event_id", "station_id"], ids)
        if store.has_files("amplitudes"):
            amplitudes = queries.event_rows(
                store, "amplitudes", ["event_id", "station_id", "channel"], ids
            )
    qc = run_qc(epochs, picks, events, assignments, amplitudes, start, end)
    qc = qc.assign(run_id=run_id, pick_source=source.label)
    write_table(
        lake,
        "metadata_qc",
        qc,
        name=f"qc.{run_id}.{fingerprint(source.label, length=8)}",
        run_id=run_id,
    )
    return {
        "channels": len(qc),
        "without_metadata": int((~qc["in_metadata"]).sum()),
        "without_response": int((qc["in_metadata"] & ~qc["response_valid"]).sum()),
        "used_for_location": int(qc["used_location"].sum()),
        "used_for_magnitude": int(qc["used_magnitude"].sum()),
    }


def _summary(run_id: str, config, source: PickSource, results: list[UnitResult]) -> dict:
    counts = {
        s: sum(1 for r in results if r.status == s)
        for s in ("done", "skipped", "failed", "no_data")
    }
    unknown = sorted({s for r in results for s in r.extra.get("unknown_stations", [])})
    done = [r for r in results if r.status == "done"]
    origins = sum(r.rows for r in done)
    rejected = sum(int(r.extra.get("rejected", 0)) for r in done)
    reasons: Counter[str] = Counter()
    for r in done:
        reasons.update(r.extra.get("rejected_reasons") or {})
    return {
        "run_id": run_id,
        "associator": config.associator,
        "config_fingerprint": config_fingerprint(config),
        "pick_source": source.label,
        "days": len(results),
        **counts,
        # origins the gate rejected are kept in the lake but are not events (quakelake.association.quality)
        "origins": origins,
        "rejected": rejected,
        "rejected_reasons": dict(reasons.most_common()),
        "events": origins - rejected,
        "unknown_stations": unknown,
        "seconds": sum(r.seconds for r in results),
    }


def _publish(summary: dict, lake: Path) -> None:
    try:
        lines = [
            f"# Association run `{summary['run_id']}`",
            "",
            f"- associator: {summary['associator']} (config {summary['config_fingerprint']})",
            f"- picks: {summary['pick_source']}",
            f"- days: {summary['days']} (done {summary['done']}, skipped {summary['skipped']}, "
            f"no picks {summary['no_data']}, failed {summary['failed']})",
            f"- events written: {summary['events']} "
            f"({describe(summary['origins'], summary['rejected'], summary['rejected_reasons'])})",
            f"- stations without coordinates: {', '.join(summary['unknown_stations']) or 'none'}",
            f"- metadata QC (lake table metadata_qc): {_qc_text(summary.get('metadata_qc'))}",
            "",
            magnitudes_markdown(summary.get("magnitudes")),
        ]
        create_markdown_artifact(markdown="\n".join(lines), key="associate-report")
        create_markdown_artifact(
            markdown=catalogue_markdown(
                _catalogue(lake, summary),
                summary["run_id"],
                f"{summary['associator']} config {summary['config_fingerprint']} "
                f"({summary['pick_source']})",
            ),
            key="catalogue",
            description=f"events of association run {summary['run_id']}",
        )
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        logging.getLogger(__name__).warning("could not publish artifacts: %s", exc)


def _qc_text(qc: dict | None) -> str:
    """Return the metadata QC counts as words (the artifact shows no dict repr)."""
    if not qc:
        return "not written"
    return (
        f"{qc['channels']} channels, {qc['without_metadata']} sites with picks but no metadata, "
        f"{qc['without_response']} channels without a valid response, "
        f"{qc['used_for_location']} used for location, {qc['used_for_magnitude']} for magnitude"
    )


def _catalogue(lake: Path, summary: dict):
    """Return the events of the catalogue the run made or found made (its associator x config x
    picks): its reported origins, as ``quakelake export`` and ``quakelake serve`` give them."""
    from quakelake.catalogs.evaluation import is_rejected
    from quakelake.lakehouse import Lake, queries

    events = queries.events(Lake(lake), associators=[summary["associator"]])
    keep = (
        (events["config_fingerprint"] == summary["config_fingerprint"])
        & (events["pick_source"] == summary["pick_source"])
        & ~is_rejected(events)
    )
    return events[keep]
