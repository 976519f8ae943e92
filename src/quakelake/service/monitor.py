"""The monitor loop: live records -> streaming picks -> evolving events, committed every cycle.

One cycle (every ``cycle_s`` seconds):

1. the source hands over the records that arrived (each stamped with its delivery time);
2. :class:`quakelake.picking.streaming.StreamPicker` runs every window whose samples are all in and
   returns the picks that became final (equal to the batch picks) and the provisional ones;
3. the pick states are appended to ``live_picks``: ``provisional`` when first seen, ``final``
   (with ``supersedes`` naming the provisional pick it confirms), ``withdrawn`` for a
   provisional pick no final pick confirmed;
4. :class:`quakelake.association.live.LiveCatalog` associates the last ``window_s`` seconds of
   picks; every new, updated or deleted event is appended to ``live_origins`` /
   ``live_arrivals``; with a station file holding responses, the horizontal records are kept
   for :class:`quakelake.association.live_magnitudes.LiveMagnitudes`, each station's
   Wood-Anderson amplitude is appended to ``live_amplitudes`` once its window and padding are
   in, and the event's ML is revised as stations complete (between associations too);
5. everything above and the monitor's state (``monitor_state``: each lane's grid position and
   trigger state) is committed in ONE transaction, so a monitor killed at any point (mid-commit
   included) restarts from its last commit with no gap and no duplicate;
6. ``notify`` is called with each event change (the CLI emits a Prefect event per change).

The live tables are inlined in the catalog (no Parquet file per cycle); every
``flush_every_s`` the inlined rows are written out as one file per table (plus one delete file
for the ``monitor_state`` rows cycles replaced), so a week of monitoring leaves at most
``6 * 7 * 86400 / flush_every_s`` files (1008 with the default hourly flush) until
``quakelake lake compact`` merges them. A cycle rewrites only the state rows that changed.

Steps 1-2 (reading the source, picking) are the monitor's *front* (:class:`PickFront`): in
this process (:class:`LocalFront`) or sharded by station over Dask workers
(:class:`quakelake.service.monitor_shards.ShardedFront`); the rest (association, the one lake
writer, the state commit, notifications) stays in this process.

Plain Python: no Prefect (the caller passes ``notify``).
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from obspy import UTCDateTime

from quakelake.archive.live import LiveSource, StationShard
from quakelake.association.live import LiveCatalog, Revision
from quakelake.association.live_magnitudes import LiveMagnitudes
from quakelake.lakehouse import Lake, queries
from quakelake.params.compute import ComputeSettings
from quakelake.picking.models import PICK_COLUMNS
from quakelake.picking.streaming import StreamPicker
from quakelake.service.monitor_front import Delivery, LocalFront, PickFront

log = logging.getLogger(__name__)

__all__ = [
    "LIVE_TABLES",
    "CycleSummary",
    "Delivery",
    "LocalFront",
    "Monitor",
    "MonitorSettings",
    "PickFront",
]

LIVE_TABLES = ("live_picks", "live_origins", "live_arrivals", "live_amplitudes", "monitor_state")
FLUSHED = LIVE_TABLES  # monitor_state too: the rows it replaced go out with the rest
MATCH_S = 0.5  # a final pick confirms a provisional one of the same instrument and phase this close


@dataclass
class MonitorSettings:
    """How the monitor runs."""

    name: str = "monitor"
    cycle_s: float = 2.0
    window_s: float = 300.0
    duration_s: float | None = None
    flush_every_s: float = 3600.0
    provisional: bool = True


@dataclass
class CycleSummary:
    """What one cycle did."""

    records: int = 0
    windows: int = 0
    final: int = 0
    provisional: int = 0
    withdrawn: int = 0
    changes: list[Revision] = field(default_factory=list)
    seconds: float = 0.0


class _Deliveries:
    """When each record arrived: the delivery time of the record that holds a sample."""

    def __init__(self, keep_s: float = 3600.0) -> None:
        self.keep_s = keep_s
        self.ends: dict[str, list[float]] = {}
        self.walls: dict[str, list[float]] = {}

    def add(self, seed_id: str, end: UTCDateTime, wall: float) -> None:
        ends = self.ends.setdefault(seed_id, [])
        walls = self.walls.setdefault(seed_id, [])
        t = float(end.timestamp)
        i = bisect.bisect_left(ends, t)
        ends.insert(i, t)
        walls.insert(i, wall)
        if ends[0] < t - self.keep_s:
            cut = bisect.bisect_left(ends, t - self.keep_s)
            del ends[:cut], walls[:cut]

    def of(self, instrument: str, t: float) -> float | None:
        """Return when the last component's record holding time ``t`` arrived."""
        found = []
        for seed_id, ends in self.ends.items():
            if seed_id[:-1] != instrument:
                continue
            i = bisect.bisect_left(ends, t)
            if i < len(ends):
                found.append(self.walls[seed_id][i])
        return max(found) if found else None


