"""HYPO71 bulletins of the OGS (``RSFVG-2024.*``): phase, summary and printout cards.

* ``.dat`` HYPO71 phase cards: station (1-4), P onset/phase/polarity/weight (5-8), year-1900,
  month, day, hour, minute (9-19), P seconds (20-24, F5.2), S seconds (32-36), S onset, phase,
  polarity, weight (37-40), event number (76-79); one card per station, an instruction card
  (blank station) closes each event.
* ``.pun`` HYPO71 summary cards: one hypocentre per line (date, origin, lat/lon in degrees and
  minutes, depth, Md, number of phases, gap, dmin, rms, erh, erz, quality).
* ``.hpc`` HYPO71 printout: an event header like a summary card, then one line per station with
  its P and S arrivals and residuals.

Events are named like the OGS catalogue (``2024_00001``: year and 1-based position), so the
picks of the ``.dat`` refer to the events of the ``.txt``/``.pun``.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from quakelake.catalogs.model import (
    EVENT_COLUMNS,
    PICK_COLUMNS,
    Catalog,
    CatalogError,
    empty_events,
    empty_picks,
    lake_frame,
)
from quakelake.ids import station_id


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
    return Catalog(empty_events(), lake_frame(rows, PICK_COLUMNS))


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
    return Catalog(lake_frame(rows, EVENT_COLUMNS), empty_picks())


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
    return Catalog(lake_frame(events, EVENT_COLUMNS), lake_frame(picks, PICK_COLUMNS))
