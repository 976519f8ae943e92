"""A small SeedLink v3 replay server on 127.0.0.1 (test infrastructure).

No SeedLink server is packaged on PyPI or Debian, so the SeedLink tests run this one. It speaks
the part of SeedLink v3 that ObsPy's client (``obspy.clients.seedlink``: ``SLClient``,
``EasySeedLinkClient``, ``SeedLinkConnection``) uses, with the answers that client parses:

- ``HELLO`` -> ``SeedLink v3.1 (2026.341 QuakeLake replay) :: SLPROTO:3.1\\r\\n<organisation>\\r\\n``
  (ObsPy reads the version after `` v``; >= 2.5 allows multi-station mode, >= 2.92 ``TIME``);
- ``STATION STA [NET]`` (multi-station mode; ``ERROR`` for a station it does not serve),
  ``SELECT [LL]CCC[.T]`` (``?`` wildcards; three characters: any location), then one action
  per station: ``DATA`` (new records only), ``DATA seq`` / ``FETCH seq`` (resume from the
  station's sequence number ``seq``, hex; one older than the ring starts at the ring's oldest
  record), ``TIME begin [end]`` (``YYYY,MM,DD,hh,mm,ss``), and ``END`` to start streaming;
  without ``STATION`` (uni-station mode) the action command itself starts the stream;
- ``FETCH`` and ``TIME`` with an end send ``END`` once everything asked for went out;
- ``INFO ID|STATIONS|STREAMS`` -> ``SLINFO`` packets (the XML in ASCII miniSEED records;
  ``*`` in the header's last byte while more follow), so ObsPy's keep-alive works;
- ``BYE`` closes the connection; anything else -> ``ERROR``.

Data packets are ``SL`` + the station's 6-hex-digit sequence number + one 512-byte miniSEED
record, as SeedLink sends them. Sequence numbers count per station from 1 (SeedLink keeps one
ring per station); each station keeps its last ``ring`` records (older ones are gone, as from
a real server's ring buffer).

Records are *released* into the rings in the order of their end times, like
``tests/replay.SDSReplay``: ``release_until(t)`` releases every record that ends by data time
``t``; ``play(speed)`` does it in a thread at ``speed`` x real time. Connected clients get each
record as soon as it is released. The records must be 512 bytes long (SeedLink's record
size): :func:`repack_512` rewrites miniSEED files with 512-byte records (the same samples).
"""

from __future__ import annotations

import fnmatch
import io
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import obspy
from obspy import Trace, UTCDateTime

from quakelake.archive.sds import Record, parse_records

RECLEN = 512