class Monitor:
    """Follow one source into one lake.

    Args:
        lake: the lake (its live tables are created on first use).
        source: where the records come from (None with ``front``).
        picker: the streaming picker (one model x weights; None with ``front``).
        catalog: the evolving catalogue (None: picks only).
        settings: cycle, window, duration, flush.
        notify: called with every event change after it was committed.
        clock: wall clock (seconds since the epoch).
        front: what reads and picks instead of ``source`` and ``picker`` in this process,
            e.g. a :class:`quakelake.service.monitor_shards.ShardedFront`.
    """

    def __init__(
        self,
        lake: Lake,
        source: LiveSource | None,
        picker: StreamPicker | None,
        catalog: LiveCatalog | None,
        settings: MonitorSettings,
        notify: Callable[[Revision], None] | None = None,
        clock: Callable[[], float] = time.time,
        front: PickFront | None = None,
    ) -> None:
        if front is None:
            if source is None or picker is None:
                raise ValueError("give a source and a picker, or a front")
            front = LocalFront(source, picker)
        self.front = front
        self.lake = lake
        self.source = source
        self.picker = picker
        self.catalog = catalog
        self.settings = settings
        self.notify = notify
        self.clock = clock
        self.deliveries = _Deliveries()
        self.open_provisional: dict[str, dict[str, Any]] = {}
        self.final_picks = pd.DataFrame()
        self.data_time: UTCDateTime | None = None
        self.stop = threading.Event()
        self.cycles = 0
        self._last_flush = clock()
        self._written: dict[str, str] = {}  # state row per key as last committed
        lake.inline_rows(LIVE_TABLES)

    # ------------------------------------------------------------------ state
    def restore(self) -> bool:
        """Take up where the last monitor of this name stopped; return True when it had state."""
        name = self.settings.name
        rows = queries.monitor_state(self.lake, name)
        if not len(rows):
            return False
        self._written = dict(zip(rows["key"], rows["state"], strict=True))
        states = {r.key: json.loads(r.state) for r in rows.itertuples() if r.key != "_monitor"}
        meta = [json.loads(r.state) for r in rows.itertuples() if r.key == "_monitor"]
        self.front.restore(states, (meta[0].get("source") or {}) if meta else {})
        if meta:
            self.open_provisional = {p["pick_id"]: p for p in meta[0].get("provisional", [])}
            for p in self.open_provisional.values():
                p["time"] = pd.Timestamp(p["time"])
            if meta[0].get("data_time"):
                self.data_time = UTCDateTime(meta[0]["data_time"])
        if self.catalog is not None:
            start = (
                pd.Timestamp(self.data_time.datetime, tz="UTC")
                - pd.Timedelta(seconds=2 * self.settings.window_s)
                if self.data_time is not None
                else None
            )
            picks = queries.live_final_picks(self.lake, name, start)
            self.final_picks = picks[[c for c in PICK_COLUMNS if c in picks.columns]]
            origins = queries.live_origins(self.lake, name)
            arrivals = queries.live_arrivals(self.lake, name)
            self.catalog.restore(origins, arrivals)
            if self.catalog.magnitudes is not None:
                self.catalog.magnitudes.restore(queries.live_amplitudes(self.lake, name))
        return True

    def _state_change(self, now: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
        """Return the state rows that changed since the last commit and the keys they replace
        (with the keys of lanes that are gone): a lane's state changes when one of its windows
        ran, so most cycles rewrite a few rows, not one per lane (every row a cycle replaces
        stays in the catalog's history until the lake's snapshots are expired)."""
        rows = self._state_rows(now)
        changed = rows[
            [self._written.get(k) != v for k, v in zip(rows["key"], rows["state"], strict=True)]
        ]
        gone = sorted(set(self._written) - set(rows["key"]))
        return changed.reset_index(drop=True), sorted(changed["key"]) + gone

    def _state_rows(self, now: pd.Timestamp) -> pd.DataFrame:
        rows = [
            {
                "monitor": self.settings.name,
                "key": key,
                "state": json.dumps(state),
                "committed": now,
            }
            for key, state in self.front.lane_states().items()
        ]
        meta = {
            "data_time": str(self.data_time) if self.data_time is not None else "",
            "provisional": [{**p, "time": str(p["time"])} for p in self.open_provisional.values()],
            "source": self.front.source_state(),
        }
        rows.append(
            {
                "monitor": self.settings.name,
                "key": "_monitor",
                "state": json.dumps(meta, default=str),
                "committed": now,
            }
        )
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ one cycle
    def _stamp(self, picks: pd.DataFrame) -> pd.Series:
        out = []
        for row in picks.itertuples():
            inst = f"{row.station_id}.{row.band}"
            wall = self.deliveries.of(inst, row.time.timestamp())
            out.append(pd.Timestamp(wall, unit="s", tz="UTC") if wall is not None else pd.NaT)
        return pd.Series(out, index=picks.index, dtype="datetime64[us, UTC]")

    def _pick_rows(self, picks: pd.DataFrame, status: str, now: pd.Timestamp) -> pd.DataFrame:
        rows = picks.copy()
        rows.insert(1, "run_id", self.settings.name)
        rows["day"] = rows["time"].dt.strftime("%Y-%m-%d")
        rows["status"] = status
        if "supersedes" not in rows.columns:
            rows["supersedes"] = ""
        rows["monitor"] = self.settings.name
        rows["delivered"] = (
            self._stamp(rows) if len(rows) else pd.Series(dtype="datetime64[us, UTC]")
        )
        rows["committed"] = now
        return rows

    def _match(self, final: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Pair final picks with the open provisional ones they confirm."""
        final = final.copy()
        final["supersedes"] = ""
        for i, row in final.iterrows():
            for pid, p in list(self.open_provisional.items()):
                if (
                    p["station_id"] == row["station_id"]
                    and p["band"] == row["band"]
                    and p["phase"] == row["phase"]
                    and abs((p["time"] - row["time"]).total_seconds()) <= MATCH_S
                ):
                    final.at[i, "supersedes"] = pid
                    del self.open_provisional[pid]
                    break
        return final, []

    def cycle(self, finish: bool = False) -> CycleSummary:
        """Run one cycle (``finish``: the stream ended, close every lane); commit it."""
        t_start = time.perf_counter()
        summary = CycleSummary()
        wall = self.clock()
        got = self.front.poll_step(finish)
        for seed_id, end in got.ends:
            self.deliveries.add(seed_id, end, wall)
            if self.data_time is None or end > self.data_time:
                self.data_time = end
        if got.traces is not None and self.catalog is not None:
            if self.catalog.magnitudes is not None:
                for tr in got.traces:
                    self.catalog.magnitudes.add(tr)
        summary.records = len(got.ends)
        result = got.result
        summary.windows = result.windows
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        final, _ = self._match(result.final)
        tables: dict[str, list[pd.DataFrame]] = {t: [] for t in LIVE_TABLES}
        if len(final):
            tables["live_picks"].append(self._pick_rows(final, "final", now))
            self.final_picks = pd.concat([self.final_picks, final], ignore_index=True)
        summary.final = len(final)
        current = result.provisional if self.settings.provisional else result.provisional.iloc[0:0]
        new = current[~current["pick_id"].isin(self.open_provisional)]
        gone = [pid for pid in self.open_provisional if pid not in set(current["pick_id"])]
        if finish:
            gone = list(self.open_provisional)
        if len(new):
            tables["live_picks"].append(self._pick_rows(new, "provisional", now))
            for row in new.to_dict("records"):
                self.open_provisional[row["pick_id"]] = row
        if gone:
            withdrawn = pd.DataFrame([self.open_provisional.pop(pid) for pid in gone])
            withdrawn["supersedes"] = withdrawn["pick_id"]
            tables["live_picks"].append(self._pick_rows(withdrawn, "withdrawn", now))
        summary.provisional, summary.withdrawn = len(new), len(gone)
        if self.catalog is not None and self.data_time is not None:
            if summary.final or len(new) or gone:
                summary.changes = self._associate(now, tables)
            if (got.ends or finish) and self.catalog.magnitudes_pending():
                data_now = pd.Timestamp(self.data_time.datetime, tz="UTC")
                more = self.catalog.update_magnitudes(data_now, final=finish)
                self._origin_rows(more, self._known_picks(), now, tables)
                summary.changes += more
        self._trim_final()
        rows = {t: pd.concat(v, ignore_index=True) for t, v in tables.items() if v}
        if not got.ends and not rows and not finish:  # nothing new: no snapshot
            summary.seconds = time.perf_counter() - t_start
            return summary
        state, replaced = self._state_change(now)
        rows["monitor_state"] = state
        self.lake.commit(
            rows=rows,
            run_id=self.settings.name,
            message=f"monitor {self.settings.name} cycle",
            delete={"monitor_state": {"monitor": self.settings.name, "key": replaced}},
        )
        self._written.update(zip(state["key"], state["state"], strict=True))
        for key in set(replaced) - set(state["key"]):
            self._written.pop(key, None)
        self.cycles += 1
        if self.notify is not None:
            for change in summary.changes:
                try:
                    self.notify(change)
                except Exception as exc:  # a notification never stops the monitor
                    log.warning("notification of %s failed: %s", change.event_id, exc)
        if self.clock() - self._last_flush >= self.settings.flush_every_s:
            self.lake.flush_inlined(FLUSHED)
            self._last_flush = self.clock()
        summary.seconds = time.perf_counter() - t_start
        return summary

    def _associate(
        self, now: pd.Timestamp, tables: dict[str, list[pd.DataFrame]]
    ) -> list[Revision]:
        assert self.catalog is not None and self.data_time is not None
        picks = self._known_picks()
        if not len(picks):
            return []
        data_now = pd.Timestamp(self.data_time.datetime, tz="UTC")
        changes = self.catalog.update(picks, data_now)
        self._origin_rows(changes, picks, now, tables)
        return changes

    def _known_picks(self) -> pd.DataFrame:
        """Return the final picks kept and the open provisional ones."""
        provisional = pd.DataFrame(list(self.open_provisional.values()))
        frames = [f for f in (self.final_picks, provisional) if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _origin_rows(
        self,
        changes: list[Revision],
        picks: pd.DataFrame,
        now: pd.Timestamp,
        tables: dict[str, list[pd.DataFrame]],
    ) -> None:
        """Append the rows of ``changes`` (origins, arrivals, new amplitudes) to ``tables``."""
        assert self.catalog is not None
        for ch in changes:
            origin = dict(ch.origin)
            origin.update(
                origin_id=ch.origin_id,
                event_id=ch.event_id,
                revision=ch.revision,
                status=ch.kind,
                monitor=self.settings.name,
                creation_time=now,
                first_p_delivered=self._fourth_p(ch, picks),
            )
            frame = pd.DataFrame([origin])
            tables["live_origins"].append(frame)
            if len(ch.arrivals):
                arr = ch.arrivals.copy()
                arr["origin_id"] = ch.origin_id
                arr["event_id"] = ch.event_id
                arr["monitor"] = self.settings.name
                tables["live_arrivals"].append(arr)
        if self.catalog.magnitudes is not None:
            amps = self.catalog.magnitudes.take_new()
            if len(amps):
                amps["monitor"] = self.settings.name
                amps["committed"] = now
                tables["live_amplitudes"].append(amps)

    def _fourth_p(self, change: Revision, picks: pd.DataFrame) -> Any:
        """Return when the record of the 4th station's P arrival was delivered (NaT: < 4)."""
        arr = change.arrivals
        if not len(arr):
            return pd.NaT
        p = picks[picks["pick_id"].isin(arr.loc[arr["phase"] == "P", "pick_id"])]
        walls = []
        for row in p.itertuples():
            wall = self.deliveries.of(f"{row.station_id}.{row.band}", row.time.timestamp())
            if wall is not None:
                walls.append(wall)
        if len(walls) < 4:
            return pd.NaT
        return pd.Timestamp(sorted(walls)[3], unit="s", tz="UTC")

    def _trim_final(self) -> None:
        if not len(self.final_picks) or self.data_time is None:
            return
        horizon = pd.Timestamp(self.data_time.datetime, tz="UTC") - pd.Timedelta(
            seconds=2 * self.settings.window_s
        )
        self.final_picks = self.final_picks[self.final_picks["time"] >= horizon].reset_index(
            drop=True
        )

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Cycle until SIGINT/SIGTERM, ``stop`` or ``duration_s``; finish the cycle, commit, return 0."""
        started = self.clock()
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda *_: self.stop.set())
        try:
            while not self.stop.is_set():
                t0 = self.clock()
                summary = self.cycle()
                log.info(
                    "cycle %d: %d records, %d windows, %d final, %d provisional, %d withdrawn, "
                    "%d event changes (%.2f s)",
                    self.cycles,
                    summary.records,
                    summary.windows,
                    summary.final,
                    summary.provisional,
                    summary.withdrawn,
                    len(summary.changes),
                    summary.seconds,
                )
                if (
                    self.settings.duration_s is not None
                    and self.clock() - started >= self.settings.duration_s
                ):
                    break
                self.stop.wait(max(0.0, self.settings.cycle_s - (self.clock() - t0)))
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.front.close()
        return 0


def latencies(lake: Lake, monitor: str) -> dict[str, Any]:
    """Return p50/p95 latencies (seconds) of the monitor's picks and events from its lake rows."""
    picks = queries.live_pick_latencies(lake, monitor)
    out: dict[str, Any] = {}
    for status in ("provisional", "final"):
        s = picks.loc[picks["status"] == status, "s"].to_numpy() if len(picks) else np.array([])
        if len(s):
            out[status] = {
                "n": int(len(s)),
                "p50": float(np.percentile(s, 50)),
                "p95": float(np.percentile(s, 95)),
            }
    for key, rows in (
        ("events", queries.live_event_latencies(lake, monitor)),
        ("magnitudes", queries.live_magnitude_latencies(lake, monitor)),
    ):
        if len(rows):
            s = rows["s"].to_numpy()
            out[key] = {
                "n": int(len(s)),
                "p50": float(np.percentile(s, 50)),
                "p95": float(np.percentile(s, 95)),
            }
    return out


@dataclass
class MonitorSpec:
    """Everything ``quakelake monitor`` (and the monitor deployment) is given."""

    lake: str
    sds: str | None = None
    seedlink: str | None = None
    fdsn: str | None = None
    networks: list[str] = field(default_factory=lambda: ["*"])
    stations: list[str] = field(default_factory=lambda: ["*"])
    channels: list[str] = field(default_factory=lambda: ["*"])
    station_file: str | None = None
    model: str = "PhaseNet"
    weights: str = "original"
    p_threshold: float = 0.3
    s_threshold: float = 0.3
    pyocto: bool = True
    associate: bool = True
    name: str = "monitor"
    cycle_s: float = 2.0
    window_s: float = 300.0
    duration_s: float | None = None
    flush_every_s: float = 3600.0
    provisional: bool = True
    from_start: bool = False
    catalog: str | None = None
    device: str = "cpu"
    magnitudes: bool = True
    playback: str | None = None  # --fdsn drill: the source's clock reads this at the start
    speed: float = 1.0  # ... and runs this many times real time
    magnitude_params: dict[str, Any] | None = None  # MagnitudeParams fields (law, window, ...)
    shards: int = 1
    execution: ComputeSettings | None = None

    @property
    def source_label(self) -> str:
        return self.sds or self.seedlink or self.fdsn or ""

    @property
    def sharded(self) -> bool:
        """True when the stations are read and picked on Dask workers (``--shards``/``--runner``)."""
        return self.shards > 1 or (
            self.execution is not None and self.execution.runner != "threads"
        )


def make_source(
    spec: MonitorSpec,
    streams: list[tuple[str, str, str]] | None = None,
    shard: StationShard | None = None,
) -> LiveSource:
    """Return the source ``spec`` names (``streams``: the SeedLink streams; ``shard``: only the
    stations of one shard)."""
    from quakelake.archive.live import FDSNPoller, SDSFollower, SeedLinkSource
    from quakelake.params import StationSelection

    selection = StationSelection(
        networks=spec.networks, stations=spec.stations, channels=spec.channels
    )
    if spec.sds:
        return SDSFollower(Path(spec.sds), selection, from_start=spec.from_start, shard=shard)
    if spec.fdsn:
        if spec.playback:  # a drill: the service is asked as if the clock read spec.playback
            start = UTCDateTime(spec.playback)
            clock = playback_clock(start, spec.speed)
            return FDSNPoller(spec.fdsn, selection, start=start, clock=clock, shard=shard)
        return FDSNPoller(spec.fdsn, selection, shard=shard)
    if spec.seedlink:
        begin = UTCDateTime(0) if spec.from_start else None  # the server's whole ring
        mine = [s for s in streams or [] if shard is None or shard.owns(s[0], s[1])]
        return SeedLinkSource(spec.seedlink, mine, begin)
    raise ValueError("give one source: --sds, --seedlink or --fdsn")


def make_picker(spec: MonitorSpec) -> StreamPicker:
    """Return the streaming picker ``spec`` names (its model loaded on this machine)."""
    from quakelake.params import PickParams
    from quakelake.picking import models as picking

    params = PickParams(p_threshold=spec.p_threshold, s_threshold=spec.s_threshold)
    model = picking.load_model(spec.model, spec.weights, picking.resolve_device(spec.device))
    return StreamPicker(model, picking.ModelSpec(spec.model, spec.weights), params)


def build_monitor(
    spec: MonitorSpec,
    notify: Callable[[Revision], None] | None = None,
    stations_table: pd.DataFrame | None = None,
) -> Monitor:
    """Return the monitor ``spec`` describes (model loaded, source connected, state restored;
    with ``spec.sharded``, the shards started on their Dask workers)."""
    from quakelake.params.association import GammaConfig, PyOctoConfig

    if stations_table is None and spec.station_file:
        from quakelake.archive.stations import read_stations

        stations_table = read_stations(spec.station_file)
    if not (spec.sds or spec.fdsn or spec.seedlink):
        raise ValueError("give one source: --sds, --seedlink or --fdsn")
    streams = seedlink_streams(spec, stations_table) if spec.seedlink else None
    front: PickFront
    if spec.sharded:
        from quakelake.service.monitor_shards import ShardedFront

        known = known_stations(spec, stations_table, streams)
        if spec.shards > len(known) > 0:
            raise ValueError(
                f"--shards: {spec.shards} shards for {len(known)} stations; give at most "
                f"{len(known)} (a shard follows whole stations)"
            )
        front = ShardedFront.start(
            spec.shards,
            spec.execution,
            functools.partial(make_source, spec, streams),
            functools.partial(make_picker, spec),
            known,
        )
    else:
        front = LocalFront(make_source(spec, streams), make_picker(spec))
    lake = Lake(spec.lake, spec.catalog)
    catalog = None
    if spec.associate:
        if stations_table is not None and len(stations_table):
            config = PyOctoConfig() if spec.pyocto else GammaConfig()
            catalog = LiveCatalog(
                stations_table,
                config,
                spec.window_s,
                prefix=f"{spec.name}",
                magnitudes=live_magnitudes(spec, stations_table),
            )
            if catalog.magnitudes is not None:
                front.send_horizontals()
    settings = MonitorSettings(
        name=spec.name,
        cycle_s=spec.cycle_s,
        window_s=spec.window_s,
        duration_s=spec.duration_s,
        flush_every_s=spec.flush_every_s,
        provisional=spec.provisional,
    )
    local = front if isinstance(front, LocalFront) else None
    mon = Monitor(
        lake,
        local.source if local else None,
        local.picker if local else None,
        catalog,
        settings,
        notify,
        front=front,
    )
    try:
        mon.restore()
    except BaseException:
        front.close()
        raise
    return mon


def playback_clock(start: UTCDateTime, speed: float = 1.0) -> Callable[[], UTCDateTime]:
    """Return a clock that reads ``start`` now and runs ``speed`` times real time."""
    t0 = time.time()
    return lambda: start + (time.time() - t0) * speed


def live_magnitudes(spec: MonitorSpec, stations_table: pd.DataFrame) -> LiveMagnitudes | None:
    """Return the monitor's magnitude measurer: the responses of the station file (StationXML),
    or None (with a warning) when magnitudes are off or the file holds no response."""
    if not spec.magnitudes or not spec.station_file:
        return None
    from quakelake.association.magnitudes import read_inventory
    from quakelake.params.magnitudes import MagnitudeParams

    path = Path(spec.station_file)
    files = sorted(path.glob("*.xml")) if path.is_dir() else [path]
    try:
        inventory = read_inventory(files)
    except Exception as exc:  # not StationXML (a CSV station table): coordinates only
        log.warning("no magnitudes: %s holds no StationXML responses (%s)", spec.station_file, exc)
        return None
    params = MagnitudeParams.model_validate(spec.magnitude_params or {})
    amp = params.amplitude
    keep_s = spec.window_s + amp.pre_s + amp.window_s + 2 * amp.pad_s + 60.0
    return LiveMagnitudes(inventory, stations_table, params, keep_s=keep_s)


def known_stations(
    spec: MonitorSpec,
    stations_table: pd.DataFrame | None = None,
    streams: list[tuple[str, str, str]] | None = None,
) -> tuple[str, ...]:
    """Return the ``NET.STA`` the shards of a sharded monitor share round robin (sorted): the SeedLink streams, else
    the station file's stations that -N/-S select, else the stations of the SDS tree; others
    found later go to a shard by hash."""
    pairs: set[tuple[str, str]] = set()
    if streams:
        pairs = {(n, s) for n, s, _ in streams}
    elif stations_table is not None and len(stations_table):
        pairs = set(zip(stations_table["network"], stations_table["station"], strict=True))
    elif spec.sds and os.path.isdir(spec.sds):
        for year in os.scandir(spec.sds):
            if year.is_dir() and year.name.isdigit():
                for net in os.scandir(year.path):
                    if net.is_dir():
                        pairs |= {(net.name, s.name) for s in os.scandir(net.path) if s.is_dir()}
    return tuple(
        sorted(
            f"{n}.{s}"
            for n, s in pairs
            if any(fnmatch.fnmatch(n, p) for p in spec.networks)
            and any(fnmatch.fnmatch(s, p) for p in spec.stations)
        )
    )


def seedlink_streams(
    spec: MonitorSpec, stations_table: pd.DataFrame | None
) -> list[tuple[str, str, str]]:
    """Return SeedLink ``(NET, STA, selectors)``: SeedLink v3 names stations one by one, so
    wildcards in -N/-S are expanded from the station file."""
    selectors = " ".join(c for c in spec.channels if c != "*")
    wild = any(ch in "".join(spec.networks + spec.stations) for ch in "*?")
    if not wild:
        return [(n, s, selectors) for n in spec.networks for s in spec.stations]
    if stations_table is None or not len(stations_table):
        raise ValueError(
            "--seedlink with wildcards in -N/-S needs a station file (-F) to name the stations"
        )
    pairs = sorted(set(zip(stations_table["network"], stations_table["station"], strict=True)))
    return [
        (n, s, selectors)
        for n, s in pairs
        if any(fnmatch.fnmatch(n, p) for p in spec.networks)
        and any(fnmatch.fnmatch(s, p) for p in spec.stations)
    ]
