"""The SDS archive layout: where each channel-day's miniSEED lives, and writing it safely.

``<archive>/<YEAR>/<NET>/<STA>/<CHA>.D/<NET>.<STA>.<LOC>.<CHA>.D.<YEAR>.<DOY>``, station
metadata in ``<archive>/stations/<NET>.xml``. Files are written under ``<archive>/.incoming/``
and renamed into place, so a reader (or a killed run) never sees a partial file; a response is
cut into whole miniSEED records before anything is written.

Plain Python: no Prefect, no network.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from obspy import UTCDateTime
from obspy.io.mseed.util import get_record_information

from quakelake.errors import short_error

INCOMING = ".incoming"
PARTIAL = ".partial"
STATIONS_DIR = "stations"


def sds_path(
    archive: Path, network: str, station: str, location: str, channel: str, day: dt.date
) -> Path:
    """Return the SDS file of one channel-day (``YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY``)."""
    year = f"{day.year:04d}"
    doy = f"{day.timetuple().tm_yday:03d}"
    name = f"{network}.{station}.{location}.{channel}.D.{year}.{doy}"
    return Path(archive) / year / network / station / f"{channel}.D" / name


def station_file(archive: Path, network: str) -> Path:
    """Return the StationXML file of ``network`` in the archive."""
    return Path(archive) / STATIONS_DIR / f"{network}.xml"


def incoming_file(archive: Path, target: Path, prefix: str) -> Path:
    """Return the temporary ``<archive>/.incoming/<prefix>.<name>.<hex>.part`` file of ``target``.

    Downloads are written there first and renamed onto ``target``
    (:func:`quakelake.lakehouse.atomic.atomic_write`); ``prefix`` (a unit's key) lets a rerun
    remove what a killed run left.
    """
    return Path(archive) / INCOMING / f"{prefix}.{target.name}.{uuid.uuid4().hex}.part"


ChannelKey = tuple[str, str, str, str]


@dataclass
class Record:
    """One whole miniSEED record of a response: its channel, time span and bytes."""

    key: ChannelKey
    start: UTCDateTime
    end: UTCDateTime  #: time of the sample after its last one
    data: bytes


def parse_records(data: bytes) -> tuple[list[Record], str]:
    """Return the whole miniSEED records of ``data`` and why the rest was dropped ("" when none).

    Records are copied byte for byte; parsing stops at the first record that is cut (the body
    ended inside it) or unreadable, so a short response never yields a half record.
    """
    buf = io.BytesIO(data)
    records: list[Record] = []
    offset = 0
    while offset < len(data):
        try:
            info = get_record_information(buf, offset=offset)
        except Exception as exc:  # a header cut short or garbage
            return records, f"unreadable record at byte {offset} ({short_error(exc)})"
        length = int(info["record_length"])
        if length <= 0:
            return records, f"miniSEED record at byte {offset} has length {length}"
        if offset + length > len(data):
            return (
                records,
                f"record at byte {offset} is cut ({len(data) - offset} of {length} bytes)",
            )
        key = (info["network"], info["station"], info["location"], info["channel"])
        rate = float(info.get("samp_rate") or 0.0)
        delta = 1.0 / rate if rate > 0 else 0.0
        records.append(
            Record(key, info["starttime"], info["endtime"] + delta, data[offset : offset + length])
        )
        offset += length
    return records, ""


def records_by_channel(records: list[Record], day: dt.date) -> dict[ChannelKey, list[Record]]:
    """Return the records starting on ``day`` per channel, in time order, duplicates dropped."""
    start = UTCDateTime(day.isoformat())
    end = start + 86400
    out: dict[ChannelKey, dict[float, Record]] = {}
    for r in records:
        if start <= r.start < end:
            out.setdefault(r.key, {}).setdefault(float(r.start.timestamp), r)
    return {k: [v[t] for t in sorted(v)] for k, v in out.items()}
