"""Station metadata: read StationXML or simple station tables into the `stations` table schema.

Supported files:

* StationXML (``.xml``), read with ObsPy: one row per channel epoch.
* CSV/TSV/Parquet tables with flexible column names: ``network``/``net``, ``station``/``sta``/
  ``code``/``id`` (``NET.STA.LOC`` ids are split), ``location``/``loc``, ``channel``/``cha``,
  ``latitude``/``lat``, ``longitude``/``lon``/``lng``, ``elevation``/``elev``/``elevation_m``.
  Network, location, channel and elevation are optional (unknown elevation stays null).
* REAL/HypoInverse-like whitespace lists ``lon lat net sta chan elev_km`` (``station.dat``,
  ``*.sta``), elevation converted to metres.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quakelake import ids
from quakelake.errors import BadInput
from quakelake.lakehouse import Lake, cache, write_table
from quakelake.lakehouse.schema import STATIONS
from quakelake.params import StationSelection

if TYPE_CHECKING:
    from obspy import Inventory

COLUMNS = list(STATIONS.schema.names)
log = logging.getLogger(__name__)

_ALIASES = {
    "network": ("network", "net", "network_code", "networkcode"),
    "station": ("station", "sta", "station_code", "stationcode", "code", "name"),
    "location": ("location", "loc", "location_code", "locationcode"),
    "channel": ("channel", "cha", "chan", "channel_code"),
    "latitude": ("latitude", "lat", "latitude_deg"),
    "longitude": ("longitude", "lon", "lng", "long", "longitude_deg"),
    "elevation_m": ("elevation_m", "elevation", "elev", "elev_m", "altitude", "height"),
    "sampling_rate": ("sampling_rate", "sample_rate", "samplingrate"),
    "start": ("start", "starttime", "start_time", "start_date"),
    "end": ("end", "endtime", "end_time", "end_date"),
}


class StationFileError(BadInput, ValueError):
    """A station file could not be read; the message names the file and the missing columns."""


def read_stations(path: str | Path) -> pd.DataFrame:
    """Return the stations in ``path`` with the columns of the `stations` table.

    Args:
        path: StationXML, CSV/TSV, Parquet, or a REAL-style ``lon lat net sta chan elev_km`` list.

    Raises:
        StationFileError: naming the file and what is missing (e.g. the columns it needs).
    """
    path = Path(path)
    if not path.is_file():
        raise StationFileError(f"station file {path} does not exist; pass an existing -F/--file")
    stat = path.stat()
    # a command reads its station file several times (checks, settings, each day): once is enough
    return _read_stations_once(path.resolve(), stat.st_mtime_ns, stat.st_size).copy()


@functools.lru_cache(maxsize=8)
def _read_stations_once(path: Path, mtime_ns: int, size: int) -> pd.DataFrame:
    """Return :func:`read_stations` of ``path`` as it is (its modification time and size)."""
    suffix = path.suffix.lower()
    if suffix in (".xml", ".stationxml"):
        return _read_stationxml(path)
    if suffix in (".parquet", ".pq"):
        return normalise_stations(pd.read_parquet(path), str(path))
    head = path.read_text(errors="replace")[:2000]
    if head.lstrip().startswith("<"):
        return _read_stationxml(path)
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    if "," in first or "\t" in first or ";" in first:
        sep = "," if "," in first else ("\t" if "\t" in first else ";")
        return normalise_stations(pd.read_csv(path, sep=sep, dtype=str), str(path))
    return _read_real_list(path)


def check_covers_archive(
    stations: pd.DataFrame, source: str | Path, archive: Iterable[tuple[str, str]], where: str
) -> None:
    """Refuse a station file that lists none of the archive's stations, before any work starts.

    Stations are compared by station code (bulletins and CSVs do not always carry the network
    the data centre uses); the first archive station that the file lists ends the check, so
    only a mismatch reads the whole ``archive``. An empty archive passes (the pick stage says
    that no waveforms were found).

    Args:
        stations: the station file's rows (:func:`read_stations`).
        source: the station file, for the message.
        archive: (network, station) of the waveforms to pick, e.g. from
            :func:`quakelake.archive.waveforms.archive_stations`.
        where: the archive, for the message (``archive /data/sds``).

    Raises:
        StationFileError: naming ``-F/--file``, a few of the archive's stations and what to do.
    """
    listed = set(stations["station"].astype(str))
    met: list[str] = []
    for network, station in archive:
        if station in listed:
            return
        met.append(ids.station_code(network, station))
    if not met:
        return
    shown = ", ".join(met[:8]) + (f" and {len(met) - 8} more" if len(met) > 8 else "")
    have = ", ".join(sorted(listed)[:5]) + (", ..." if len(listed) > 5 else "")
    raise StationFileError(
        f"-F/--file: {source} lists none of the {len(met)} stations of the {where} ({shown}; the "
        f"file lists {have}): pass the metadata of these stations, or leave -F out"
    )


def normalise_stations(df: pd.DataFrame, source: str = "station table") -> pd.DataFrame:
    """Return ``df`` renamed and typed to the `stations` schema (flexible column names).

    Raises:
        StationFileError: naming ``source`` and the columns that are missing or invalid.
    """
    lower = {str(c).strip().lower(): c for c in df.columns}
    out = pd.DataFrame(index=df.index)
    for target, names in _ALIASES.items():
        for name in names:
            if name in lower:
                out[target] = df[lower[name]]
                break
    if "station" not in out and "id" in lower:
        out["station"] = df[lower["id"]]
    missing = [c for c in ("station", "latitude", "longitude") if c not in out]
    if missing:
        raise StationFileError(
            f"{source} lacks columns {', '.join(missing)}; found {', '.join(map(str, df.columns))}. "
            "A station table needs "
            "station (or sta/code/id), latitude (lat) and longitude (lon); network, location, "
            "channel and elevation are optional"
        )
    # "NET.STA.LOC" ids: split them when no separate network column is given.
    ids = out["station"].astype(str).str.strip()
    if "network" not in out and ids.str.contains(".", regex=False).any():
        parts = ids.str.split(".", expand=True)
        out["network"] = parts[0]
        out["station"] = parts[1] if parts.shape[1] > 1 else ""
        if parts.shape[1] > 2:
            out["location"] = parts[2].fillna("")
    else:
        out["station"] = ids
    for col in ("network", "location", "channel"):
        out[col] = out[col].fillna("").astype(str).str.strip() if col in out else ""
    out["location"] = out["location"].map(_location)
    for col in ("latitude", "longitude", "elevation_m", "sampling_rate"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    bad = out["latitude"].isna() | out["longitude"].isna()
    if bad.any():
        shown = ", ".join(sorted(set(out.loc[bad, "station"].astype(str)))[:10])
        raise StationFileError(f"{source}: stations without numeric latitude/longitude: {shown}")
    if ((out["latitude"].abs() > 90) | (out["longitude"].abs() > 360)).any():
        raise StationFileError(f"{source}: latitude/longitude out of range (columns swapped?)")
    for col in ("start", "end"):
        if col in out:
            # an unreadable or far-future date (2599-12-31) is an open end: no date
            out[col] = pd.to_datetime(out[col], utc=True, errors="coerce")
    return _finish(out)


def _finish(out: pd.DataFrame) -> pd.DataFrame:
    for col in COLUMNS:
        if col not in out:
            out[col] = None
    out = out[COLUMNS].reset_index(drop=True)
    for col in ("latitude", "longitude", "elevation_m", "sampling_rate"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in ("start", "end"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


# Parsed StationXML is cached per user by the file's content (quakelake.lakehouse.cache): a rerun (a no-op
# above all) reads a small Parquet file instead of parsing the XML with ObsPy (~0.7 s for a
# 16-station file with responses). An entry is used only when its columns, types and ranges are
# a station table's and its codes and coordinates are the file's (a light XML scan, ~10 ms).
# Bump the version when the parsed columns change.
STATIONXML_CACHE_VERSION = "2"


def stationxml_cache_dir() -> Path:
    """Return the folder of parsed StationXML tables (``$XDG_CACHE_HOME/quakelake/stationxml``)."""
    return cache.cache_dir("stationxml")


def _read_stationxml(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    key = cache.content_key("stationxml", STATIONXML_CACHE_VERSION, raw)
    hit = cache.read_frame("stationxml", key, lambda frame: stationxml_entry_problem(frame, raw))
    if hit is not None:
        return _finish(hit)
    table = _parse_stationxml(path)
    cache.write_frame("stationxml", key, table)
    return table


_TEXT_COLUMNS = ("network", "station", "location", "channel")
_FLOAT_COLUMNS = ("latitude", "longitude", "elevation_m", "sampling_rate")


def stationxml_entry_problem(frame: pd.DataFrame, raw: bytes) -> str | None:
    """Return what is wrong with ``frame`` as the parsed table of the StationXML ``raw``, or None.

    Checks the schema (columns, types), the ranges (latitude, longitude, sampling rate) and the
    source: every (network, station, location, channel, latitude, longitude) of the file, read by
    a plain XML scan, and nothing else.
    """
    if list(frame.columns) != COLUMNS:
        return f"columns {list(frame.columns)} are not {COLUMNS}"
    for col in _TEXT_COLUMNS:
        if not all(isinstance(v, str) for v in frame[col]):
            return f"column {col} holds values that are not text"
    for col in _FLOAT_COLUMNS:
        if frame[col].dtype.kind != "f":
            return f"column {col} is {frame[col].dtype}, not a float"
    for col in ("start", "end"):
        if frame[col].dtype.kind != "M":
            return f"column {col} is {frame[col].dtype}, not a time"
    if not ((frame["latitude"].abs() <= 90) & (frame["longitude"].abs() <= 360)).all():
        return "latitude or longitude out of range"
    if (frame["sampling_rate"] <= 0).any():
        return "a sampling rate is not positive"
    rows = zip(*(frame[c] for c in (*_TEXT_COLUMNS, "latitude", "longitude")), strict=True)
    have = sorted(
        (n, s, lo, c, round(float(la), 6), round(float(lon), 6)) for n, s, lo, c, la, lon in rows
    )
    if have != sorted(_stationxml_coordinates(raw)):
        return "its stations or coordinates are not those of the StationXML file"
    return None


def _stationxml_coordinates(raw: bytes) -> list[tuple[str, str, str, str, float, float]]:
    """Return (network, station, location, channel, latitude, longitude) of each channel in ``raw``.

    Stations without channels give one row with empty location and channel, as ObsPy's parse does.
    """
    import io
    import xml.etree.ElementTree as ET

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def coords(elem) -> tuple[float | None, float | None]:
        out: dict[str, float] = {}
        for child in elem:
            name = local(child.tag)
            if name in ("Latitude", "Longitude") and child.text is not None:
                out[name] = float(child.text)
        return out.get("Latitude"), out.get("Longitude")

    rows = []
    for _, elem in ET.iterparse(io.BytesIO(raw), events=("end",)):
        if local(elem.tag) != "Network":
            if local(elem.tag) == "Response":
                elem.clear()  # the bulk of the file: not kept
            continue
        net = elem.get("code", "")
        for sta in (e for e in elem if local(e.tag) == "Station"):
            s_lat, s_lon = coords(sta)
            channels = [e for e in sta if local(e.tag) == "Channel"]
            for cha in channels or [None]:
                lat, lon = coords(cha) if cha is not None else (None, None)
                lat = s_lat if lat is None else lat
                lon = s_lon if lon is None else lon
                rows.append(
                    (
                        net,
                        sta.get("code", ""),
                        (cha.get("locationCode", "") if cha is not None else "").strip(),
                        (cha.get("code", "") if cha is not None else "").strip(),
                        round(float("nan") if lat is None else lat, 6),
                        round(float("nan") if lon is None else lon, 6),
                    )
                )
        elem.clear()
    return rows


#: Parsed StationXML files of this process: (path, size, mtime) -> the pickled inventory; the
#: newest few only (a monitor rereads its station file as it changes).
_INVENTORIES: dict[tuple[str, int, int], bytes] = {}
_KEEP_INVENTORIES = 4


def read_inventory(path: str | Path) -> Inventory:
    """Return ObsPy's ``read_inventory(path)``, parsed once per file (and version of it) per process.

    One association parses its StationXML for the metadata check and again for the magnitudes'
    responses (~0.1 s each for 16 stations). The parse is kept pickled: each call gets its own
    copy (~0.02 s), which the caller may change.
    """
    import pickle

    import obspy

    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    kept = _INVENTORIES.get(key)
    if kept is None:
        inventory = obspy.read_inventory(str(path))
        _INVENTORIES[key] = pickle.dumps(inventory, protocol=pickle.HIGHEST_PROTOCOL)
        while len(_INVENTORIES) > _KEEP_INVENTORIES:
            del _INVENTORIES[next(iter(_INVENTORIES))]
        return inventory
    return pickle.loads(kept)  # noqa: S301 (this process's own bytes)


def _parse_stationxml(path: Path) -> pd.DataFrame:
    try:
        inventory = read_inventory(path)
    except Exception as exc:
        raise StationFileError(f"station file {path} is not readable StationXML: {exc}") from exc
    rows = []
    for net in inventory:
        for sta in net:
            channels = list(sta) or [None]
            for cha in channels:
                src = cha if cha is not None else sta
                rows.append(
                    {
                        "network": net.code,
                        "station": sta.code,
                        "location": _location(cha.location_code) if cha is not None else "",
                        "channel": cha.code if cha is not None else "",
                        "latitude": src.latitude if src.latitude is not None else sta.latitude,
                        "longitude": src.longitude if src.longitude is not None else sta.longitude,
                        "elevation_m": src.elevation
                        if src.elevation is not None
                        else sta.elevation,
                        "sampling_rate": cha.sample_rate if cha is not None else None,
                        "start": _utc(src.start_date),
                        "end": _utc(src.end_date),
                    }
                )
    if not rows:
        raise StationFileError(f"station file {path} holds no stations")
    return _finish(pd.DataFrame(rows))


# Data centres close open epochs with far-future end dates (2500-12-31 at RESIF and ICGC,
# 2599-12-31 at EarthScope), beyond what a pandas timestamp holds (2262): such an epoch is open,
# stored with no end, like one without an end date.
_OPEN_AFTER = pd.Timestamp("2200-01-01", tz="UTC")


def _utc(value) -> pd.Timestamp | None:
    if value is None:
        return None
    if value.datetime.year >= _OPEN_AFTER.year:
        return None
    return pd.Timestamp(value.datetime, tz="UTC")


def _location(code) -> str:
    """Return a location code as the lake stores it: ``""`` for none (``--`` or blanks too)."""
    code = str(code or "").strip()
    return "" if code in ("--", "") else code


def _read_real_list(path: Path) -> pd.DataFrame:
    rows = [
        ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    if not rows or any(len(r) < 4 for r in rows):
        raise StationFileError(
            f"station file {path} is neither CSV (with a header naming station, latitude, longitude) "
            "nor a 'lon lat net sta chan elev_km' list"
        )
    try:
        df = pd.DataFrame(
            {
                "longitude": [float(r[0]) for r in rows],
                "latitude": [float(r[1]) for r in rows],
                "network": [r[2] for r in rows],
                "station": [r[3] for r in rows],
                "channel": [r[4] if len(r) > 4 else "" for r in rows],
                "elevation_m": [float(r[5]) * 1000.0 if len(r) > 5 else np.nan for r in rows],
            }
        )
    except ValueError as exc:
        raise StationFileError(
            f"station file {path}: bad number in 'lon lat net sta chan elev_km' line ({exc})"
        ) from None
    df["location"] = ""
    return normalise_stations(df, str(path))


def stations_at(
    stations: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Return the channel epochs of ``stations`` valid for data from ``start`` to ``end``.

    A channel with several epochs (a sensor swapped, a station moved) keeps those that overlap
    the data's time (no ``start``: since ever; no ``end``: open). A site none of whose epochs
    overlaps keeps all of them: metadata that does not cover the data still places its picks
    (the metadata QC table says so, :mod:`quakelake.association.metadata_qc`).
    """
    end = start if end is None else end
    if not len(stations):
        return stations
    begins = pd.to_datetime(stations["start"], utc=True)
    ends = pd.to_datetime(stations["end"], utc=True)
    valid = (begins.isna() | (begins <= end)) & (ends.isna() | (ends >= start))
    site = (
        stations["network"].fillna("").astype(str)
        + "."
        + stations["station"].astype(str)
        + "."
        + stations["location"].fillna("").astype(str)
    )
    covered = set(site[valid])
    return stations[valid | ~site.isin(covered)].reset_index(drop=True)


