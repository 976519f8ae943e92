"""The download flow: FDSN station services -> station-days -> SDS archive, ledger and stations in the lake."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from quakelake import ids
from quakelake.archive.download import DownloadResult, DownloadUnit
from quakelake.errors import SAID_AGAIN, FailedWork, FdsnUnreachable
from quakelake.flows.common import current_flow_run_id, one_try, recover_crashed_runs
from quakelake.lakehouse.lineage import (
    Stopwatch,
    record_units,
    recorded_run,
    where_counts,
)
from quakelake.params import StationSelection, TimeWindow
from quakelake.params.download import DownloadParams
from quakelake.params.text import days_text, selection_text
from quakelake.tasks.download import (
    download_station_day,
    plan_downloads,
    record_downloads,
    record_stations,
    unit_result,
)


class NoStations(FailedWork):
    """No client listed a station for the selection, domain and days."""


@flow(name="download-waveforms", log_prints=True)
def download_waveforms(
    archive: Path,
    lake: Path = Path("lake"),
    window: TimeWindow = TimeWindow(),
    selection: StationSelection = StationSelection(),
    params: DownloadParams = DownloadParams(),
    force: bool = False,
    access_block: str | None = None,
    run_id: str | None = None,
) -> dict:
    """Download station metadata and one miniSEED file per channel-day into an SDS archive.

    Args:
        archive: SDS archive root; StationXML goes to ``<archive>/stations/<NET>.xml``.
        lake: lake root folder (ledger rows in `downloads` and `units`, metadata in `stations`).
        window: UTC days to download (both ends required).
        selection: networks, stations, locations, channels (FDSN wildcards).
        params: FDSN clients in order, token file, domain, channel priorities, timeout, retries.
        force: download station-days whose files already exist.
        access_block: name of a QuakeLake FDSN Access block whose clients, timeout, retries and
            EIDA token replace those of ``params``.
        run_id: lineage id of the run (a new one when empty).
    """
    logger = get_run_logger()
    lake, archive = Path(lake), Path(archive)
    if access_block:
        params = _with_access_block(params, access_block)
    config = {
        "archive": str(archive),
        "window": window.model_dump(mode="json"),
        "selection": selection.model_dump(),
        "download": params.model_dump(mode="json"),
        "force": force,
        "access_block": access_block,
    }
    recover_crashed_runs(lake)
    with recorded_run(lake, "download", config, run_id, current_flow_run_id()) as run:
        run_id = run.run_id
        timings: dict[str, float] = {}
        with Stopwatch() as sw:
            plan = plan_downloads(archive, window, selection, params, access_block)
        timings["stations"] = sw.seconds
        for name, error in plan.client_errors.items():
            logger.warning("FDSN client %s gave no station metadata: %s", name, error)
        if not plan.units and set(plan.client_errors) >= {c.name for c in params.clients}:
            raise FdsnUnreachable(
                "no FDSN client answered: "
                + "; ".join(f"{name}: {error}" for name, error in plan.client_errors.items())
                + "; check --client and the network connection"
            )
        if not plan.units:
            errors = "; ".join(f"{name}: {error}" for name, error in plan.client_errors.items())
            raise NoStations(
                f"no station matches {selection_text(selection)} with channels "
                f"{' '.join(params.channel_priorities) or 'any'} on {days_text(window)} at "
                f"{', '.join(c.name for c in params.clients)}"
                + (f" (client errors: {errors})" if errors else "")
                + "; check -N/-S/-C, --rectdomain/--circdomain, -D/-J and --client"
            )
        logger.info(
            "downloading %d station-days from %s",
            len(plan.units),
            ", ".join(c.name for c in params.clients),
        )
        with Stopwatch() as sw:
            submitted = [
                (unit, download_station_day.submit(unit, archive, params, force, access_block))
                for unit in plan.units
            ]
            results = [collect(unit, fut) for unit, fut in submitted]
        timings["waveforms"] = sw.seconds
        record_downloads(lake, run_id, results)
        record_units(lake, run_id, "download", [unit_result(r) for r in results])
        station_rows = record_stations(lake, archive, plan.station_files)
        summary = _summary(run_id, archive, results, station_rows, plan.client_errors, timings)
        with one_try():
            _publish(summary)
        for unit, gap in summary["gaps"].items():
            logger.warning(
                "%s is partial: %s; the next run fetches the missing part",
                unit,
                gap,
                extra=SAID_AGAIN,
            )
        run.status = "completed" if summary["failed"] == 0 else "completed_with_failures"
        return summary


def _with_access_block(params: DownloadParams, name: str) -> DownloadParams:
    from quakelake.blocks import load_fdsn_access

    return load_fdsn_access(name).download_params(params)


def collect(unit: DownloadUnit, future) -> DownloadResult:
    """Return a task's ledger row, or a failed one carrying the error when the task raised."""
    try:
        return future.result()
    except Exception as exc:  # the unit failed after its retries: record why, keep the run going
        return DownloadResult(
            unit.network,
            unit.station,
            unit.day.isoformat(),
            "",
            "failed",
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )


def _summary(run_id, archive, results, station_rows, client_errors, timings) -> dict:
    counts = {
        s: sum(1 for r in results if r.status == s)
        for s in ("ok", "partial", "skipped", "no_data", "failed")
    }
    return {
        "run_id": run_id,
        "archive": str(archive),
        "units": len(results),
        **counts,
        "bytes": sum(r.bytes for r in results if r.status in ("ok", "partial")),
        "gaps": {
            ids.unit_key(r.network, r.station, r.day): r.error
            for r in results
            if r.status == "partial"
        },
        "station_rows": station_rows,
        "ran_on": where_counts([unit_result(r) for r in results]),
        "client_errors": client_errors,
        "seconds": timings,
    }


def _publish(summary: dict) -> None:
    lines = [
        f"# Download run `{summary['run_id']}`",
        "",
        f"- archive: `{summary['archive']}`",
        f"- station-days: {summary['units']} (ok {summary['ok']}, partial {summary['partial']}, "
        f"skipped {summary['skipped']}, no data {summary['no_data']}, failed {summary['failed']})",
        f"- bytes downloaded: {summary['bytes']}",
        f"- station channel epochs recorded: {summary['station_rows']}",
        "- seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items()),
    ]
    for name, error in summary["client_errors"].items():
        lines.append(f"- client {name} failed: {error}")
    try:
        create_markdown_artifact(markdown="\n".join(lines), key="download-report")
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        get_run_logger().warning("could not publish artifacts: %s", exc)
