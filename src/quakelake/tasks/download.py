"""Tasks of the download flow: plan from the station services, fetch one station-day, record.

The EIDA token never travels as a task parameter (Prefect records parameters): each task reads
it itself from the token file, the ``QUAKELAKE_EIDA_TOKEN`` variable or an FdsnAccessBlock.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake import ids
from quakelake.archive import download, fdsn, waveforms
from quakelake.archive.stations import read_stations, write_stations
from quakelake.lakehouse import write_table
from quakelake.lakehouse.lineage import UnitResult
from quakelake.params import StationSelection, TimeWindow
from quakelake.params.download import DownloadParams
from quakelake.tasks.retry import transient_only

#: Partition of the `stations` table holding metadata fetched by the download flow.
STATION_SOURCE = "fdsn"


def resolve_token(params: DownloadParams, access_block: str | None = None) -> str | None:
    """Return the EIDA token: token file or environment first, else the FdsnAccessBlock's."""
    token = fdsn.read_token(params)
    if token is None and access_block:
        from quakelake.blocks import load_fdsn_access

        secret = load_fdsn_access(access_block).token
        token = secret.get_secret_value() if secret is not None else None
    return token


@task(
    name="plan-downloads",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[10, 60],
    cache_policy=NONE,
)
def plan_downloads(
    archive: Path,
    window: TimeWindow,
    selection: StationSelection,
    params: DownloadParams,
    access_block: str | None = None,
) -> download.DownloadPlan:
    """Ask every client's station service, write StationXML per network, return the station-days."""
    token = resolve_token(params, access_block)
    return download.plan_downloads(Path(archive), window, selection, params, token)


@task(
    name="download-station-day",
    task_run_name="download {unit.network}.{unit.station} {unit.day}",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[10, 60],
    cache_policy=NONE,
)
def download_station_day(
    unit: download.DownloadUnit,
    archive: Path,
    params: DownloadParams,
    force: bool = False,
    access_block: str | None = None,
) -> download.DownloadResult:
    """Fetch one (station, day) into the SDS archive; return its `downloads` ledger row."""
    token = resolve_token(params, access_block)
    return download.download_unit(unit, Path(archive), params, token, force)


@task(
    name="record-downloads",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def record_downloads(
    lake: Path, run_id: str, results: list[download.DownloadResult]
) -> Path | None:
    """Write the run's `downloads` ledger rows as one file; return its path (None: no units)."""
    if not results:
        return None
    frame = pd.DataFrame([{"run_id": run_id, **r.row()} for r in results])
    return write_table(Path(lake), "downloads", frame, name=run_id)


@task(
    name="record-stations",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def record_stations(lake: Path, archive: Path, station_files: list[Path]) -> int:
    """Write each network's StationXML into the `stations` table; return the rows written.

    One file per (archive, network), replaced when the network's metadata grows, so the table
    never holds the same channel epoch twice for one archive.
    """
    key = waveforms.archive_key(Path(archive))
    rows = 0
    for path in station_files:
        stations = read_stations(path)
        write_stations(lake, stations, STATION_SOURCE, name=f"{key}.{Path(path).stem}")
        rows += len(stations)
    return rows


def unit_result(result: download.DownloadResult) -> UnitResult:
    """Return the generic `units` ledger row of a download result."""
    status = {"ok": "done"}.get(result.status, result.status)
    done = ("ok", "partial", "skipped")
    files = len(result.path.split(";")) if result.path and result.status in done else 0
    return UnitResult(
        "download",
        ids.unit_key(result.network, result.station, result.day),
        status,
        rows=files,
        error=result.error,
        seconds=result.seconds,
        output=result.path,
        finished=result.finished,
        extra={"where": result.where},
    )
