"""Reference catalogue readers and writers: QuakeML, OGS/HYPO71 bulletins, CSV.

Every reader returns a :class:`Catalog`: two DataFrames shaped like the lake's
``reference_events`` and ``reference_picks`` tables. :func:`read_catalog` takes files or
folders, detects each file's format from its extension and content, and merges what several
files of one bulletin say about the same events (e.g. the OGS ``.txt`` catalogue gives the
hypocentres, the ``.dat`` phase file the picks). :func:`import_catalog` writes a catalogue
into the lake under its name, so several references can coexist.

OGS / HYPO71 formats (``RSFVG-2024.*`` of the OGS bulletin):

* ``.dat`` HYPO71 phase cards: station (1-4), P onset/phase/polarity/weight (5-8), year-1900,
  month, day, hour, minute (9-19), P seconds (20-24, F5.2), S seconds (32-36), S onset, phase,
  polarity, weight (37-40), event number (76-79); one card per station, an instruction card
  (blank station) closes each event.
* ``.pun`` HYPO71 summary cards: one hypocentre per line (date, origin, lat/lon in degrees and
  minutes, depth, Md, number of phases, gap, dmin, rms, erh, erz, quality).
* ``.hpc`` HYPO71 printout: an event header like a summary card, then one line per station with
  its P and S arrivals and residuals.
* ``.txt`` OGS catalogue: ``;``-separated, ``index;event-id;origin_time(UTC);...;ml;md;...``.

Events of OGS files are named like the catalogue (``2024_00001``: year and 1-based position),
so the picks of the ``.dat`` refer to the events of the ``.txt``/``.pun``.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from quakelake.errors import BadInput
from quakelake.lakehouse.schema import REFERENCE_EVENTS, REFERENCE_PICKS

EVENT_COLUMNS = list(REFERENCE_EVENTS.schema.names)
PICK_COLUMNS = list(REFERENCE_PICKS.schema.names)

FORMATS = ("quakeml", "ogs_txt", "hypo71_summary", "hypo71_printout", "hypo71_phase", "csv")
# Which file wins when several files describe the same event or pick (lower wins): the OGS
# catalogue carries ML and the place, the summary Md; the phase file holds the picks as read.
_PRIORITY = {
    "quakeml": 0,
    "csv": 0,
    "ogs_txt": 1,
    "hypo71_summary": 2,
    "hypo71_phase": 2,
    "hypo71_printout": 3,
}


class CatalogError(BadInput, ValueError):
    """A catalogue file cannot be read; the message names the file, the line and what to do."""


@dataclass
class Catalog:
    """Reference events and picks (columns of ``reference_events`` / ``reference_picks``)."""

    events: pd.DataFrame = field(default_factory=lambda: empty_events())
    picks: pd.DataFrame = field(default_factory=lambda: empty_picks())

    def __repr__(self) -> str:
        return f"Catalog({len(self.events)} events, {len(self.picks)} picks)"


def empty_events() -> pd.DataFrame:
    """Return an empty reference-events frame with the lake's columns."""
    return _frame({}, EVENT_COLUMNS)


def empty_picks() -> pd.DataFrame:
    """Return an empty reference-picks frame with the lake's columns."""
    return _frame({}, PICK_COLUMNS)


