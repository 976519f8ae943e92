"""Replay real recordings as a live source would deliver them (test infrastructure).

:class:`SDSReplay` cuts real miniSEED files into their records (byte for byte) and appends
them, in the order of their end times, to the files of an SDS archive, as ``slarchive`` or
SeisComP's ``scart`` would: ``write_until(t)`` delivers every record that ends by data time
``t``; ``play(speed)`` does it in a thread at ``speed`` x real time. Records can be held back
(late delivery) or dropped (a station that stops).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from obspy import UTCDateTime

from quakelake.archive.sds import Record, parse_records, sds_path


@dataclass
class SDSReplay:
    files: list[Path]
    archive: Path
    records: list[Record] = field(default_factory=list)
    position: int = 0
    late: dict[int, float] = field(default_factory=dict)  # record index -> seconds held back

    def __post_init__(self) -> None:
        for path in self.files:
            recs, why = parse_records(Path(path).read_bytes())
            assert not why, f"{path}: {why}"
            self.records.extend(recs)
        self.records.sort(key=lambda r: (r.end, r.key))

    @property
    def start(self) -> UTCDateTime:
        return min(r.start for r in self.records)

    @property
    def end(self) -> UTCDateTime:
        return max(r.end for r in self.records)

    def _append(self, rec: Record) -> None:
        net, sta, loc, cha = rec.key
        day = rec.start.datetime.date()
        path = sds_path(self.archive, net, sta, loc, cha, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(rec.data)

    def write_until(self, t: UTCDateTime, skip: set[str] | None = None) -> int:
        """Append every record that ends by ``t`` (held-back ones ``late`` seconds later)."""
        n = 0
        while self.position < len(self.records) and self.records[self.position].end <= t:
            i = self.position
            rec = self.records[i]
            self.position += 1
            if i in self.late:
                self.late[i] = float(rec.end + self.late[i])  # due time
                continue
            if skip and ".".join(rec.key[:2]) in skip:
                continue
            self._append(rec)
            n += 1
        for i, due in list(self.late.items()):
            if due > 1e9 and due <= float(t):
                self._append(self.records[i])
                del self.late[i]
                n += 1
        return n

    def play(self, speed: float = 1.0, stop: threading.Event | None = None) -> threading.Thread:
        """Deliver the records in a thread at ``speed`` x real time."""
        stop = stop or threading.Event()
        t_data0 = self.start
        t_wall0 = time.time()

        def run() -> None:
            while not stop.is_set() and self.position < len(self.records):
                now = t_data0 + (time.time() - t_wall0) * speed
                self.write_until(now)
                time.sleep(0.05)
            self.write_until(self.end + 3600)

        th = threading.Thread(target=run, daemon=True, name="sds-replay")
        th.start()
        return th
