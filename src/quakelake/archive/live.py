"""Live waveform sources for the monitor: a growing SDS archive, a SeedLink server, an FDSN service.

Each source answers :meth:`poll` with the records that arrived since the last call, as ObsPy
traces (one per record or per contiguous piece), and can start again from a time per stream
(:meth:`resume`), so a restarted monitor reads what its state in the lake says it still needs.

- :class:`SDSFollower` follows an SDS tree that a recorder (``slarchive``, SeisComP ``scart``,
  CAPS) appends to record by record: it remembers how many bytes of each file it decoded,
  decodes only whole miniSEED records (a record being written is read at the next poll) and
  finds new day files as they appear.
- :class:`SeedLinkSource` is a SeedLink v3 client (ObsPy's ``SLClient`` protocol code) that
  resumes from the last sequence number per station.
- :class:`FDSNPoller` asks an fdsnws-dataselect service for the last minutes every poll
  (overlapping windows; samples already delivered are dropped).

Plain Python: no Prefect, no lake.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obspy import Stream, Trace, UTCDateTime
from obspy.io.mseed.core import _read_mseed

from quakelake.archive.sds import parse_records
from quakelake.params import StationSelection

log = logging.getLogger(__name__)

__all__ = [
    "FDSNPoller",
    "LiveSource",
    "SDSFollower",
    "SeedLinkSource",
    "StationShard",
    "whole_records",
]


@dataclass(frozen=True)
class StationShard:
    """The stations one shard of a sharded monitor follows: shard ``index`` of ``count``.

    A station named in ``known`` (sorted ``NET.STA``, e.g. from the station file) goes to
    shard ``position % count`` (round robin: balanced); any other station to
    ``crc32("NET.STA") % count`` (stable across processes and restarts). Every station
    belongs to exactly one shard.
    """

    index: int
    count: int
    known: tuple[str, ...] = ()

    def of(self, network: str, station: str) -> int:
        """Return the shard that follows station ``network.station``."""
        name = f"{network}.{station}"
        i = bisect.bisect_left(self.known, name)
        if i < len(self.known) and self.known[i] == name:
            return i % self.count
        return zlib.crc32(name.encode()) % self.count

    def owns(self, network: str, station: str) -> bool:
        """Return True when this shard follows ``network.station``."""
        return self.of(network, station) == self.index


class LiveSource:
    """What the monitor needs of a source."""

    name = "source"

    def poll(self) -> list[Trace]:  # pragma: no cover - interface
        raise NotImplementedError

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        """Deliver again, from ``since[seed_id]`` on, what the monitor still needs."""

    def close(self) -> None:
        """Release connections and threads."""

    def state(self) -> dict[str, Any]:
        """What the source needs after a restart besides the picker's times (kept in the lake);
        per-station entries are keyed ``NET_STA`` (a sharded monitor routes them by station)."""
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state` returned before a restart (before :meth:`resume`)."""


def _record_length(buf: bytes, offset: int) -> int | None:
    """Return the length of the miniSEED 2 record at ``offset`` from its blockette 1000 (header
    fields only, either byte order), or None when it cannot be read that way."""
    if offset + 48 > len(buf):
        return None
    for order in (">", "<"):
        year, day = struct.unpack_from(order + "HH", buf, offset + 20)
        if 1900 <= year <= 2100 and 1 <= day <= 366:
            break
    else:
        return None
    (nxt,) = struct.unpack_from(order + "H", buf, offset + 46)
    for _ in range(16):  # the blockette chain
        if nxt < 48 or offset + nxt + 8 > len(buf):
            return None
        kind, following = struct.unpack_from(order + "HH", buf, offset + nxt)
        if kind == 1000:
            exponent = buf[offset + nxt + 6]
            return 1 << exponent if 7 <= exponent <= 20 else None
        nxt = following
    return None


def whole_records(buf: bytes) -> int:
    """Return how many leading bytes of ``buf`` are whole miniSEED records (a record being
    written is left for the next poll).

    The record lengths are read from the headers' blockette 1000 (a few bytes per record: a
    network of 500 stations appends thousands of records a minute); a record without one is
    parsed by ObsPy (:func:`quakelake.archive.sds.parse_records`) from there on."""
    offset = 0
    while offset < len(buf):
        length = _record_length(buf, offset)
        if length is None:
            records, _ = parse_records(buf[offset:])
            return offset + sum(len(r.data) for r in records)
        if offset + length > len(buf):
            break
        offset += length
    return offset


