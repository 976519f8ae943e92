"""Whole-record detection of the SDS follower on real records (tests/data/saltonsea), fast lane.

``whole_records`` reads record lengths from the headers' blockette 1000: for every cut point,
both byte orders and mixed record lengths it must give the end of the last whole record (the
record boundaries of the uncut buffer, as ObsPy parses them). ObsPy's own parser, asked about
a cut buffer, can take a cut record for a whole one (``mixed lengths``, cut at 38911: it says
a record of 3840 bytes where 4096 were written), which is why the follower does not ask it.
"""

from __future__ import annotations

import io
from pathlib import Path

import obspy
import pytest

from quakelake.archive.live import whole_records
from quakelake.archive.sds import parse_records

MSEED = Path(__file__).parent / "data" / "saltonsea" / "mseed"


def _obspy_whole(buf: bytes) -> int:
    records, _ = parse_records(buf)
    return sum(len(r.data) for r in records)


@pytest.fixture(scope="module")
def buffers() -> dict[str, bytes]:
    files = sorted(MSEED.glob("*.mseed"))
    if not files:
        pytest.skip(f"{MSEED} holds no miniSEED")
    st = obspy.read(str(files[0]))
    out = {"as recorded": files[0].read_bytes()}
    for name, kwargs in (
        ("little-endian 512", {"reclen": 512, "byteorder": "<"}),
        ("big-endian 256", {"reclen": 256, "byteorder": ">"}),
    ):
        b = io.BytesIO()
        st.write(b, format="MSEED", **kwargs)
        out[name] = b.getvalue()
    out["mixed lengths"] = out["big-endian 256"][:2048] + out["as recorded"]
    return out


def test_whole_records_ends_at_the_last_whole_record_at_every_cut(buffers):
    for name, buf in buffers.items():
        records, problem = parse_records(buf)  # the uncut buffer: every record whole
        assert not problem and sum(len(r.data) for r in records) == len(buf)
        ends = [0]
        for r in records:
            ends.append(ends[-1] + len(r.data))
        cuts = sorted({0, 1, 47, 48, 100, 255, 256, 257, 511, 512, 513, len(buf) - 1, len(buf)})
        cuts += list(range(0, len(buf), 997)) + [38911]
        for cut in cuts:
            expected = max(e for e in ends if e <= cut)
            assert whole_records(buf[:cut]) == expected, (name, cut)


def test_a_damaged_header_stops_at_the_record_before(buffers):
    buf = bytearray(buffers["big-endian 256"])
    buf[256 * 3 + 20 : 256 * 3 + 24] = b"\xff\xff\xff\xff"  # year and day of record 4
    assert whole_records(bytes(buf)) == _obspy_whole(bytes(buf)) == 256 * 3
