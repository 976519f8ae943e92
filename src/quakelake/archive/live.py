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

import io
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import obspy
from obspy import Stream, Trace, UTCDateTime

from quakelake.archive.sds import parse_records
from quakelake.params import StationSelection

log = logging.getLogger(__name__)

__all__ = ["FDSNPoller", "LiveSource", "SDSFollower", "SeedLinkSource", "whole_records"]


class LiveSource:
    """What the monitor needs of a source."""

    name = "source"

    def poll(self) -> list[Trace]:  # pragma: no cover - interface
        raise NotImplementedError

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        """Deliver again, from ``since[seed_id]`` on, what the monitor still needs."""

    def close(self) -> None:
        """Release connections and threads."""


def whole_records(buf: bytes) -> int:
    """Return how many leading bytes of ``buf`` are whole miniSEED records (a record being
    written is left for the next poll)."""
    records, _ = parse_records(buf)
    return sum(len(r.data) for r in records)


def _decode(data: bytes, selection: StationSelection | None) -> list[Trace]:
    if not data:
        return []
    try:
        stream = obspy.read(io.BytesIO(data), format="MSEED")
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
    """

    root: Path
    selection: StationSelection | None = None
    from_start: bool = True
    name: str = "sds"
    offsets: dict[str, int] = field(default_factory=dict)
    since: dict[str, UTCDateTime] = field(default_factory=dict)
    _first: bool = True

    def _files(self) -> Iterable[tuple[str, int]]:
        for year in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not year.is_dir() or not year.name.isdigit():
                continue
            for dirpath, _dirs, files in os.walk(year.path):
                for name in files:
                    if name.count(".") < 6 or ".D." not in name:
                        continue
                    net, sta, loc, cha = name.split(".")[:4]
                    if self.selection is not None and not self.selection.matches(
                        net, sta, loc, cha
                    ):
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
    """

    url: str
    selection: StationSelection
    window_s: float = 120.0
    start: UTCDateTime | None = None
    clock: object = None
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
        except FDSNNoDataException:
            return []
        out = []
        for tr in stream:
            s = tr.stats
            if not sel.matches(s.network, s.station, s.location, s.channel):
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

    Records are collected by a background thread; :meth:`poll` hands over what arrived. The
    last sequence number per station is kept (``sequences``) so a restart asks the server to
    resume from it (the server keeps a ring buffer; a sequence it no longer holds starts at
    the oldest it has).
    """

    name = "seedlink"

    def __init__(
        self,
        server: str,
        streams: list[tuple[str, str, str]],
        start: UTCDateTime | None = None,
        sequences: dict[str, int] | None = None,
    ) -> None:
        from obspy.clients.seedlink.slclient import SLClient

        self.server = server
        self.streams = streams
        self.sequences: dict[str, int] = dict(sequences or {})
        self.since: dict[str, UTCDateTime] = {}
        self._lock = threading.Lock()
        self._pending: list[Trace] = []
        self._error: str = ""
        outer = self

        class _Client(SLClient):
            def packet_handler(self, count, slpack):  # noqa: D401 - ObsPy's hook
                from obspy.clients.seedlink.slpacket import SLPacket

                if slpack is None or slpack == SLPacket.SLNOPACKET or slpack == SLPacket.SLERROR:
                    return False
                kind = slpack.get_type()
                if kind == SLPacket.TYPE_SLINF:
                    return False
                try:
                    trace = slpack.get_trace()
                except Exception:  # a record ObsPy cannot decode: skipped
                    return False
                seq = slpack.get_sequence_number()
                key = f"{trace.stats.network}_{trace.stats.station}"
                with outer._lock:
                    outer._pending.append(trace)
                    if seq >= 0:
                        outer.sequences[key] = seq
                return False

        self._client = _Client(loglevel="CRITICAL")
        self._client.slconn.set_sl_address(server)
        selectors = {}
        for net, sta, sel in streams:
            selectors.setdefault(f"{net}_{sta}", []).append(sel)
        self._client.multiselect = ",".join(
            f"{k}:{' '.join(v)}" if any(v) else k for k, v in selectors.items()
        )
        self._client.begin_time = start.format_seedlink() if start is not None else None
        self._client.initialize()
        for key, seq in self.sequences.items():  # resume each station after its last record
            for stream in self._client.slconn.streams:
                if f"{stream.net}_{stream.station}" == key:
                    stream.seqnum = seq
        self._thread = threading.Thread(target=self._run, daemon=True, name="seedlink")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._client.run()
        except Exception as exc:  # the connection's end is reported at the next poll
            self._error = f"{type(exc).__name__}: {exc}"

    def poll(self) -> list[Trace]:
        with self._lock:
            out, self._pending = self._pending, []
        kept = []
        for tr in out:
            since = self.since.get(tr.id[:-1])
            if since is not None and tr.stats.endtime < since:
                continue
            kept.append(tr)
        return kept

    def resume(self, since: dict[str, UTCDateTime]) -> None:
        self.since = dict(since)

    def close(self) -> None:
        try:
            self._client.slconn.terminate()
        except Exception:  # already closed
            pass
        self._thread.join(timeout=5)


def merge_records(traces: list[Trace]) -> Stream:
    """Return ``traces`` as one stream (for tests and tools)."""
    stream = Stream(traces)
    stream.merge(-1)
    return stream


def wall_clock() -> float:
    """Return the wall-clock time (seconds since the epoch) used for delivery stamps."""
    return time.time()
