"""Stage 0, the waveform archive: scan and read any folder of miniSEED/SAC (waveforms), SDS
paths (sds), FDSN clients (fdsn), the download of station-days (download), station metadata
(stations). Plain Python: no Prefect.

Public names are re-exported lazily (:mod:`quakelake.exports`): ``from quakelake.archive import X``
imports only the submodule that defines ``X``.
"""

from __future__ import annotations

from quakelake.exports import lazy_exports

_EXPORTS = {
    "ArchiveNotFound": "waveforms",
    "ArchiveScan": "waveforms",
    "ChannelQuality": "waveforms",
    "DownloadPlan": "download",
    "DownloadResult": "download",
    "DownloadUnit": "download",
    "FileFailure": "waveforms",
    "InstrumentStream": "waveforms",
    "Record": "sds",
    "RequestDeadlineExceeded": "fdsn",
    "Segment": "waveforms",
    "StationDay": "waveforms",
    "StationFileError": "stations",
    "TokenFileMissing": "fdsn",
    "archive_key": "waveforms",
    "archive_stations": "waveforms",
    "call_with_retries": "fdsn",
    "check_covers_archive": "stations",
    "choose_channels": "download",
    "dataselect_url": "fdsn",
    "download_unit": "download",
    "fdsn_client": "fdsn",
    "fdsn_list": "fdsn",
    "fetch_inventories": "download",
    "http_get": "fdsn",
    "incoming_file": "sds",
    "is_no_data": "fdsn",
    "is_retryable": "fdsn",
    "known_stations": "stations",
    "merge_inventories": "download",
    "normalise_stations": "stations",
    "parse_records": "sds",
    "partial_marker": "download",
    "picked_stations": "stations",
    "plan_downloads": "download",
    "plan_units": "download",
    "quality_notes": "waveforms",
    "read_station_day": "waveforms",
    "read_inventory": "stations",
    "read_stations": "stations",
    "read_token": "fdsn",
    "records_by_channel": "sds",
    "request_slot": "fdsn",
    "scan_archive": "waveforms",
    "sds_path": "sds",
    "station_coordinates": "stations",
    "station_days": "waveforms",
    "station_file": "sds",
    "station_query": "download",
    "stations_stem": "stations",
    "stationxml_cache_dir": "stations",
    "unit_paths": "download",
    "unlisted_picks": "stations",
    "write_station_files": "download",
    "write_stations": "stations",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
