"""Local magnitudes of the monitor's events, measured from the records as they arrive.

The batch magnitude stage (:mod:`quakelake.association.magnitudes`) reads each station's
horizontal channels from the archive around its amplitude window; the monitor has no archive
to read, so :class:`LiveMagnitudes` keeps the last ``keep_s`` seconds of every horizontal
channel's records and measures a station's Wood-Anderson amplitude with the same functions
(:func:`~quakelake.association.magnitudes.measure_amplitudes`, the same window, padding,
merge and response removal) as soon as its data reach the end of the window plus the padding
(or, for a station that stopped sending, once the stream's time is ``grace_s`` past that
point). An amplitude is measured once per (event, station, window) and kept; the station and
event MLs are recomputed from the kept amplitudes for every origin revision (their distances
change with the location), so the event ML grows as stations complete, and the final
monitor ML equals the batch ML of the same origin and picks.

Plain Python: no Prefect, no lake.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from obspy import Inventory, Stream, Trace, UTCDateTime

from quakelake.association.magnitudes import (
    AMPLITUDE_COLUMNS,
    EVENT_MAGNITUDE_COLUMNS,
    Responses,
    amplitude_window,
    event_magnitudes,
    is_horizontal,
    measure_amplitudes,
    station_magnitudes,
)
from quakelake.association.quality import is_rejected
from quakelake.params.magnitudes import MagnitudeError, MagnitudeParams

log = logging.getLogger(__name__)

__all__ = ["LiveMagnitudes"]

#: Magnitude fields of an origin revision (the ``events`` columns the magnitude stage fills).
MAGNITUDE_FIELDS = EVENT_MAGNITUDE_COLUMNS[1:]

_Key = tuple[str, str, pd.Timestamp, pd.Timestamp]  # event, station, window start, window end


class LiveMagnitudes:
    """Amplitudes and local magnitudes from a rolling buffer of horizontal records.

    Args:
        inventory: StationXML with the channels' responses.
        stations: station coordinates (the lake's ``stations`` columns).
        params: amplitude window, attenuation law, event ML settings (as the batch stage).
        keep_s: seconds of records kept per channel (at least the association window plus the
            amplitude window and its padding).
        grace_s: a station whose data stopped is measured with what it has once the stream's
            time is this far past the end of its window plus padding.
    """

    def __init__(
        self,
        inventory: Inventory,
        stations: pd.DataFrame,
        params: MagnitudeParams | None = None,
        keep_s: float = 420.0,
        grace_s: float = 30.0,
    ) -> None:
        self.inventory = inventory
        self.responses = Responses(inventory)  # each channel's spectrum evaluated once
        self.stations = stations
        self.params = params or MagnitudeParams()
        self.keep_s = keep_s
        self.grace_s = grace_s
        self.records: dict[str, list[Trace]] = {}
        self.ends: dict[str, UTCDateTime] = {}
        self.amplitudes: dict[_Key, pd.DataFrame] = {}
        self.measured: list[pd.DataFrame] = []  # rows measured since the last take_new()

    # ------------------------------------------------------------------ records
    def add(self, trace: Trace) -> None:
        """Keep one record if it is a horizontal channel; forget records older than ``keep_s``."""
        s = trace.stats
        if s.npts == 0 or not is_horizontal(s.channel):
            return
        buf = self.records.setdefault(trace.id, [])
        buf.append(trace)
        end = self.ends.get(trace.id)
        if end is None or s.endtime > end:
            self.ends[trace.id] = end = s.endtime
        horizon = end - self.keep_s
        if buf[0].stats.endtime < horizon:
            self.records[trace.id] = [t for t in buf if t.stats.endtime >= horizon]

    def _station_end(self, station_id: str) -> UTCDateTime | None:
        """Return the time up to which every horizontal channel of the station has data."""
        ends = [e for sid, e in self.ends.items() if sid.rsplit(".", 1)[0] == station_id]
        return min(ends) if ends else None

    def _stream(self, station_id: str, t0: UTCDateTime, t1: UTCDateTime) -> Stream:
        """Return the station's horizontal records overlapping ``[t0, t1]``, merged as the batch reads them."""
        traces = [
            tr.copy()
            for sid, buf in self.records.items()
            if sid.rsplit(".", 1)[0] == station_id
            for tr in buf
            if tr.stats.endtime >= t0 and tr.stats.starttime <= t1
        ]
        stream = Stream(traces)
        if len(stream):
            stream.merge(method=1)
            stream = stream.split()  # gaps become separate traces, never masked arrays
        return stream

    # ------------------------------------------------------------------ amplitudes
    def restore(self, amplitudes: pd.DataFrame) -> None:
        """Know again the amplitudes a previous run measured (``live_amplitudes`` rows)."""
        if not len(amplitudes):
            return
        rows = amplitudes.copy()
        for col in ("window_start", "window_end", "time"):
            rows[col] = pd.to_datetime(rows[col], utc=True)
        keys = ["event_id", "station_id", "window_start", "window_end"]
        for key, g in rows.groupby(keys, sort=False):
            self.amplitudes[tuple(key)] = g[AMPLITUDE_COLUMNS].reset_index(drop=True)  # type: ignore[index]

    def take_new(self) -> pd.DataFrame:
        """Return the amplitude rows measured since the last call (to be committed)."""
        rows = [r for r in self.measured if len(r)]
        self.measured = []
        return (
            pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=AMPLITUDE_COLUMNS)
        )

    def _amplitude(
        self,
        event_id: str,
        station_id: str,
        picks: pd.DataFrame,
        origin_time: pd.Timestamp,
        data_time: UTCDateTime,
        force: bool,
    ) -> pd.DataFrame | None:
        """Return the station's amplitude rows for the event; None while its data are not all in."""
        amp = self.params.amplitude
        try:
            start, end, _, _ = amplitude_window(picks, amp, origin_time)
        except MagnitudeError:
            return pd.DataFrame(columns=AMPLITUDE_COLUMNS)
        key: _Key = (event_id, station_id, start, end)
        if key in self.amplitudes:
            return self.amplitudes[key]
        need = UTCDateTime(ns=int(end.value)) + amp.pad_s
        have = self._station_end(station_id)
        if not force and (have is None or have < need) and data_time < need + self.grace_s:
            return None
        t0 = UTCDateTime(ns=int(start.value)) - amp.pad_s
        stream = self._stream(station_id, t0, need)
        rows, messages = measure_amplitudes(
            event_id, picks, stream, self.responses, amp, origin_time
        )
        for m in messages:
            log.debug("magnitude: %s", m)
        self.amplitudes[key] = rows
        self.measured.append(rows)
        return rows

    def measure(
        self,
        event_id: str,
        origin: dict[str, Any],
        arrivals: pd.DataFrame,
        data_time: UTCDateTime,
        force: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Return the origin's magnitude fields and whether every station's amplitude is in.

        Args:
            event_id: the event (amplitudes are kept per event).
            origin: the revision's origin (``time, latitude, longitude, depth_km``; a rejected
                origin, :func:`quakelake.association.quality.is_rejected`, gets no magnitude).
            arrivals: the revision's picks (``pick_id, station_id, phase, time``).
            data_time: how far the stream has come (stations that stopped are measured after
                ``grace_s``).
            force: measure every station with the data there are (the stream ended).
        """
        empty: dict[str, Any] = dict.fromkeys(MAGNITUDE_FIELDS, float("nan"))
        empty.update(magnitude_type=None, magnitude_station_count=0)
        if not len(arrivals) or bool(is_rejected(pd.DataFrame([origin])).iloc[0]):
            return empty, True
        origin_time = pd.Timestamp(origin["time"])
        picks = arrivals.copy()
        picks["time"] = pd.to_datetime(picks["time"], utc=True)
        found, complete = [], True
        for sid, mine in picks.groupby(picks["station_id"].astype(str), sort=True):
            rows = self._amplitude(event_id, sid, mine, origin_time, data_time, force)
            if rows is None:
                complete = False
            elif len(rows):
                found.append(rows)
        if not found:
            return empty, complete
        amps = pd.concat(found, ignore_index=True)
        event = pd.DataFrame([{**origin, "event_id": event_id}])
        p = self.params
        station_ml = station_magnitudes(amps, event, self.stations, p.law, p.magnitude_type)
        event_ml = event_magnitudes(station_ml, p.min_stations, p.magnitude_type)
        if not len(event_ml):
            return empty, complete
        return {c: event_ml[c].iloc[0] for c in MAGNITUDE_FIELDS}, complete


def same_magnitude(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Return True when two origins carry the same magnitude (to 0.005, or both none)."""
    ma, mb = a.get("magnitude"), b.get("magnitude")
    na = ma is None or not np.isfinite(ma)
    nb = mb is None or not np.isfinite(mb)
    if na or nb:
        return na and nb
    return abs(float(ma) - float(mb)) < 0.005 and a.get("magnitude_station_count") == b.get(
        "magnitude_station_count"
    )
