"""Events that evolve: association on a sliding window, stable event ids, an origin history.

Every cycle the monitor hands :meth:`LiveCatalog.update` the picks of the last ``window_s``
seconds. They are associated (PyOcto or GaMMA, :func:`quakelake.association.associate`) and
each origin found is matched to the events already known by the picks they share: an origin
sharing at least ``min_shared`` of the smaller pick set with a known event is a new revision
of that event (its id stays), otherwise it is a new event. A known event that no origin
matches any more while its picks are still inside the window is deleted (kept as a
``deleted`` revision; it comes back with the same id when an origin matches it again). An
event whose origin time has left the window is closed: its last revision stands.

With a :class:`quakelake.association.live_magnitudes.LiveMagnitudes` every revision carries
the local magnitude of the stations whose amplitudes are in; an event whose magnitude changes
as more stations' amplitude windows complete (its picks and location unchanged) gets an
``updated`` revision for it (:meth:`LiveCatalog.update_magnitudes` between associations).

Revisions are kept whole (origin time, location, uncertainties, picks used, magnitude, the
wall-clock creation time): the monitor appends them to the lake's ``live_origins`` and
``live_arrivals`` tables; the preferred origin of an event is its latest revision.

Plain Python: no Prefect, no lake.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from obspy import UTCDateTime

from quakelake.association.associate import associate
from quakelake.association.live_magnitudes import LiveMagnitudes, same_magnitude
from quakelake.params.association import GammaConfig, PyOctoConfig

log = logging.getLogger(__name__)

__all__ = ["LiveCatalog", "LiveEvent", "Revision"]

ARRIVAL_COLUMNS = ("pick_id", "station_id", "phase", "time", "residual_s")

# Origins that differ less than this from the event's preferred one are not a new revision.
SAME_TIME_S = 0.005
SAME_PLACE_KM = 0.05


@dataclass
class Revision:
    """One change of one event: ``new``, ``updated`` or ``deleted``."""

    event_id: str
    origin_id: str
    revision: int
    kind: str
    origin: dict[str, Any]
    arrivals: pd.DataFrame


@dataclass
class LiveEvent:
    """What the catalogue knows of one event."""

    event_id: str
    origin: dict[str, Any]
    picks: frozenset[str]
    revision: int = 0
    deleted: bool = False
    closed: bool = False
    history: list[str] = field(default_factory=list)
    arrivals: pd.DataFrame | None = None  # the picks of the latest revision
    magnitude_complete: bool = False  # every station's amplitude of the latest revision is in


def _origin_id(event_id: str, revision: int) -> str:
    return f"{event_id}/{revision}"


def _event_id(prefix: str, origin_time: pd.Timestamp, picks: frozenset[str]) -> str:
    digest = hashlib.sha1("|".join(sorted(picks)).encode()).hexdigest()[:6]
    return f"{prefix}{origin_time.strftime('%Y%m%dT%H%M%S')}{digest}"


def _km(a: dict[str, Any], b: dict[str, Any]) -> float:
    lat = np.radians((a["latitude"] + b["latitude"]) / 2)
    dy = (a["latitude"] - b["latitude"]) * 111.195
    dx = (a["longitude"] - b["longitude"]) * 111.195 * np.cos(lat)
    dz = (a.get("depth_km") or 0.0) - (b.get("depth_km") or 0.0)
    return float(np.sqrt(dx * dx + dy * dy + dz * dz))


class LiveCatalog:
    """The monitor's events, revised as picks arrive.

    Args:
        stations: station table (the lake's ``stations`` columns).
        config: association settings (fixed for the monitor's life).
        window_s: seconds of picks associated every cycle.
        prefix: event id prefix.
        min_shared: share of the smaller pick set two origins must have in common to be one event.
        magnitudes: measures local magnitudes from the records (None: no magnitudes).
    """

    def __init__(
        self,
        stations: pd.DataFrame,
        config: PyOctoConfig | GammaConfig,
        window_s: float = 300.0,
        prefix: str = "ql",
        min_shared: float = 0.5,
        magnitudes: LiveMagnitudes | None = None,
    ) -> None:
        self.stations = stations
        self.config = config
        self.window_s = window_s
        self.prefix = prefix
        self.min_shared = min_shared
        self.magnitudes = magnitudes
        self.events: dict[str, LiveEvent] = {}
        self._data_time: UTCDateTime | None = None
        self._force = False

    def restore(self, origins: pd.DataFrame, arrivals: pd.DataFrame) -> None:
        """Know again the events of a previous run (their latest revision each)."""
        if not len(origins):
            return
        latest = origins.sort_values("revision").groupby("event_id").tail(1)
        for row in latest.to_dict("records"):
            mine = arrivals.loc[arrivals["origin_id"] == row["origin_id"]]
            self.events[row["event_id"]] = LiveEvent(
                row["event_id"],
                row,
                frozenset(mine["pick_id"]),
                int(row["revision"]),
                deleted=row["status"] == "deleted",
                arrivals=mine[list(ARRIVAL_COLUMNS)].reset_index(drop=True),
            )

    def update(self, picks: pd.DataFrame, now: pd.Timestamp) -> list[Revision]:
        """Associate the picks of ``[now - window_s, now]``; return the events' changes."""
        start = now - pd.Timedelta(seconds=self.window_s)
        self._data_time = UTCDateTime(ns=int(now.value))
        window = picks[(picks["time"] >= start) & (picks["time"] <= now)]
        # events whose origin left the window keep their last revision
        for ev in self.events.values():
            if not ev.closed and pd.Timestamp(ev.origin["time"]) < start:
                ev.closed = True
        if len(window) == 0:
            return self.update_magnitudes(now)
        result = associate(window, self.stations, self.config, event_prefix=self.prefix)
        events, assignments = result.events, result.assignments
        changes: list[Revision] = []
        matched: set[str] = set()
        open_events = [e for e in self.events.values() if not e.closed]
        for row in events.sort_values("time").to_dict("records"):
            mine = assignments[assignments["event_id"] == row["event_id"]]
            picks_used = frozenset(mine["pick_id"])
            if not picks_used or pd.Timestamp(row["time"]) < start:
                continue
            best, share = None, 0.0
            for ev in open_events:
                if ev.event_id in matched or not ev.picks:
                    continue
                common = len(ev.picks & picks_used) / min(len(ev.picks), len(picks_used))
                if common > share:
                    best, share = ev, common
            origin = {k: row[k] for k in events.columns if k not in ("event_id", "run_id")}
            if best is not None and share >= self.min_shared:
                matched.add(best.event_id)
                if (
                    not best.deleted
                    and best.picks == picks_used
                    and abs(
                        (pd.Timestamp(best.origin["time"]) - pd.Timestamp(row["time"]))
                        / pd.Timedelta(seconds=1)
                    )
                    < SAME_TIME_S
                    and _km(best.origin, origin) < SAME_PLACE_KM
                ):
                    continue
                best.revision += 1
                best.deleted = False
                best.origin, best.picks = origin, picks_used
                changes.append(self._revision(best, "updated", mine))
            else:
                event_id = _event_id(self.prefix, pd.Timestamp(row["time"]), picks_used)
                known = self.events.get(event_id)
                if known is not None:  # the same origin and picks as an event already published
                    # (closed, deleted, or restored after a restart): a revision of it, never new twice
                    known.revision += 1
                    known.deleted = known.closed = False
                    known.origin, known.picks = origin, picks_used
                    matched.add(event_id)
                    changes.append(self._revision(known, "updated", mine))
                    continue
                ev = LiveEvent(event_id, origin, picks_used)
                self.events[event_id] = ev
                matched.add(event_id)
                changes.append(self._revision(ev, "new", mine))
        window_ids = set(window["pick_id"])
        for ev in open_events:
            if ev.event_id in matched or ev.deleted:
                continue
            if ev.picks & window_ids or not ev.picks:
                ev.revision += 1
                ev.deleted = True
                changes.append(self._revision(ev, "deleted", mine=None))
        changed = {c.event_id for c in changes}
        return changes + self._magnitude_changes(exclude=changed)

    def update_magnitudes(self, now: pd.Timestamp, final: bool = False) -> list[Revision]:
        """Return an ``updated`` revision of each open event whose magnitude changed since its
        latest revision (more stations' amplitudes are in); no association is run.

        ``final``: the stream ended; stations still waiting are measured with the data there are.
        """
        self._data_time = UTCDateTime(ns=int(now.value))
        self._force = final
        try:
            return self._magnitude_changes(exclude=set())
        finally:
            self._force = False

    def magnitudes_pending(self) -> bool:
        """Return True when an open event still waits for some station's amplitude."""
        return self.magnitudes is not None and any(
            not (e.closed or e.deleted or e.magnitude_complete) for e in self.events.values()
        )

    def _magnitude_changes(self, exclude: set[str]) -> list[Revision]:
        if self.magnitudes is None:
            return []
        changes = []
        for ev in self.events.values():
            if ev.event_id in exclude or ev.closed or ev.deleted or ev.magnitude_complete:
                continue
            if ev.arrivals is None or not len(ev.arrivals):
                continue
            before = dict(ev.origin)
            self._measure(ev, ev.arrivals)
            if not same_magnitude(before, ev.origin):
                ev.revision += 1
                changes.append(self._revision(ev, "updated", ev.arrivals, measure=False))
        return changes

    def _measure(self, ev: LiveEvent, arrivals: pd.DataFrame) -> None:
        """Put the magnitude of the stations whose amplitudes are in on the event's origin."""
        if self.magnitudes is None or self._data_time is None:
            return
        fields, ev.magnitude_complete = self.magnitudes.measure(
            ev.event_id, ev.origin, arrivals, self._data_time, self._force
        )
        ev.origin.update(fields)

    def _revision(
        self, ev: LiveEvent, kind: str, mine: pd.DataFrame | None, measure: bool = True
    ) -> Revision:
        origin_id = _origin_id(ev.event_id, ev.revision)
        ev.history.append(origin_id)
        if mine is None:
            arrivals = pd.DataFrame(columns=list(ARRIVAL_COLUMNS))
        else:
            arrivals = mine[list(ARRIVAL_COLUMNS)].reset_index(drop=True)
            if measure:
                ev.arrivals = arrivals
                self._measure(ev, arrivals)
        return Revision(ev.event_id, origin_id, ev.revision, kind, dict(ev.origin), arrivals)

    def preferred(self) -> pd.DataFrame:
        """Return the latest revision of every event that is not deleted."""
        rows = [
            {"event_id": e.event_id, "revision": e.revision, **e.origin}
            for e in self.events.values()
            if not e.deleted
        ]
        return pd.DataFrame(rows)