def _frame(data: dict | pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(data)
    for col in columns:
        if col not in df.columns:
            df[col] = None
    df = df[columns].copy()
    if "time" in df.columns:
        df["time"] = pd.to_datetime(df["time"], utc=True).dt.as_unit("us")
    for col in ("latitude", "longitude", "depth_km", "magnitude", "weight"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    if "n_picks" in df.columns:
        df["n_picks"] = pd.to_numeric(df["n_picks"], errors="coerce").astype("Int32")
    for col in ("network", "station", "location", "channel"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df.reset_index(drop=True)


def station_id(network: str, station: str, location: str) -> str:
    """Return the ``NET.STA.LOC`` station id used by SeisBench pick ``trace_id``."""
    return f"{network}.{station}.{location}"


# --------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str | None:
    """Return the catalogue format of ``path`` (one of :data:`FORMATS`) or None.

    The extension decides where it is unambiguous; otherwise the first line does.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".qml", ".quakeml"):
        return "quakeml"
    if suffix == ".xml":  # StationXML shares the extension: look for the QuakeML namespace
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return "quakeml" if "quakeml" in fh.read(4096).lower() else None
        except OSError:
            return None
    if suffix == ".pun":
        return "hypo71_summary"
    if suffix == ".hpc":
        return "hypo71_printout"
    if suffix == ".dat":
        return "hypo71_phase"
    if suffix == ".csv":
        # only CSVs with a time column are catalogues (not e.g. PhaseNet file lists)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = fh.readline().lower()
        except OSError:
            return None
        names = {c.strip() for c in header.split(",")}
        return "csv" if names & set(_CSV_ALIASES["time"]) else None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2048)
    except OSError:
        return None
    first = head.lstrip().split("\n", 1)[0]
    if head.lstrip().startswith("<") and "quakeml" in head.lower():
        return "quakeml"
    if first.lower().startswith("index;event-id"):
        return "ogs_txt"
    if "," in first and "time" in first.lower():
        return "csv"
    if re.match(r"^\s*DATE\s+ORIGIN", first):
        return "hypo71_summary"
    if re.match(r"^[A-Z0-9 ]{4}[eiEI? ][Pp]", first):
        return "hypo71_phase"
    return None


def catalog_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Return ``(file, format)`` for every catalogue file in ``paths`` (folders searched).

    Files named explicitly must have a known format; in folders, files of unknown format
    (README, PROVENANCE.txt, Parquet ...) are skipped.

    Raises:
        CatalogError: when a path does not exist, a named file has no known format, or nothing
            readable is found.
    """
    out: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CatalogError(f"catalogue path {path} does not exist; pass files or folders")
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.startswith(".") or child.name.upper().startswith("PROVENANCE"):
                    continue
                fmt = detect_format(child)
                if fmt:
                    out.append((child, fmt))
        else:
            fmt = detect_format(path)
            if fmt is None and path.suffix.lower() == ".csv":
                read_csv_catalog(path)  # raises, naming the missing time column
            if fmt is None and path.suffix.lower() == ".xml":
                raise CatalogError(
                    f"{path} is not QuakeML (no QuakeML namespace in its first 4 kB); pass QuakeML "
                    "event files here (station metadata goes to -F/--file)"
                )
            if fmt is None:
                raise CatalogError(
                    f"cannot tell the catalogue format of {path}: use one of the extensions "
                    ".xml/.qml (QuakeML), .dat (HYPO71 phases), .pun (HYPO71 summary), "
                    ".hpc (HYPO71 printout), .txt (OGS catalogue), .csv"
                )
            out.append((path, fmt))
    if not out:
        raise CatalogError(f"no catalogue files found in {', '.join(str(p) for p in paths)}")
    return out


# --------------------------------------------------------------------------- readers


def read_catalog(paths: str | Path | Sequence[str | Path]) -> Catalog:
    """Read catalogue files and folders into one :class:`Catalog`.

    When several files describe the same event id (or pick id), the richer format wins
    (OGS ``.txt`` > ``.pun`` > ``.hpc`` for events, ``.dat`` > ``.hpc`` for picks). Events
    without a pick count get the number of their picks.

    Args:
        paths: files or folders; formats are detected per file.

    Example:
        >>> cat = read_catalog("../shared/data/ogs_rsfvg_2024/manual")  # doctest: +SKIP
        >>> len(cat.events), len(cat.picks)                             # doctest: +SKIP
        (1858, 26931)
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    parts: list[tuple[int, Catalog]] = []
    for path, fmt in catalog_files(paths):
        parts.append((_PRIORITY[fmt], READERS[fmt](path)))
    parts.sort(key=lambda item: item[0])
    events = [c.events for _, c in parts if len(c.events)]
    picks = [c.picks for _, c in parts if len(c.picks)]
    ev = pd.concat(events, ignore_index=True) if events else empty_events()
    pk = pd.concat(picks, ignore_index=True) if picks else empty_picks()
    ev = ev.drop_duplicates("event_id", keep="first")
    pk = pk.drop_duplicates("pick_id", keep="first")
    if len(pk) and len(ev):
        counts = pk.groupby("event_id").size()
        missing = ev["n_picks"].isna()
        ev.loc[missing, "n_picks"] = ev.loc[missing, "event_id"].map(counts).fillna(0)
    ev = ev.sort_values(["time", "event_id"], kind="stable")
    pk = pk.sort_values(["time", "pick_id"], kind="stable")
    return Catalog(_frame(ev, EVENT_COLUMNS), _frame(pk, PICK_COLUMNS))


def read_quakeml(path: str | Path) -> Catalog:
    """Read a QuakeML file with ObsPy: preferred origins and magnitudes, and every pick.

    Event ids and pick ids are the QuakeML resource ids; the pick ``weight`` is the
    ``time_weight`` of the preferred origin's arrival that uses the pick (NaN otherwise).
    """
    from obspy import read_events

    path = Path(path)
    try:
        cat = read_events(str(path))
    except Exception as exc:
        raise CatalogError(f"ObsPy cannot read QuakeML file {path}: {exc}") from exc
    ev_rows, pk_rows = [], []
    for event in cat:
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        mag = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
        event_id = str(event.resource_id)
        weights = {}
        if origin is not None:
            for arrival in origin.arrivals:
                if arrival.pick_id is not None and arrival.time_weight is not None:
                    weights[str(arrival.pick_id)] = float(arrival.time_weight)
        ev_rows.append(
            {
                "event_id": event_id,
                "time": origin.time.datetime if origin and origin.time else None,
                "latitude": origin.latitude if origin else None,
                "longitude": origin.longitude if origin else None,
                "depth_km": origin.depth / 1000.0 if origin and origin.depth is not None else None,
                "magnitude": mag.mag if mag else None,
                "magnitude_type": mag.magnitude_type if mag else None,
                "n_picks": len(event.picks),
                "source_file": str(path),
                "event_type": str(event.event_type) if event.event_type else None,
            }
        )
        for pick in event.picks:
            wid = pick.waveform_id
            net = (wid.network_code or "") if wid else ""
            sta = (wid.station_code or "") if wid else ""
            loc = (wid.location_code or "") if wid else ""
            pk_rows.append(
                {
                    "pick_id": str(pick.resource_id),
                    "event_id": event_id,
                    "network": net,
                    "station": sta,
                    "location": loc,
                    "channel": (wid.channel_code or "") if wid else "",
                    "station_id": station_id(net, sta, loc),
                    "phase": pick.phase_hint or "",
                    "time": pick.time.datetime,
                    "weight": weights.get(str(pick.resource_id), np.nan),
                    "source_file": str(path),
                }
            )
    return Catalog(_frame(ev_rows, EVENT_COLUMNS), _frame(pk_rows, PICK_COLUMNS))


def _num(text: str, path: Path, lineno: int, what: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise CatalogError(
            f"{path}:{lineno}: cannot read {what} from {text!r}; is this file in the format its "
            "extension says?"
        ) from None


def _implied_seconds(text: str, path: Path, lineno: int) -> float:
    """HYPO71 F5.2 seconds: ``' 0226'`` means 2.26 s, an explicit decimal point wins."""
    text = text.strip()
    if not text:
        return math.nan
    if "." in text:
        return _num(text, path, lineno, "seconds")
    return _num(text, path, lineno, "seconds") / 100.0


def _minute(text: str, path: Path, lineno: int) -> dt.datetime:
    """Parse HYPO71 ``YYYMMDDHHMM`` with a 3-digit year-1900 (OGS) or ``YYMMDDHHMM``."""
    digits = text.replace(" ", "0")
    try:
        if len(digits) == 11:
            year = 1900 + int(digits[:3])
            rest = digits[3:]
        else:
            yy = int(digits[:2])
            year = 2000 + yy if yy < 70 else 1900 + yy
            rest = digits[2:]
        return dt.datetime(
            year,
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise CatalogError(
            f"{path}:{lineno}: cannot read a date and minute from {text!r}"
        ) from None


def _ogs_event_id(year: int, number: int) -> str:
    return f"{year}_{number:05d}"


def _pick_row(
    event_id: str, station: str, phase: str, time: dt.datetime, weight: float, path: Path
) -> dict:
    return {
        "pick_id": f"{event_id}.{station}.{phase}",
        "event_id": event_id,
        "network": "",
        "station": station,
        "location": "",
        "channel": "",
        "station_id": station_id("", station, ""),
        "phase": phase,
        "time": time,
        "weight": weight,
        "source_file": str(path),
    }


def _unique_pick_ids(rows: list[dict]) -> None:
    """Suffix repeated pick ids (a station picked twice for one event) with ``#2``, ``#3`` ..."""
    seen: dict[str, int] = {}
    for row in rows:
        n = seen.get(row["pick_id"], 0) + 1
        seen[row["pick_id"]] = n
        if n > 1:
            row["pick_id"] = f"{row['pick_id']}#{n}"


def _weight(char: str) -> float:
    return float(char) if char.strip().isdigit() else math.nan


def read_hypo71_phases(path: str | Path) -> Catalog:
    """Read a HYPO71 phase file (``.dat``): one P (and optional S) pick per station card.

    Events are numbered by the card's event number (columns 76-79) when present, otherwise by
    their position; the year of the first card names them (``2024_00001``). The file holds no
    hypocentres, so the returned events are empty.
    """
    path = Path(path)
    rows: list[dict] = []
    number = 1
    year = None
    explicit = None
    with open(path, encoding="latin-1") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").ljust(80)
            if not line.strip():
                continue
            if not line[:4].strip():  # instruction card: end of an event
                number += 1
                continue
            if line[5].upper() != "P":
                raise CatalogError(
                    f"{path}:{lineno}: expected a HYPO71 phase card with 'P' in column 6, got "
                    f"{line[:24]!r}"
                )
            minute = _minute(line[8:19], path, lineno)
            year = year or minute.year
            tag = line[75:79].strip()
            explicit = int(tag) if tag.isdigit() else None
            event_id = _ogs_event_id(year, explicit if explicit is not None else number)
            station = line[:4].strip()
            # HYPO71 phase card: P seconds in columns 20-24 (weight col 8); S seconds in 32-36
            # (weight col 40), present when column 38 says S.
            phases = [("P", line[19:24], line[7])]
            if line[37].upper() == "S":
                phases.append(("S", line[31:36], line[39]))
            for phase, seconds, weight in phases:
                sec = _implied_seconds(seconds, path, lineno)
                if not math.isnan(sec):
                    rows.append(
                        _pick_row(
                            event_id,
                            station,
                            phase,
                            minute + dt.timedelta(seconds=sec),
                            _weight(weight),
                            path,
                        )
                    )
    _unique_pick_ids(rows)
    return Catalog(empty_events(), _frame(rows, PICK_COLUMNS))


def _degrees(deg: str, hemi: str, minutes: str, path: Path, lineno: int) -> float:
    value = _num(deg, path, lineno, "degrees") + _num(minutes, path, lineno, "minutes") / 60.0
    return -value if hemi.upper() in ("S", "W") else value


def _summary_event(card: str, path: Path, lineno: int, number: int, year0: int | None) -> dict:
    """Parse the hypocentre part of a HYPO71 summary card (3-digit OGS year layout)."""
    date = card[0:7]
    minute = _minute(date + card[7:11], path, lineno)
    seconds = _num(card[11:17], path, lineno, "origin seconds")
    year = year0 or minute.year
    mag = _num(card[43:50], path, lineno, "magnitude")
    n_phases = _num(card[50:53], path, lineno, "number of phases")
    return {
        "event_id": _ogs_event_id(year, number),
        "time": minute + dt.timedelta(seconds=seconds),
        "latitude": _degrees(card[17:20], card[20], card[21:26], path, lineno),
        "longitude": _degrees(card[26:30], card[30], card[31:36], path, lineno),
        "depth_km": _num(card[36:43], path, lineno, "depth"),
        "magnitude": mag,
        "magnitude_type": "Md" if not math.isnan(mag) else None,
        "n_picks": None if math.isnan(n_phases) else int(n_phases),
        "source_file": str(path),
    }


def read_hypo71_summary(path: str | Path) -> Catalog:
    """Read HYPO71 summary cards (``.pun``): one located event per line, Md magnitudes."""
    path = Path(path)
    rows: list[dict] = []
    year0 = None
    with open(path, encoding="latin-1") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").ljust(80)
            if not line.strip() or "DATE" in line[:12]:
                continue
            row = _summary_event(line, path, lineno, len(rows) + 1, year0)
            year0 = year0 or int(row["event_id"][:4])
            rows.append(row)
    return Catalog(_frame(rows, EVENT_COLUMNS), empty_picks())


def read_hypo71_printout(path: str | Path) -> Catalog:
    """Read a HYPO71 printout (``.hpc``): event headers and their P/S arrivals."""
    path = Path(path)
    events: list[dict] = []
    picks: list[dict] = []
    year0 = None
    with open(path, encoding="latin-1") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").ljust(120)
            if not line.strip():
                continue
            if line[:6] == "      " and line[6] != " ":  # event header
                card = line[6:13] + line[14:]
                row = _summary_event(card, path, lineno, len(events) + 1, year0)
                year0 = year0 or int(row["event_id"][:4])
                events.append(row)
                continue
            if not events:
                raise CatalogError(f"{path}:{lineno}: station line before any event header")
            event = events[-1]
            station = line[7:11].strip()
            origin = event["time"]
            hhmm = line[30:35].replace(" ", "0")[-4:]
            minute = origin.replace(
                hour=int(hhmm[:2]), minute=int(hhmm[2:]), second=0, microsecond=0
            )
            if minute - origin > dt.timedelta(hours=12):  # arrival on the day before
                minute -= dt.timedelta(days=1)
            elif origin - minute > dt.timedelta(hours=12):  # arrival after midnight
                minute += dt.timedelta(days=1)
            p_time = None
            if line[27].upper() == "P":
                p_time = minute + dt.timedelta(seconds=_num(line[35:41], path, lineno, "P seconds"))
                picks.append(
                    _pick_row(event["event_id"], station, "P", p_time, _weight(line[29]), path)
                )
            if line[106].upper() == "S":
                # The S seconds count from a minute the line does not always print (it can be
                # the minute before the P minute): the observed travel times tell which one.
                s_sec = _num(line[109:115], path, lineno, "S seconds")
                s_time = minute + dt.timedelta(seconds=s_sec)
                tp_obs = _num(line[41:47], path, lineno, "P travel time")
                ts_obs = _num(line[115:121], path, lineno, "S travel time")
                if p_time is not None and not (math.isnan(tp_obs) or math.isnan(ts_obs)):
                    approx = p_time + dt.timedelta(seconds=ts_obs - tp_obs)
                    s_time = min(
                        (minute + dt.timedelta(minutes=k, seconds=s_sec) for k in (-1, 0, 1)),
                        key=lambda t: abs((t - approx).total_seconds()),
                    )
                picks.append(
                    _pick_row(event["event_id"], station, "S", s_time, _weight(line[108]), path)
                )
    _unique_pick_ids(picks)
    return Catalog(_frame(events, EVENT_COLUMNS), _frame(picks, PICK_COLUMNS))


def ogs_event_type(text: object) -> str | None:
    """Return the QuakeML event type of an OGS ``event_type`` field (``[earthquake]``, ``[quarry blast]``)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    kind = str(text).strip().strip("[]").strip().lower().replace("_", " ")
    return {"explosion": "explosion", "quarry": "quarry blast", "blast": "quarry blast"}.get(
        kind, kind
    ) or None


def read_ogs_catalogue(path: str | Path) -> Catalog:
    """Read the OGS ``;``-separated catalogue (``.txt``): ML when given, else Md; the event type."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep=";", dtype=str, skipinitialspace=True, encoding="latin-1")
    except Exception as exc:
        raise CatalogError(f"cannot read OGS catalogue {path}: {exc}") from exc
    df.columns = [c.strip() for c in df.columns]
    need = ["event-id", "origin_time(UTC)", "lat", "lon", "depth"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CatalogError(
            f"OGS catalogue {path} lacks the columns {', '.join(missing)}; "
            f"header: {', '.join(map(str, df.columns))}"
        )
    ml = pd.to_numeric(df.get("ml"), errors="coerce")
    md = pd.to_numeric(df.get("md"), errors="coerce")
    events = pd.DataFrame(
        {
            "event_id": df["event-id"].str.strip(),
            "time": pd.to_datetime(df["origin_time(UTC)"].str.strip(), utc=True, format="ISO8601"),
            "latitude": pd.to_numeric(df["lat"], errors="coerce"),
            "longitude": pd.to_numeric(df["lon"], errors="coerce"),
            "depth_km": pd.to_numeric(df["depth"], errors="coerce"),
            "magnitude": ml.where(ml.notna(), md),
            "magnitude_type": np.where(
                ml.notna(), "ML", np.where(md.notna(), "Md", np.array(None, dtype=object))
            ),
            "n_picks": None,
            "source_file": str(path),
            "event_type": df["event_type"].map(ogs_event_type)
            if "event_type" in df.columns
            else None,
        }
    )
    return Catalog(_frame(events, EVENT_COLUMNS), empty_picks())


_CSV_ALIASES = {
    "time": ("time", "origin_time", "datetime", "timestamp", "phase_time", "pick_time"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
    "magnitude": ("magnitude", "mag", "ml", "mw", "md"),
    "event_id": ("event_id", "event-id", "eventid", "event_index", "id"),
    "pick_id": ("pick_id", "pickid"),
    "phase": ("phase", "phase_type", "phase_hint", "type"),
    "weight": ("weight", "prob", "probability", "phase_score"),
}


def _col(df: pd.DataFrame, key: str) -> str | None:
    lower = {c.lower().strip(): c for c in df.columns}
    for alias in _CSV_ALIASES[key]:
        if alias in lower:
            return lower[alias]
    return None


def read_csv_catalog(path: str | Path) -> Catalog:
    """Read a CSV of events (time, latitude, longitude, ...) or picks (station, phase, time).

    Picks are recognised by a phase column; their station comes from ``network``/``station``/
    ``location``/``channel`` columns or from a ``station_id`` like ``CI.IMP..HH``. Depth is read
    from ``depth_km`` or ``depth`` (km) or ``depth_m``/``depth(m)`` (m). Missing ids become
    ``<file stem>_<row>``.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise CatalogError(f"cannot read CSV catalogue {path}: {exc}") from exc
    tcol = _col(df, "time")
    if tcol is None:
        raise CatalogError(
            f"CSV catalogue {path} has no time column (one of {', '.join(_CSV_ALIASES['time'])}); "
            f"its columns: {', '.join(map(str, df.columns))}"
        )
    times = csv_times(df[tcol], f"CSV catalogue {path}, column {tcol!r}")
    stem = path.stem
    pcol = _col(df, "phase")
    if pcol is not None:
        return Catalog(
            empty_events(), _frame(_csv_picks(df, times, pcol, stem, path), PICK_COLUMNS)
        )
    lat, lon = _col(df, "latitude"), _col(df, "longitude")
    if lat is None or lon is None:
        raise CatalogError(
            f"CSV catalogue {path} has neither a phase column (picks) nor latitude/longitude "
            f"columns (events); its columns: {', '.join(map(str, df.columns))}"
        )
    lower = {c.lower(): c for c in df.columns}
    if "depth_km" in lower:
        depth = pd.to_numeric(df[lower["depth_km"]], errors="coerce")
    elif "depth_m" in lower or "depth(m)" in lower:
        depth = (
            pd.to_numeric(df[lower.get("depth_m", lower.get("depth(m)"))], errors="coerce") / 1000
        )
    elif "depth" in lower:
        depth = pd.to_numeric(df[lower["depth"]], errors="coerce")
    else:
        depth = pd.Series(np.nan, index=df.index)
    ecol, mcol = _col(df, "event_id"), _col(df, "magnitude")
    events = pd.DataFrame(
        {
            "event_id": df[ecol] if ecol else [f"{stem}_{i:05d}" for i in range(1, len(df) + 1)],
            "time": times,
            "latitude": pd.to_numeric(df[lat], errors="coerce"),
            "longitude": pd.to_numeric(df[lon], errors="coerce"),
            "depth_km": depth,
            "magnitude": pd.to_numeric(df[mcol], errors="coerce") if mcol else np.nan,
            "magnitude_type": df[lower["magnitude_type"]] if "magnitude_type" in lower else None,
            "n_picks": pd.to_numeric(df[lower["n_picks"]], errors="coerce")
            if "n_picks" in lower
            else None,
            "source_file": str(path),
        }
    )
    return Catalog(_frame(events, EVENT_COLUMNS), empty_picks())


def csv_times(values: pd.Series, where: str) -> pd.Series:
    """Return the UTC times written in ``values``: epoch seconds (or ms) or ISO/common date strings.

    Raises:
        CatalogError: naming ``where``, the first values that are not times, and the accepted forms.

    >>> csv_times(pd.Series(["1644113699.73"]), "t").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").tolist()
    ['2022-02-06T02:14:59.730000']
    >>> csv_times(pd.Series(["2020-10-01T00:02:21.07Z"]), "t").dt.year.tolist()
    [2020]
    """
    text = values.astype(str).str.strip()
    given = text != ""
    numbers = pd.to_numeric(text.where(given), errors="coerce")
    if given.any() and numbers[given].notna().all():
        # Epoch seconds, or milliseconds when too large for seconds (after year 5138).
        unit = "ms" if numbers[given].abs().max() > 1e11 else "s"
        times = pd.to_datetime(numbers, unit=unit, utc=True).dt.round("us")  # float64 -> whole µs
    else:
        times = pd.to_datetime(text.where(given), utc=True, format="mixed", errors="coerce")
    bad = given & times.isna()
    if bad.any():
        rows = [int(i) + 2 for i in bad[bad].index[:3]]  # +2: header line, 1-based
        raise CatalogError(
            f"{where}: {int(bad.sum())} values are not times, e.g. {', '.join(text[bad].head(3))} "
            f"(lines {', '.join(map(str, rows))}); write epoch seconds (1644113699.73) or ISO 8601 "
            "(2022-02-06T02:14:59.73Z)"
        )
    return times


def _csv_picks(
    df: pd.DataFrame, times: pd.Series, pcol: str, stem: str, path: Path
) -> pd.DataFrame:
    lower = {c.lower(): c for c in df.columns}

    def column(name: str) -> pd.Series:
        return df[lower[name]].astype(str) if name in lower else pd.Series("", index=df.index)

    net, sta, loc, cha = column("network"), column("station"), column("location"), column("channel")
    loc = loc.str.strip().replace("--", "")  # "--" is the FDSN web services' empty location
    sid_col = lower.get("station_id") or lower.get("trace_id") or lower.get("id")
    if sid_col and not sta.str.len().any():
        parts = df[sid_col].astype(str).str.split(".", expand=True)
        parts = parts.reindex(columns=range(4)).fillna("")
        net, sta, loc, cha = parts[0], parts[1], parts[2], parts[3]
    if not sta.str.len().any():
        raise CatalogError(
            f"CSV picks {path} name no station: add a 'station' column or a 'station_id' like "
            "NET.STA.LOC.CHA"
        )
    ecol, pid, wcol = _col(df, "event_id"), _col(df, "pick_id"), _col(df, "weight")
    return pd.DataFrame(
        {
            "pick_id": df[pid] if pid else [f"{stem}_{i:06d}" for i in range(1, len(df) + 1)],
            "event_id": df[ecol] if ecol else None,
            "network": net,
            "station": sta,
            "location": loc,
            "channel": cha,
            "station_id": net + "." + sta + "." + loc,
            "phase": df[pcol].astype(str).str.strip(),
            "time": times,
            "weight": pd.to_numeric(df[wcol], errors="coerce") if wcol else np.nan,
            "source_file": str(path),
        }
    )


READERS = {
    "quakeml": read_quakeml,
    "ogs_txt": read_ogs_catalogue,
    "hypo71_summary": read_hypo71_summary,
    "hypo71_printout": read_hypo71_printout,
    "hypo71_phase": read_hypo71_phases,
    "csv": read_csv_catalog,
}


# --------------------------------------------------------------------------- lake import


def import_catalog(
    lake: str | Path, paths: str | Path | Sequence[str | Path], name: str
) -> dict[str, object]:
    """Read catalogue files/folders and write them into the lake as reference ``name``.

    The rows land in ``reference_events/catalog=<name>/`` and ``reference_picks/catalog=<name>/``
    in files named after the resolved input paths: importing the same files again replaces
    them instead of adding duplicates.

    Args:
        lake: lake root folder.
        paths: catalogue files or folders (formats detected per file).
        name: the reference's name (e.g. ``ogs``), used to select it when analysing.

    Returns:
        ``{"name", "events", "picks", "files", "paths"}``: counts and the lake files written.
    """
    from quakelake.lakehouse import write_table
    from quakelake.lineage import fingerprint

    if not name or not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise CatalogError(
            f"catalogue name {name!r} must be non-empty and use only letters, digits, '.', '_', "
            "'+' or '-'"
        )
    if isinstance(paths, str | Path):
        paths = [paths]
    files = catalog_files(paths)
    cat = read_catalog(paths)
    stem = "import-" + fingerprint(sorted(str(p.resolve()) for p, _ in files))
    written = []
    if len(cat.events):
        written.append(
            write_table(Path(lake), "reference_events", cat.events, stem, {"catalog": name})
        )
    if len(cat.picks):
        written.append(
            write_table(Path(lake), "reference_picks", cat.picks, stem, {"catalog": name})
        )
    return {
        "name": name,
        "events": len(cat.events),
        "picks": len(cat.picks),
        "files": len(files),
        "paths": [str(p) for p in written],
    }