def station_coordinates(stations: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (network, station, location) with mean coordinates and elevation.

    Channel epochs of the same site collapse into one row; unknown elevations stay null.
    """
    df = stations.copy()
    for col in ("network", "location"):
        df[col] = df[col].fillna("").astype(str) if col in df else ""
    return df.groupby(["network", "station", "location"], as_index=False, dropna=False).agg(
        latitude=("latitude", "mean"),
        longitude=("longitude", "mean"),
        elevation_m=("elevation_m", "mean"),
    )


def stations_stem(stations: pd.DataFrame) -> str:
    """Return the logical file :func:`write_stations` gives ``stations`` (it names their content)."""
    from quakelake.lakehouse.lineage import fingerprint

    return "stations." + fingerprint(stations.astype(str).to_csv(index=False))


def write_stations(
    lake: str | Path, stations: pd.DataFrame, source: str, name: str | None = None
) -> Path:
    """Write ``stations`` into the lake's `stations` table under partition ``source``.

    Without ``name`` the file is named by its content and is ``source``'s only file: the same
    content already committed writes nothing and makes no snapshot (a rerun with the same
    ``-F``); other content replaces it (an edited station file) in one commit. With ``name``
    (one file of several, e.g. a download unit's stations) only a file of that name is replaced.
    Returns the committed file's path.
    """
    key = "" if name else "stations"
    name = name or stations_stem(stations)
    held = Lake(lake).stems("stations")
    same = held[(held["stem"] == name) & (held["part"] == f"source={source}")]
    if len(same):  # the manifest keeps the path relative to the lake folder
        return Path(lake).resolve() / same["path"].iloc[0]
    return write_table(
        Path(lake), "stations", stations[COLUMNS], name=name, partition={"source": source}, key=key
    )


def known_stations(
    station_file: Path | None, directory: Path | None, selection: StationSelection | None = None
) -> tuple[set[tuple[str, str]], str]:
    """Return the (NET, STA) of the station file, or else of the archive's selected waveforms.

    The second value says where they come from, for messages (``archive /data/sds``).
    """
    if station_file is not None and Path(station_file).is_file():
        st = read_stations(station_file)
        pairs = zip(st["network"].astype(str), st["station"].astype(str), strict=True)
        return set(pairs), str(station_file)
    from quakelake.archive.waveforms import archive_stations

    if directory is None:
        return set(), "no archive"
    return set(archive_stations(directory, selection)), f"archive {directory}"


def picked_stations(lake_root: Path) -> set[tuple[str, str]] | None:
    """Return the (NET, STA) that have picks in the lake (None when it holds no picks)."""
    from quakelake.lakehouse import Lake, queries

    lake = Lake(lake_root)
    if not lake.has_files("picks"):
        return None
    rows = queries.picked_stations(lake)
    return set(zip(rows["network"].astype(str), rows["station"].astype(str), strict=True))


def unlisted_picks(station_file: Path, lake_root: Path) -> str:
    """Return a warning when ``station_file`` lists none of the stations with picks, else "".

    No event can be located then: the picks' stations have no coordinates.
    """
    listed = set(read_stations(station_file)["station"].astype(str))
    picked = {station for _, station in picked_stations(lake_root) or set()}
    if not picked or listed & picked:
        return ""
    names = sorted(picked)
    return (
        f"-F/--file: {station_file} lists none of the {len(picked)} stations with picks "
        f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); no event could be "
        "located: pass the metadata of the archive's stations"
    )