def _decode(data: bytes, selection: StationSelection | None) -> list[Trace]:
    if not data:
        return []
    try:  # ObsPy's miniSEED reader itself: obspy.read() looks up its plugins on every call
        stream = _read_mseed(io.BytesIO(data))
    except Exception as exc:  # a damaged record: reported, the rest of the stream goes on
        log.warning("undecodable miniSEED records skipped (%s: %s)", type(exc).__name__, exc)
        return []
    out = []
    for tr in stream:
        s = tr.stats
        if selection is None or selection.matches(s.network, s.station, s.location, s.channel):
            out.append(tr)
    return out


@dataclass
class SDSFollower(LiveSource):
    """Follow a growing SDS archive (``YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY``).

    Args:
        root: the archive's root folder.
        selection: -N/-S/-C station selection.
        from_start: read files from their beginning (a replay, a restart); otherwise the files
            that exist at the first poll are read from their current end (only new records).
        shard: follow only this shard's stations (a sharded monitor); None: all.
    """

    root: Path
    selection: StationSelection | None = None
    from_start: bool = True
    shard: StationShard | None = None
    name: str = "sds"
    offsets: dict[str, int] = field(default_factory=dict)
    since: dict[str, UTCDateTime] = field(default_factory=dict)
    _first: bool = True

    def _files(self) -> Iterable[tuple[str, int]]:
        for year in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not year.is_dir() or not year.name.isdigit():
                continue
            for dirpath, dirs, files in os.walk(year.path):
                if self.shard is not None and os.path.dirname(dirpath) == year.path:
                    net = os.path.basename(dirpath)  # YEAR/NET: its folders are stations
                    dirs[:] = [d for d in dirs if self.shard.owns(net, d)]
                for name in files:
                    if name.count(".") < 6 or ".D." not in name:
                        continue
                    net, sta, loc, cha = name.split(".")[:4]
                    if self.selection is not None and not self.selection.matches(
                        net, sta, loc, cha
                    ):
                        continue
                    if self.shard is not None and not self.shard.owns(net, sta):
                        continue
                    path = os.path.join(dirpath, name)
                    try:
                        yield path, os.stat(path).st_size
                    except OSError:
                        continue

    def poll(self) -> list[Trace]:
        """Return the whole records appended since the last poll."""
        out: list[Trace] = []
        if not self.root.is_dir():
            return out
        first, self._first = self._first, False
        for path, size in self._files():
            done = self.offsets.get(path)
            if done is None:
                done = 0 if (self.from_start or not first) else size
                self.offsets[path] = done
            if size <= done:
                continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(done)
                    buf = fh.read(size - done)
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                continue
            n = whole_records(buf)
            if n == 0:
                continue
            self.offsets[path] = done + n
            for tr in _decode(buf[:n], self.selection):
                since = self.since.get(tr.id[:-1])  # per instrument NET.STA.LOC.BAND
                if since is not None:
                    if tr.stats.endtime < since:
                        continue
                    if tr.stats.starttime < since:
                        tr = tr.slice(since, None, nearest_sample=False)
                out.append(tr)
        return out

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        """Read the files again from their start, keeping samples from ``since[seed_id]`` on."""
        self.since = dict(since)
        self.offsets.clear()
        self.from_start = True