def repack_512(files: list[Path], out_dir: Path) -> list[Path]:
    """Write each miniSEED file again with 512-byte records into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for path in files:
        stream = obspy.read(str(path))
        target = out_dir / Path(path).name
        stream.write(str(target), format="MSEED", reclen=RECLEN)
        out.append(target)
    return out


def _info_packets(xml: str) -> list[bytes]:
    """Return ``xml`` as SLINFO packets (ASCII miniSEED records; ``*``: more follow)."""
    payload = xml.encode()
    chunk = RECLEN - 64  # header 48 + blockette 1000 (8) fits in the first 64 bytes
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
    packets = []
    for i, piece in enumerate(pieces):
        tr = Trace(np.frombuffer(piece.ljust(1, b" "), dtype="S1"))
        tr.stats.network, tr.stats.station, tr.stats.channel = "XX", "INFO", "LOG"
        buf = io.BytesIO()
        tr.write(buf, format="MSEED", reclen=RECLEN, encoding="ASCII")
        record = buf.getvalue()[:RECLEN]
        more = i < len(pieces) - 1
        packets.append(b"SLINFO " + (b"*" if more else b" ") + record)
    return packets


@dataclass
class _Entry:
    order: int  # release order over all stations
    station: str  # NET_STA
    seq: int
    location: str
    channel: str
    start: UTCDateTime
    end: UTCDateTime
    data: bytes


def _selected(entry: _Entry, selectors: list[str]) -> bool:
    if not selectors:
        return True
    for sel in selectors:
        sel = sel.split(".")[0]
        loc, cha = ("*", sel) if len(sel) <= 3 else (sel[:-3], sel[-3:])
        loc = loc.replace("-", " ").strip() if loc != "*" else "*"
        if fnmatch.fnmatchcase(entry.channel, cha) and (
            loc == "*" or fnmatch.fnmatchcase(entry.location, loc)
        ):
            return True
    return False


class _Request:
    """What one client asked for one station."""

    def __init__(self, station: str) -> None:
        self.station = station
        self.selectors: list[str] = []
        self.from_seq: int | None = None  # None: only records released from now on
        self.begin: UTCDateTime | None = None
        self.end: UTCDateTime | None = None
        self.dialup = False
        self.after_order = -1  # DATA without seq: records released after this one


class SeedLinkReplayServer:
    """Serve ``files`` (512-byte records) over SeedLink v3 on 127.0.0.1.

    Args:
        files: miniSEED files with 512-byte records (see :func:`repack_512`).
        ring: records each station keeps (its ring buffer).
        port: TCP port (0: a free one).
    """

    def __init__(self, files: list[Path], ring: int = 100_000, port: int = 0) -> None:
        self.records: list[Record] = []
        for path in files:
            recs, why = parse_records(Path(path).read_bytes())
            assert not why, f"{path}: {why}"
            for rec in recs:
                assert len(rec.data) == RECLEN, f"{path}: a {len(rec.data)}-byte record"
            self.records.extend(recs)
        self.records.sort(key=lambda r: (r.end, r.key))
        self.position = 0
        self.ring = ring
        self.rings: dict[str, deque[_Entry]] = {}
        self.next_seq: dict[str, int] = {}
        self.order = 0
        self.cond = threading.Condition()
        self.stations = sorted({f"{r.key[0]}_{r.key[1]}" for r in self.records})
        self.connections = 0
        self.sent = 0
        self.log: list[tuple[int, str]] = []  # (connection, command line) as received
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True, name="seedlink-server")
        self._accept.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def start(self) -> UTCDateTime:
        return min(r.start for r in self.records)

    @property
    def end(self) -> UTCDateTime:
        return max(r.end for r in self.records)

    # ------------------------------------------------------------------ releasing records
    def release_until(self, t: UTCDateTime) -> int:
        """Release every record that ends by data time ``t``; return how many."""
        n = 0
        with self.cond:
            while self.position < len(self.records) and self.records[self.position].end <= t:
                rec = self.records[self.position]
                self.position += 1
                net, sta, loc, cha = rec.key
                key = f"{net}_{sta}"
                seq = self.next_seq.get(key, 1)
                self.next_seq[key] = seq + 1
                ring = self.rings.setdefault(key, deque(maxlen=self.ring))
                self.order += 1
                ring.append(_Entry(self.order, key, seq, loc, cha, rec.start, rec.end, rec.data))
                n += 1
            if n:
                self.cond.notify_all()
        return n

    def play(self, speed: float = 1.0, stop: threading.Event | None = None) -> threading.Thread:
        """Release the records in a thread at ``speed`` x real time."""
        stop = stop or threading.Event()
        t_data0, t_wall0 = self.start, time.time()

        def run() -> None:
            while not stop.is_set() and self.position < len(self.records):
                self.release_until(t_data0 + (time.time() - t_wall0) * speed)
                time.sleep(0.05)

        th = threading.Thread(target=run, daemon=True, name="seedlink-play")
        th.start()
        return th

    def close(self) -> None:
        self._stop.set()
        with self.cond:
            self.cond.notify_all()
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self._accept.join(timeout=5)

    def __enter__(self) -> SeedLinkReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connections
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._clients.append(conn)
            threading.Thread(
                target=self._handle,
                args=(conn, self.connections),
                daemon=True,
                name="seedlink-conn",
            ).start()

    def _info(self, level: str) -> str:
        head = '<?xml version="1.0"?>\n<seedlink software="SeedLink v3.1 QuakeLake replay"'
        if level == "ID":
            return head + ' organization="QuakeLake tests"/>'
        lines = [head + ">"]
        with self.cond:
            for key in self.stations:
                net, sta = key.split("_")
                ring = self.rings.get(key, deque())
                begin = ring[0].seq if ring else 0
                end = ring[-1].seq + 1 if ring else 0
                lines.append(
                    f'<station name="{sta}" network="{net}" description="replay" '
                    f'begin_seq="{begin:06X}" end_seq="{end:06X}"'
                    + (">" if level == "STREAMS" else "/>")
                )
                if level == "STREAMS":
                    for loc, cha in sorted({(e.location, e.channel) for e in ring}):
                        lines.append(f'<stream location="{loc}" seedname="{cha}" type="D"/>')
                    lines.append("</station>")
        lines.append("</seedlink>")
        return "\n".join(lines)

    def _handle(self, conn: socket.socket, number: int) -> None:
        requests: dict[str, _Request] = {}
        current: _Request | None = None
        multi = False
        streaming = False
        buf = b""
        cursor: dict[str, int] = {}  # station -> next sequence number to send
        try:
            while not self._stop.is_set():
                if streaming:
                    if self._stream(conn, requests, cursor):
                        conn.sendall(b"END")
                        streaming = False
                ready, _, _ = select.select([conn], [], [], 0.05 if streaming else 0.5)
                if not ready:
                    if streaming:
                        with self.cond:
                            self.cond.wait(0.2)
                    continue
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while re.search(rb"[\r\n]", buf):
                    line, buf = re.split(rb"\r\n|\r|\n", buf, maxsplit=1)
                    text = line.decode(errors="replace")
                    self.log.append((number, text))
                    words = text.split()
                    if not words:
                        continue
                    cmd, args = words[0].upper(), words[1:]
                    reply: bytes | None = b"OK\r\n"
                    if cmd == "HELLO":
                        reply = (
                            b"SeedLink v3.1 (2026.341 QuakeLake replay) :: SLPROTO:3.1\r\n"
                            b"QuakeLake test replay\r\n"
                        )
                    elif cmd == "BYE":
                        return
                    elif cmd == "INFO":
                        level = args[0].upper() if args else "ID"
                        for packet in _info_packets(self._info(level)):
                            conn.sendall(packet)
                        reply = None
                    elif cmd == "STATION" and args:
                        sta = args[0]
                        net = args[1] if len(args) > 1 else ""
                        key = next(
                            (
                                k
                                for k in self.stations
                                if k.split("_")[1] == sta and (not net or k.split("_")[0] == net)
                            ),
                            None,
                        )
                        multi = True
                        if key is None:
                            current, reply = None, b"ERROR\r\n"
                        else:
                            current = requests.setdefault(key, _Request(key))
                    elif cmd == "SELECT":
                        target = current if multi else requests.setdefault("*", _Request("*"))
                        if target is None or not args or len(args[0]) > 8:
                            reply = b"ERROR\r\n"
                        else:
                            target.selectors.append(args[0])
                    elif cmd in ("DATA", "FETCH", "TIME"):
                        target = current if multi else requests.setdefault("*", _Request("*"))
                        if target is None or not self._action(target, cmd, args):
                            reply = b"ERROR\r\n"
                        elif not multi:
                            streaming = True
                            reply = None  # uni-station: the data follow
                            conn.sendall(b"OK\r\n")
                    elif cmd == "END":
                        streaming = True
                        reply = None
                    else:
                        reply = b"ERROR\r\n"
                    if reply is not None:
                        conn.sendall(reply)
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if conn in self._clients:
                self._clients.remove(conn)

    def _action(self, req: _Request, cmd: str, args: list[str]) -> bool:
        try:
            if cmd == "TIME":
                if not args:
                    return False
                req.begin = UTCDateTime(*[int(x) for x in args[0].split(",")])
                if len(args) > 1:
                    req.end = UTCDateTime(*[int(x) for x in args[1].split(",")])
                req.from_seq = 0
            elif args:
                req.from_seq = int(args[0], 16)
                req.dialup = cmd == "FETCH"
            else:
                req.dialup = cmd == "FETCH"
                req.from_seq = 0 if req.dialup else None
                with self.cond:
                    req.after_order = self.order
        except ValueError:
            return False
        return True

    def _stream(
        self, conn: socket.socket, requests: dict[str, _Request], cursor: dict[str, int]
    ) -> bool:
        """Send every released record the client asked for and has not had; return True when
        every request is complete (FETCH, TIME with an end)."""
        pending: list[_Entry] = []
        complete = True
        with self.cond:
            for key, ring in self.rings.items():
                req = requests.get(key) or requests.get("*")
                if req is None or not ring:
                    continue
                nxt = cursor.get(key)
                if nxt is None and req.from_seq is None:  # DATA: what is released from now on
                    later = [e.seq for e in ring if e.order > req.after_order]
                    nxt = later[0] if later else ring[-1].seq + 1
                elif nxt is None:
                    nxt = req.from_seq or 0
                nxt = max(nxt, ring[0].seq)  # older than the ring: its oldest record
                for i in range(nxt - ring[0].seq, len(ring)):
                    e = ring[i]
                    if req.end is not None and e.start > req.end:
                        break
                    if (req.begin is None or e.end >= req.begin) and _selected(e, req.selectors):
                        pending.append(e)
                cursor[key] = ring[-1].seq + 1
            everything = self.position >= len(self.records)
            for key, req in requests.items():
                if req.dialup:  # FETCH: what the ring holds now, then END
                    continue
                if req.end is not None and (everything or self._past(key, req.end)):
                    continue
                complete = False
        pending.sort(key=lambda e: e.order)
        for e in pending:
            conn.sendall(b"SL%06X" % (e.seq & 0xFFFFFF) + e.data)
            self.sent += 1
        return complete and bool(requests)

    def _past(self, key: str, end: UTCDateTime) -> bool:
        ring = self.rings.get(key)
        return bool(ring) and ring[-1].end >= end