@dataclass
class FDSNPoller(LiveSource):
    """Poll an fdsnws-dataselect service for the last ``window_s`` seconds every poll.

    Args:
        url: the service's base URL (``http://host:port``) or an ObsPy client name.
        selection: -N/-S/-C (wildcards as the service accepts them).
        window_s: how far back each request reaches (covers a late record).
        start: first time to ask for (default: now - window_s).
        clock: the time "now" (tests replay data of the past through a shifted clock).
        shard: keep only this shard's stations (a sharded monitor; each shard asks for the
            whole selection and drops the other stations); None: all.
    """

    url: str
    selection: StationSelection
    window_s: float = 120.0
    start: UTCDateTime | None = None
    clock: object = None
    shard: StationShard | None = None
    name: str = "fdsn"
    delivered: dict[str, UTCDateTime] = field(default_factory=dict)
    _client: object = None

    def _now(self) -> UTCDateTime:
        return self.clock() if callable(self.clock) else UTCDateTime()

    def _connect(self):
        if self._client is None:
            from obspy.clients.fdsn import Client

            self._client = Client(base_url=self.url, _discover_services=False)
        return self._client

    def poll(self) -> list[Trace]:
        from obspy.clients.fdsn.header import FDSNNoDataException
        from obspy.io.mseed import ObsPyMSEEDFilesizeTooSmallError

        now = self._now()
        oldest = min(self.delivered.values()) if self.delivered else None
        t0 = oldest if oldest is not None else (self.start or now - self.window_s)
        t0 = max(t0, now - self.window_s) if oldest is not None else t0
        sel = self.selection
        try:
            stream = self._connect().get_waveforms(
                ",".join(sel.networks) if sel.networks else "*",
                ",".join(sel.stations) if sel.stations else "*",
                "*",
                ",".join(sel.channels) if sel.channels else "*",
                t0,
                now,
            )
        except (FDSNNoDataException, ObsPyMSEEDFilesizeTooSmallError):
            return []  # 204, or 200 with an empty body (portable-fdsnws-dataselect)
        out = []
        for tr in stream:
            s = tr.stats
            if not sel.matches(s.network, s.station, s.location, s.channel):
                continue
            if self.shard is not None and not self.shard.owns(s.network, s.station):
                continue
            last = self.delivered.get(tr.id)
            if last is not None:
                if tr.stats.endtime <= last:
                    continue
                tr = tr.slice(last + tr.stats.delta / 2, None, nearest_sample=False)
                if tr.stats.npts == 0:
                    continue
            self.delivered[tr.id] = tr.stats.endtime
            out.append(tr)
        return out

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        """Ask again from the earliest time an instrument still needs."""
        self.delivered = {}
        if since:
            self.start = min(since.values())


class SeedLinkSource(LiveSource):
    """A SeedLink v3 client that follows ``NET_STA:SELECTORS`` streams (ObsPy's ``SLClient``).

    Records are collected by a background thread (started at the first :meth:`poll`, so a
    restored state decides where it starts); :meth:`poll` hands over what arrived. Per station
    the source keeps the sequence number of the last record handed over and a few checkpoints
    ``(sequence, latest record end up to it)`` (:meth:`state`, kept in the lake by the
    monitor): a restart asks the server, per station, to resume after the last checkpoint whose
    records all end before the time from which the picker needs data again (:meth:`resume`),
    so nothing is missed and what is delivered twice is dropped by time. A sequence number the
    server's ring no longer holds starts at its oldest record.

    Args:
        server: ``HOST[:PORT]`` (port 18000 when left out).
        streams: ``(NET, STA, selectors)``; empty selectors: every channel.
        start: first start without a state: ask for records from this time (``TIME``);
            None: the records that arrive from now on (``DATA``).
        checkpoint_s: seconds of data between two checkpoints of a station.
        keep_s: seconds of checkpoints kept per station.
        reconnect_s: wait before connecting again after a failure.
    """

    name = "seedlink"

    def __init__(
        self,
        server: str,
        streams: list[tuple[str, str, str]],
        start: UTCDateTime | None = None,
        checkpoint_s: float = 10.0,
        keep_s: float = 600.0,
        reconnect_s: float = 2.0,
    ) -> None:
        self.server = server if ":" in server else f"{server}:18000"
        self.streams = streams
        self.start = start
        self.checkpoint_s = checkpoint_s
        self.keep_s = keep_s
        self.reconnect_s = reconnect_s
        self.since: dict[str, UTCDateTime] = {}
        self.handed: dict[str, dict[str, Any]] = {}  # NET_STA -> seq, end, checkpoints
        self.resume_from: dict[str, int] = {}  # NET_STA -> last sequence number not wanted
        self._lock = threading.Lock()
        self._pending: list[tuple[str, int, Trace]] = []
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self.error = ""

    # ------------------------------------------------------------------ the connection
    def _connect(self) -> None:
        from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection
        from obspy.clients.seedlink.slclient import SLClient
        from obspy.clients.seedlink.slpacket import SLPacket

        outer = self

        class _Connection(SeedLinkConnection):
            # ObsPy 1.5 compares the connect time-out with None when no time-out is set
            # (which would also end every collect() after it): give the connect check one.
            def is_connected(self, timeout: float | None = 1.0) -> bool:
                return bool(super().is_connected(10.0 if timeout is None else timeout))

        class _Client(SLClient):
            def packet_handler(self, count: int, slpack: Any) -> bool:
                if slpack is None or slpack in (SLPacket.SLNOPACKET, SLPacket.SLERROR):
                    return False
                if slpack.get_type() in (SLPacket.TYPE_SLINF, SLPacket.TYPE_SLINFT):
                    return False
                try:
                    trace = slpack.get_trace()
                except Exception as exc:  # a record ObsPy cannot decode: skipped
                    log.warning("undecodable SeedLink record skipped (%s)", exc)
                    return False
                key = f"{trace.stats.network}_{trace.stats.station}"
                with outer._lock:
                    outer._pending.append((key, slpack.get_sequence_number(), trace))
                return outer._closing.is_set()

        client = _Client()
        client.slconn = _Connection()
        client.slconn.set_sl_address(self.server)
        client.slconn.netdly = max(1, int(round(self.reconnect_s)))
        selectors: dict[str, list[str]] = {}
        for net, sta, sel in self.streams:
            selectors.setdefault(f"{net}_{sta}", []).extend(sel.split() or ["???"])
        client.multiselect = ",".join(f"{k}:{' '.join(v)}" for k, v in selectors.items())
        if self.start is not None and not self.resume_from:
            client.begin_time = self.start.format_seedlink()
        client.initialize()
        for stream in client.slconn.streams:
            seq = self.resume_from.get(f"{stream.net}_{stream.station}")
            if seq is not None:
                stream.seqnum = seq  # ObsPy asks for DATA seq + 1
        self._client = client
        self._thread = threading.Thread(target=self._run, daemon=True, name="seedlink")
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                self._client.run()
            except Exception as exc:  # server down, refused: try again
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("SeedLink %s: %s; connecting again", self.server, self.error)
            self._closing.wait(self.reconnect_s)

    # ------------------------------------------------------------------ records
    def _handed_over(self, key: str, seq: int, end: float) -> None:
        st = self.handed.get(key)
        if st is None:
            st = self.handed[key] = {"seq": seq - 1, "end": 0.0, "checkpoints": [[seq - 1, 0.0]]}
        st["seq"] = seq
        st["end"] = max(st["end"], end)
        cps = st["checkpoints"]
        if st["end"] - cps[-1][1] >= self.checkpoint_s:
            cps.append([seq, st["end"]])
        while len(cps) > 1 and cps[1][1] < st["end"] - self.keep_s:
            cps.pop(0)

    def poll(self) -> list[Trace]:
        if self._thread is None:
            self._connect()
        with self._lock:
            got, self._pending = self._pending, []
        kept = []
        for key, seq, tr in got:
            if seq >= 0:
                self._handed_over(key, seq, float(tr.stats.endtime.timestamp))
            since = self.since.get(tr.id[:-1])
            if since is not None and tr.stats.endtime < since:
                continue  # delivered again after a restart, not needed
            kept.append(tr)
        return kept

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Per station: the last sequence number handed over and the checkpoints."""
        return {
            key: {"seq": st["seq"], "checkpoints": st["checkpoints"] + [[st["seq"], st["end"]]]}
            for key, st in self.handed.items()
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        for key, st in state.items():
            cps = [list(c) for c in st["checkpoints"]]
            self.handed[key] = {"seq": st["seq"], "end": cps[-1][1], "checkpoints": cps[:-1]}

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        """Resume each station after the last checkpoint whose records all end before the
        earliest time the picker needs of that station (after its last record when it needs
        nothing)."""
        self.since = dict(since)
        for key, st in self.handed.items():
            net, sta = key.split("_", 1)
            needs = [float(t.timestamp) for i, t in since.items() if i.split(".")[:2] == [net, sta]]
            if not needs:
                self.resume_from[key] = st["seq"]
                continue
            cps = st["checkpoints"] + [[st["seq"], st["end"]]]
            self.resume_from[key] = max(s for s, end in cps if end < min(needs) or s == cps[0][0])

    def close(self) -> None:
        self._closing.set()
        if self._client is None or self._thread is None:
            return
        conn = self._client.slconn
        conn.terminate()
        sock = conn.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass
        self._thread.join(timeout=10)


def merge_records(traces: list[Trace]) -> Stream:
    """Return ``traces`` as one stream (for tests and tools)."""
    stream = Stream(traces)
    stream.merge(-1)
    return stream


def wall_clock() -> float:
    """Return the wall-clock time (seconds since the epoch) used for delivery stamps."""
    return time.time()
