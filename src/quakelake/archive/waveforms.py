"""Waveform archives: index any folder of miniSEED/SAC files and read it back by station-day.

An archive is any folder tree: an SDS tree (``YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY``),
the flat folders FDSN clients write, or one multi-station file. Files are recognised by their
content, not their name (SDS files have no extension), and only headers are read while scanning.

The unit of work downstream is the *station-day*: every file of one station with data inside a
UTC day (plus a small pad on both sides so that picks at midnight are not lost).

Example:
    >>> scan = scan_archive(Path("archive"))                       # doctest: +SKIP
    >>> for unit in station_days(scan.index):                       # doctest: +SKIP
    ...     instruments, failures = read_station_day(unit)

Component names: the picker expects ``Z``, ``N`` and ``E``. :data:`COMPONENT_MAP` renames the
last channel letter: ``Z``, ``N``, ``E`` keep their names, ``U`` (up) becomes ``Z``, ``1``
becomes ``N`` and ``2`` becomes ``E`` (borehole and ocean-bottom sensors whose horizontals are
not oriented north/east; the picker only needs two orthogonal horizontals). When both the
canonical and the numbered letter exist (``HHN`` and ``HH1``) the canonical one is kept. Other
letters (``V``, ``W``, ``3``, ``R``, ``T`` ...) are left out and noted on the instrument.

Sampling rates: instruments of one station may have different rates (the picker resamples).
Within one channel id a station-day keeps the *dominant* rate (the one with the most samples);
segments at any other rate are left out and reported as :class:`FileFailure` naming the file
and both rates. Rates that differ by less than 1e-5 (relative) are treated as equal.

Gaps and overlaps: a gap splits a channel into several contiguous traces (never a masked array,
never filled). Non-finite samples (NaN, inf in float data) are gaps too: the channel is split
around them, so picks away from them are those of the clean trace. Where segments overlap
(chunks sharing a boundary sample, the same file twice in an archive, one segment inside
another) the segment that starts later wins (ties: the file listed later), sample by sample.
Overlapping samples whose values differ are counted, not hidden: :func:`quality_notes` reports
per channel the segments kept, the non-finite, overlapping and conflicting samples, and per
instrument its components (``Z`` alone for a single-component station); the pick stage stores
it in the ledger. Keep one copy of each channel in an archive (SAC copies are often scaled to
physical units while miniSEED holds counts).

Failures: a :class:`FileFailure` names a file whose data were not used (unreadable, truncated,
empty, not a waveform) or, for sampling-rate conflicts, the part of a file that was left out.
A miniSEED file with a cut or damaged record is read up to and after it (its whole records)
and the failure says how much was left out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import re
import struct
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import obspy
import pandas as pd
from obspy import Stream, Trace, UTCDateTime

from quakelake import ids
from quakelake.errors import BadInput
from quakelake.lakehouse.schema import WAVEFORM_INDEX
from quakelake.params import StationSelection, TimeWindow

#: Last channel letter -> component name the pickers expect.
COMPONENT_MAP: dict[str, str] = {"Z": "Z", "N": "N", "E": "E", "U": "Z", "1": "N", "2": "E"}

#: File name endings that claim to hold waveforms: such a file that cannot be read is a failure.
WAVEFORM_SUFFIXES = frozenset({".mseed", ".miniseed", ".ms", ".msd", ".seed", ".mseed3", ".sac"})

_SDS_NAME = re.compile(
    r"^(?P<network>[^.]*)\.(?P<station>[^.]*)\.(?P<location>[^.]*)\.(?P<channel>[^.]*)"
    r"\.(?P<type>[A-Z])\.(?P<year>\d{4})\.(?P<doy>\d{3})$"
)
_IGNORED_SUFFIXES = (".tmp",)
# where a miniSEED 2 record header may start: sequence number, quality code, reserved byte
_RECORD_START = re.compile(rb"(?=[0-9 \x00]{6}[DRQM][ \x00])")
_INDEX_COLUMNS = WAVEFORM_INDEX.schema.names
_RATE_TOLERANCE = 1e-5
_EPOCH = dt.date(1970, 1, 1)


class ArchiveNotFound(BadInput, FileNotFoundError):
    """The waveform archive folder does not exist."""


@dataclass(frozen=True)
class FileFailure:
    """A file (or part of one) whose data could not be used, and why."""

    path: str
    reason: str


@dataclass
class ArchiveScan:
    """The result of scanning an archive.

    Attributes:
        index: one row per trace segment, exactly the columns of the ``waveform_index`` lake
            table (``start``/``end`` are the UTC times of the first and last sample).
        failures: files that look like waveforms but could not be read; the scan went on.
        skipped: files that are not waveforms and do not claim to be (StationXML, CSV, notes).
    """

    index: pd.DataFrame
    failures: list[FileFailure]
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Segment:
    """One indexed trace segment (a `waveform_index` row): what a station-day is computed from."""

    path: str
    location: str
    channel: str
    start: str  # ISO UTC time of the first sample
    end: str  # ISO UTC time of the last sample
    npts: int
    file_size: int
    file_mtime: float


@dataclass(frozen=True)
class StationDay:
    """One unit of picking work: a station, a UTC day and the files holding its data."""

    network: str
    station: str
    day: dt.date
    paths: tuple[str, ...]
    segments: tuple[Segment, ...] = ()

    @property
    def key(self) -> str:
        """Return ``NET.STA.YYYY-MM-DD``, the unit's name in the ledger and in file names."""
        return ids.unit_key(self.network, self.station, self.day.isoformat())

    def instrument_segments(self) -> dict[tuple[str, str], tuple[Segment, ...]]:
        """Return the unit's indexed segments grouped by instrument ``(location, band)``.

        What an instrument's picks are computed from: a segment that appears, grows, shrinks or
        is replaced (new size or modification time) changes its instrument's inputs.
        """
        out: dict[tuple[str, str], list[Segment]] = defaultdict(list)
        for seg in self.segments:
            out[(seg.location, seg.channel[:-1])].append(seg)
        return {key: tuple(out[key]) for key in sorted(out)}


@dataclass
class InstrumentStream:
    """The continuous data of one instrument (location + band) of a station for one day.

    Attributes:
        network, station, location: SEED codes.
        band: first two channel letters (``HH``, ``EH``, ``HN`` ...).
        stream: components renamed to ``<band>Z``/``<band>N``/``<band>E`` (see
            :data:`COMPONENT_MAP`), contiguous traces (a gap splits a trace, no masked arrays),
            overlaps resolved, one sampling rate per channel, sorted by channel and start.
        notes: channels left out of this instrument and why (unknown or duplicate components).
        quality: per original channel code, what reading found (:class:`ChannelQuality`:
            segments, non-finite samples, overlapping and conflicting samples).
    """

    network: str
    station: str
    location: str
    band: str
    stream: Stream
    notes: list[str] = field(default_factory=list)
    quality: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def components(self) -> str:
        """Return the component letters present, in ``ZNE`` order (e.g. ``"ZNE"`` or ``"Z"``)."""
        present = {tr.stats.channel[-1:] for tr in self.stream}
        return "".join(c for c in "ZNE" if c in present)


# --------------------------------------------------------------------------- archive identity


def archive_key(root: Path) -> str:
    """Return a short stable id of an archive folder: 16 hex digits of the resolved path's hash.

    Used as the ``archive=`` partition of the ``waveform_index`` table, so that several
    archives can be indexed in one lake and re-indexing one replaces only its own files.
    """
    resolved = str(Path(root).expanduser().resolve())
    return hashlib.sha256(resolved.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- format detection


@dataclass(frozen=True)
class _Sniff:
    format: str | None  # "MSEED", "SAC" or None
    record_length: int | None = None  # miniSEED: length of the first record (blockette 1000)
    problem: str | None = None  # why the file cannot be used, when known from its first bytes


def _mseed_header(buf: bytes, offset: int = 0) -> tuple[str, int | None] | None:
    """Return (byte order, record length or None) of a miniSEED 2 record at ``offset``, or None."""
    head = buf[offset : offset + 48]
    if len(head) < 48:
        return None
    seq, quality, reserved = head[0:6], head[6:7], head[7:8]
    if not all(c in b"0123456789 \x00" for c in seq):
        return None
    if quality not in (b"D", b"R", b"Q", b"M") or reserved not in (b" ", b"\x00"):
        return None
    for order in (">", "<"):
        year, doy, hour, minute, sec = struct.unpack(order + "HHBBB", head[20:27])
        if 1900 <= year <= 2100 and 1 <= doy <= 366 and hour < 24 and minute < 60 and sec <= 60:
            break
    else:
        return None
    next_blockette = struct.unpack(order + "H", head[46:48])[0]
    for _ in range(16):  # follow the blockette chain to blockette 1000 (record length)
        if next_blockette < 48 or offset + next_blockette + 8 > len(buf):
            break
        btype, nxt = struct.unpack(
            order + "HH", buf[offset + next_blockette : offset + next_blockette + 4]
        )
        if btype == 1000:
            exponent = buf[offset + next_blockette + 6]
            return order, (2**exponent if 7 <= exponent <= 20 else None)
        if nxt == 0 or nxt <= next_blockette:
            break
        next_blockette = nxt
    return order, None


def _sac_expected_size(head: bytes) -> int | None:
    """Return the file size a SAC header announces, or None when ``head`` is not a SAC header."""
    if len(head) < 632:
        return None
    for order in ("<", ">"):
        nvhdr = struct.unpack(order + "i", head[304:308])[0]
        if nvhdr in (6, 7):
            break
    else:
        return None
    delta = struct.unpack(order + "f", head[0:4])[0]
    npts = struct.unpack(order + "i", head[316:320])[0]
    iftype = struct.unpack(order + "i", head[340:344])[0]
    leven = struct.unpack(order + "i", head[420:424])[0]
    if not (np.isfinite(delta) and delta > 0 and npts >= 0):
        return None
    components = 1 if (iftype == 1 and leven == 1) else 2
    footer = 22 * 8 if nvhdr == 7 else 0
    return 632 + 4 * npts * components + footer


def _sniff(path: Path, size: int) -> _Sniff:
    """Return the format of ``path`` judged from its first bytes (and its size)."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head[:3] == b"MS\x03":
        return _Sniff(
            None, problem="miniSEED 3 is not supported by ObsPy; convert it to miniSEED 2"
        )
    mseed = _mseed_header(head)
    if mseed is not None:
        return _Sniff("MSEED", record_length=mseed[1])
    expected = _sac_expected_size(head)
    if expected is not None:
        if size < expected:
            return _Sniff(
                "SAC",
                problem=f"truncated SAC file: its header announces {expected} bytes but the file "
                f"has {size}; re-download or re-copy it",
            )
        return _Sniff("SAC")
    return _Sniff(None)


def _mseed_records(
    path: Path, size: int, record_length: int | None
) -> tuple[list[tuple[int, int]] | None, str | None]:
    """Return the whole records of a miniSEED file and why the rest cannot be read.

    Fast path: a file whose size is a multiple of its first record's length is accepted whole
    (``(None, None)``). Other files (mixed record lengths, or cut) are searched for every
    record header: a record is whole when the next header does not start inside it. A record
    cut short (the next one follows right behind it) or damaged bytes cost that record, not
    the file.

    Returns:
        (``(offset, length)`` of every whole record, or None when the file is whole; the problem
        found, or None).
    """
    if record_length is None or size % record_length == 0:
        return None, None
    buf = path.read_bytes()
    starts = []
    for match in _RECORD_START.finditer(buf):
        header = _mseed_header(buf, match.start())
        if header is not None:
            starts.append((match.start(), header[1] or record_length))
    spans: list[tuple[int, int]] = []
    problems: list[str] = []
    cursor = 0
    for i, (offset, reclen) in enumerate(starts):
        if offset < cursor:
            continue  # header-like bytes inside a whole record
        if offset > cursor:
            problems.append(f"{offset - cursor} bytes at byte {cursor} are not a miniSEED record")
        following = next((o for o, _ in starts[i + 1 :] if o > offset), size)
        if offset + reclen <= following:
            spans.append((offset, reclen))
            cursor = offset + reclen
        else:
            problems.append(
                f"truncated miniSEED record (the record at byte {offset} needs {reclen} bytes, "
                f"{following - offset} are there)"
            )
            cursor = following
    if cursor < size:
        problems.append(f"{size - cursor} bytes at byte {cursor} are not a miniSEED record")
    if not problems:
        return spans, None
    lost = size - sum(n for _, n in spans)
    problem = (
        "; ".join(problems[:3])
        + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        + f"; file size {size}: {len(spans)} whole records read, {lost} bytes left out; "
        "re-download or re-copy it"
    )
    return spans, problem


def _claims_waveform(path: Path) -> bool:
    """Return True when the name says the file holds waveforms (extension or SDS name)."""
    name = path.name
    return path.suffix.lower() in WAVEFORM_SUFFIXES or bool(_SDS_NAME.match(name))


def _inspect(path: Path, size: int) -> tuple[_Sniff, FileFailure | None, bytes | None]:
    """Return the sniffed format, why the file is (partly) unusable, and its readable part.

    The third value is None when the file reads whole (or not at all); for a miniSEED file with
    a cut or damaged record it holds the whole records, and the failure says what was left out.
    """
    if size == 0:
        return _Sniff(None), FileFailure(str(path), "empty file (0 bytes)"), None
    sniff = _sniff(path, size)
    if sniff.problem:
        return sniff, FileFailure(str(path), sniff.problem), None
    if sniff.format is None:
        with open(path, "rb") as fh:
            start = fh.read(24)
        return (
            sniff,
            FileFailure(
                str(path),
                f"not a waveform file: content is neither miniSEED nor SAC (starts {start!r})",
            ),
            None,
        )
    if sniff.format == "MSEED":
        spans, problem = _mseed_records(path, size, sniff.record_length)
        if problem:
            if not spans:
                return sniff, FileFailure(str(path), problem), None
            buf = path.read_bytes()
            readable = b"".join(buf[o : o + n] for o, n in spans)
            return sniff, FileFailure(str(path), problem), readable
    return sniff, None, None


# --------------------------------------------------------------------------- scanning


def _iter_files(root: Path) -> Iterable[Path]:
    """Yield the files under ``root`` in sorted order, without hidden entries and ``*.tmp``."""
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.lower().endswith(_IGNORED_SUFFIXES):
                continue
            yield Path(folder) / name


def _timestamp(t: UTCDateTime) -> pd.Timestamp:
    return pd.Timestamp(int(round(t.ns / 1000)), unit="us", tz="UTC")


def _empty_index() -> pd.DataFrame:
    return _as_index(pd.DataFrame({name: [] for name in _INDEX_COLUMNS}))


def _as_index(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the index columns and dtypes (times UTC, microseconds)."""
    out = pd.DataFrame(index=range(len(df)))
    for name in ("path", "format", "network", "station", "location", "channel"):
        out[name] = df[name].astype(object).to_numpy() if len(df) else np.array([], dtype=object)
    for name in ("start", "end"):
        out[name] = pd.to_datetime(df[name].to_numpy(), utc=True).as_unit("us")
    out["sampling_rate"] = df["sampling_rate"].astype("float64").to_numpy()
    out["npts"] = df["npts"].astype("int64").to_numpy()
    out["file_size"] = df["file_size"].astype("int64").to_numpy()
    out["file_mtime"] = df["file_mtime"].astype("float64").to_numpy()
    return out[_INDEX_COLUMNS]


def _selected(df: pd.DataFrame, selection: StationSelection) -> np.ndarray:
    """Return a boolean mask of the rows of ``df`` whose channel id matches ``selection``."""
    ids = zip(df["network"], df["station"], df["location"], df["channel"], strict=True)
    return np.array([selection.matches(*cid) for cid in ids], dtype=bool)


def _scan_file(
    path: Path, size: int, mtime: float, selection: StationSelection
) -> tuple[list[dict], FileFailure | None, bool]:
    """Return (rows, failure, skipped) for one file; headers only."""
    sniff, failure, readable = _inspect(path, size)
    if failure is not None and readable is None:
        if sniff.format is None and not sniff.problem and not _claims_waveform(path):
            return [], None, True  # a note, a CSV, a StationXML next to the waveforms
        return [], failure, False
    source = io.BytesIO(readable) if readable is not None else str(path)
    try:
        stream = obspy.read(source, format=sniff.format, headonly=True)
    except Exception as exc:  # ObsPy raises bare Exception for unreadable files
        return (
            [],
            FileFailure(str(path), f"unreadable {sniff.format} file ({type(exc).__name__}: {exc})"),
            False,
        )
    if len(stream) == 0:
        return [], FileFailure(str(path), f"{sniff.format} file without data records"), False
    rows = []
    for tr in stream:
        s = tr.stats
        if not selection.matches(s.network, s.station, s.location, s.channel):
            continue
        rows.append(
            {
                "path": str(path),
                "format": sniff.format,
                "network": s.network,
                "station": s.station,
                "location": s.location,
                "channel": s.channel,
                "start": _timestamp(s.starttime),
                "end": _timestamp(s.endtime),
                "sampling_rate": float(s.sampling_rate),
                "npts": int(s.npts),
                "file_size": size,
                "file_mtime": mtime,
            }
        )
    return rows, failure, False  # a partly readable file: its whole records, and what was lost


def scan_archive(
    root: Path,
    selection: StationSelection | None = None,
    progress: bool = False,
    previous: pd.DataFrame | None = None,
) -> ArchiveScan:
    """Return the index of every trace segment under ``root`` and the files that failed.

    Any layout works: an SDS tree, flat folders, a single file. miniSEED 2 and SAC files are
    recognised by content. Only headers are read. Hidden files and folders and ``*.tmp`` files
    are ignored. A corrupt, truncated, empty or mislabelled file (a name ending ``.mseed``/
    ``.sac``/SDS-style that holds something else) becomes a :class:`FileFailure` and the scan
    goes on; other non-waveform files (StationXML, CSV, notes) are listed in ``skipped``.

    Args:
        root: archive folder (or one waveform file).
        selection: keep only matching channels; SDS file names that cannot match are not opened.
        progress: show a tqdm progress bar on stderr.
        previous: an earlier index of the same archive; rows of files whose path, size and
            modification time are unchanged are reused instead of re-reading their headers
            (None: this process's last scan of the same archive and selection, if any).

    Returns:
        ArchiveScan with ``index`` (columns of ``waveform_index``, absolute paths, UTC times of
        the first and last sample) sorted by network, station, location, channel, start.

    Raises:
        ArchiveNotFound: when ``root`` does not exist (bad input: never retried).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ArchiveNotFound(
            f"-d/--directory: waveform archive {root} does not exist; pass an existing folder"
        )
    root = root.resolve()
    selection = selection or StationSelection()
    memo = (str(root), selection.model_dump_json())
    if previous is None:
        with _SCANS_LOCK:
            previous = _LAST_SCANS.get(memo)
    known: set[tuple[str, int, float]] = set()
    if previous is not None and len(previous):
        known = {
            (str(p), int(n), float(t))
            for p, n, t in zip(
                previous["path"], previous["file_size"], previous["file_mtime"], strict=True
            )
        }

    files: Iterable[Path] = _iter_files(root)
    if progress:
        from tqdm.auto import tqdm

        files = tqdm(files, desc=f"scanning {root}", unit=" files")

    rows: list[dict] = []
    reused: set[tuple[str, int, float]] = set()  # unchanged files: their rows of ``previous``
    failures: list[FileFailure] = []
    skipped: list[str] = []
    for path in files:
        sds = _SDS_NAME.match(path.name)
        if sds and not selection.matches(
            sds["network"], sds["station"], sds["location"], sds["channel"]
        ):
            continue
        try:
            st = path.stat()
        except OSError as exc:
            failures.append(FileFailure(str(path), f"cannot stat file: {exc}"))
            continue
        if (str(path), st.st_size, st.st_mtime) in known:
            reused.add((str(path), st.st_size, st.st_mtime))
            continue
        try:
            file_rows, failure, was_skipped = _scan_file(path, st.st_size, st.st_mtime, selection)
        except OSError as exc:
            file_rows, failure, was_skipped = (
                [],
                FileFailure(str(path), f"cannot read file: {exc}"),
                False,
            )
        rows.extend(file_rows)
        if failure is not None:
            failures.append(failure)
        if was_skipped:
            skipped.append(str(path))

    parts = [_as_index(pd.DataFrame(rows))] if rows else []
    if reused and previous is not None:  # the rows of the unchanged files, at once
        same = zip(previous["path"], previous["file_size"], previous["file_mtime"], strict=True)
        kept = previous[np.array([(str(p), int(n), float(t)) in reused for p, n, t in same])]
        kept = kept[_selected(kept, selection)]
        if len(kept):
            parts.append(_as_index(kept.reset_index(drop=True)))
    index = pd.concat(parts, ignore_index=True) if parts else _empty_index()
    index = index.sort_values(["network", "station", "location", "channel", "start", "path"])
    index = index.reset_index(drop=True)
    with _SCANS_LOCK:
        _LAST_SCANS.pop(memo, None)
        if len(index) <= _KEPT_ROWS:
            _LAST_SCANS[memo] = index
            index = index.copy()  # the kept one is never handed out
        while len(_LAST_SCANS) > _KEPT_SCANS:
            _LAST_SCANS.pop(next(iter(_LAST_SCANS)))
    return ArchiveScan(index, failures, skipped)


# This process's last index of each archive and selection: a later scan of the same archive
# (the command's check, then its flow) reads the headers of new or changed files only, as with
# ``previous`` (a file is unchanged when its path, size and modification time are). Indexes of
# more rows than _KEPT_ROWS (~100 MB) are not kept: a long process does not hold them.
_LAST_SCANS: dict[tuple[str, str], pd.DataFrame] = {}
_SCANS_LOCK = threading.Lock()
_KEPT_SCANS = 4
_KEPT_ROWS = 500_000


def archive_stations(
    root: Path, selection: StationSelection | None = None
) -> Iterator[tuple[str, str]]:
    """Yield each (network, station) of the archive's waveforms that ``selection`` keeps, once.

    Stations come as the files are met, so a caller that looks for one known station stops
    early: SDS file names say their station without opening the file, other files have their
    headers read. Files that cannot be read are passed over (:func:`scan_archive` reports them).

    Raises:
        ArchiveNotFound: when ``root`` does not exist.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ArchiveNotFound(
            f"-d/--directory: waveform archive {root} does not exist; pass an existing folder"
        )
    selection = selection or StationSelection()
    seen: set[tuple[str, str]] = set()
    for path in _iter_files(root.resolve()):
        sds = _SDS_NAME.match(path.name)
        if sds:
            if not selection.matches(
                sds["network"], sds["station"], sds["location"], sds["channel"]
            ):
                continue
            found = {(sds["network"], sds["station"])}
        else:
            try:
                st = path.stat()
                rows, _, _ = _scan_file(path, st.st_size, st.st_mtime, selection)
            except OSError:
                continue
            found = {(r["network"], r["station"]) for r in rows}
        for key in sorted(found - seen):
            seen.add(key)
            yield key


# --------------------------------------------------------------------------- station-days


def station_days(
    index: pd.DataFrame,
    window: TimeWindow | None = None,
    selection: StationSelection | None = None,
    pad_s: float = 60.0,
) -> list[StationDay]:
    """Return the station-days with data in ``index``, sorted by network, station and day.

    A station has a day when one of its segments has data strictly inside that UTC day (a
    segment whose last sample falls exactly on midnight does not open the next day). Each unit
    lists every file of that station with data in ``[day - pad_s, day + 1 day + pad_s]``.

    Args:
        index: an :attr:`ArchiveScan.index` (or the ``waveform_index`` table read back).
        window: keep days inside it; ``None`` or open ends keep every day found.
        selection: keep only matching channels.
        pad_s: seconds of data wanted on both sides of the day.
    """
    if index is None or len(index) == 0:
        return []
    df = index
    if selection is not None:
        df = df[_selected(df, selection)]
    if len(df) == 0:
        return []
    start = pd.to_datetime(df["start"], utc=True)
    end = pd.to_datetime(df["end"], utc=True)
    pad = pd.Timedelta(seconds=pad_s)
    ids = {"network": df["network"].to_numpy(), "station": df["station"].to_numpy()}
    # days holding data: a last sample exactly at midnight does not open the next day
    data_days = _explode_days(ids, start.dt.floor("D"), (end - pd.Timedelta(1, "us")).dt.floor("D"))
    # days whose padded window [day - pad, day + 1 day + pad] a segment reaches
    segments = [
        Segment(
            str(path),
            str(loc),
            str(cha),
            t0.isoformat(),
            t1.isoformat(),
            int(n),
            int(size),
            float(mtime),
        )
        for path, loc, cha, t0, t1, n, size, mtime in zip(
            df["path"],
            df["location"],
            df["channel"],
            start,
            end,
            df["npts"],
            df["file_size"],
            df["file_mtime"],
            strict=True,
        )
    ]
    seg_days = _explode_days(
        {**ids, "row": np.arange(len(df))},
        (start - pad).dt.floor("D"),
        (end + pad).dt.floor("D"),
    )
    keys = ["network", "station", "day"]
    seg_days = seg_days.sort_values([*keys, "row"], ignore_index=True)
    # consecutive rows with the same key form one unit's segments
    new_key = (seg_days[keys].shift() != seg_days[keys]).any(axis=1).to_numpy()
    bounds = [*np.flatnonzero(new_key), len(seg_days)]
    all_rows = seg_days["row"].tolist()
    key_rows = seg_days.loc[new_key, keys].itertuples(index=False, name=None)
    spans = zip(key_rows, bounds[:-1], bounds[1:], strict=True)
    unit_segments = {
        key: tuple(sorted((segments[i] for i in all_rows[lo:hi]), key=_segment_order))
        for key, lo, hi in spans
    }
    wanted = data_days[keys].drop_duplicates().sort_values(keys)
    units: list[StationDay] = []
    for net, sta, day in wanted.itertuples(index=False, name=None):
        date = _EPOCH + dt.timedelta(days=int(day))
        if window is None or window.contains(date):
            segs = unit_segments.get((net, sta, day), ())
            paths = tuple(sorted({seg.path for seg in segs}))
            units.append(StationDay(str(net), str(sta), date, paths, segs))
    return units


def _segment_order(seg: Segment) -> tuple:
    return seg.location, seg.channel, seg.start, seg.path, seg.end


def _explode_days(
    columns: dict[str, np.ndarray], first: pd.Series, last: pd.Series
) -> pd.DataFrame:
    """Return one row per (row of ``columns``, day from ``first`` to ``last`` inclusive).

    Days are integers (days since 1970-01-01) in the ``day`` column: cheap to sort and group.
    """
    day0 = first.to_numpy(dtype="datetime64[D]").astype(np.int64)
    day1 = last.to_numpy(dtype="datetime64[D]").astype(np.int64)
    counts = np.clip(day1 - day0 + 1, 0, None)
    rows = np.repeat(np.arange(len(day0)), counts)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = pd.DataFrame({name: values[rows] for name, values in columns.items()})
    out["day"] = day0[rows] + offsets
    return out


# --------------------------------------------------------------------------- reading


def _day_bounds(day: dt.date, pad_s: float) -> tuple[UTCDateTime, UTCDateTime]:
    t0 = UTCDateTime(day.year, day.month, day.day) - pad_s
    return t0, t0 + 86400.0 + 2 * pad_s


def _read_file(
    path: str, unit: StationDay, t0: UTCDateTime, t1: UTCDateTime
) -> tuple[Stream, FileFailure | None]:
    """Return the unit's traces of one file inside [t0, t1], or the reason it failed."""
    p = Path(path)
    try:
        size = p.stat().st_size
        sniff, failure, readable = _inspect(p, size)
    except OSError as exc:
        return Stream(), FileFailure(path, f"cannot read file: {exc}")
    if failure is not None and readable is None:
        return Stream(), failure
    kwargs = {}
    if sniff.format == "MSEED":  # multi-station files: decode only this station's records
        kwargs["sourcename"] = f"{unit.network}.{unit.station}.*"
    source = io.BytesIO(readable) if readable is not None else path
    try:
        stream = obspy.read(
            source, format=sniff.format, starttime=t0, endtime=t1, nearest_sample=False, **kwargs
        )
    except Exception as exc:  # ObsPy raises bare Exception for unreadable files
        return Stream(), FileFailure(
            path, f"unreadable {sniff.format} file ({type(exc).__name__}: {exc})"
        )
    return stream, failure  # a partly readable file: its whole records, and what was lost


def _dominant_rate(traces: list[tuple[str, Trace]]) -> float:
    totals: dict[float, int] = defaultdict(int)
    for _, tr in traces:
        totals[float(tr.stats.sampling_rate)] += tr.stats.npts
    return max(totals, key=lambda r: (totals[r], r))


@dataclass
class ChannelQuality:
    """What reading one channel of a station-day found (recorded in the `units` ledger)."""

    segments: int = 0  # contiguous traces kept
    nonfinite: int = 0  # NaN/inf samples, treated as gaps
    overlap: int = 0  # samples covered by more than one segment
    conflicting: int = 0  # of those, samples whose values differ (the later segment's are kept)

    def as_dict(self) -> dict[str, int]:
        """Return the non-zero findings."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


def _merge_channel(
    seed_id: str, traces: list[tuple[str, Trace]], t0: UTCDateTime, t1: UTCDateTime
) -> tuple[list[Trace], list[FileFailure], ChannelQuality]:
    """Return contiguous traces of one channel (one rate, overlaps resolved), what was left out
    and what was found.

    Segments are laid on one sample grid in order of start time (ties: the order of the
    files): where they overlap the later segment's samples are used, and samples that differ
    are counted as conflicting. Non-finite samples (NaN, inf in float data) are gaps, like
    missing samples: the channel is split around them.
    """
    failures: list[FileFailure] = []
    quality = ChannelQuality()
    rate = _dominant_rate(traces)
    kept: list[tuple[str, Trace]] = []
    dropped: dict[str, tuple[float, int]] = {}
    for path, tr in traces:
        r = float(tr.stats.sampling_rate)
        if abs(r - rate) <= _RATE_TOLERANCE * rate:
            tr.stats.sampling_rate = rate
            kept.append((path, tr))
        else:
            prev = dropped.get(path, (r, 0))
            dropped[path] = (r, prev[1] + tr.stats.npts)
    for path, (r, n) in sorted(dropped.items()):
        failures.append(
            FileFailure(
                path,
                f"sampling rate {r:g} Hz of {seed_id} differs from its dominant {rate:g} Hz in this "
                f"station-day; {n} samples were left out",
            )
        )
    calib = {float(tr.stats.calib) for _, tr in kept}
    if len(calib) > 1:
        failures.extend(
            FileFailure(
                p,
                f"cannot merge the segments of {seed_id} (calibration factors {sorted(calib)} "
                "differ); the channel was left out",
            )
            for p in sorted({p for p, _ in kept})
        )
        return [], failures, quality
    order = sorted(range(len(kept)), key=lambda i: (kept[i][1].stats.starttime, i))
    ordered = [kept[i][1] for i in order]
    first = min(tr.stats.starttime for tr in ordered)
    offsets = [int(round((tr.stats.starttime - first) * rate)) for tr in ordered]
    n = max(o + tr.stats.npts for o, tr in zip(offsets, ordered, strict=True))
    dtype = np.result_type(*[tr.data.dtype for tr in ordered])
    grid = np.zeros(n, dtype=dtype)
    filled = np.zeros(n, dtype=bool)
    for o, tr in zip(offsets, ordered, strict=True):
        data = np.asarray(tr.data)
        valid = np.isfinite(data) if data.dtype.kind == "f" else np.ones(len(data), bool)
        quality.nonfinite += int(len(data) - valid.sum())
        window = slice(o, o + len(data))
        both = filled[window] & valid
        quality.overlap += int(both.sum())
        quality.conflicting += int((grid[window][both] != data[both]).sum())
        grid[window][valid] = data[valid]
        filled[window] |= valid
    header = ordered[0].stats.copy()
    merged = []
    # runs of filled samples: [start, stop) index pairs
    edges = np.flatnonzero(np.diff(np.concatenate([[0], filled.astype(np.int8), [0]])))
    for lo, hi in zip(edges[0::2], edges[1::2], strict=True):
        stats = header.copy()
        stats.starttime = first + lo / rate
        stats.npts = hi - lo
        merged.append(Trace(data=grid[lo:hi].copy(), header=stats))
    stream = Stream(merged)
    stream.trim(t0, t1, nearest_sample=False)
    kept_traces = [tr for tr in stream if tr.stats.npts > 0]
    quality.segments = len(kept_traces)
    if not kept_traces and quality.nonfinite:
        failures.extend(
            FileFailure(
                p,
                f"all samples of {seed_id} in this station-day are non-finite (NaN/inf); "
                "the channel was left out",
            )
            for p in sorted({p for p, _ in kept})
        )
    return kept_traces, failures, quality


def read_station_day(
    unit: StationDay, selection: StationSelection | None = None, pad_s: float = 60.0
) -> tuple[list[InstrumentStream], list[FileFailure]]:
    """Return the unit's data grouped by instrument, and the files (or parts) that failed.

    Reads every file of ``unit`` (only the unit's station and the selected channels), trims to
    ``[day - pad_s, day + 1 day + pad_s]``, joins chunks (including chunks that overlap by a
    sample), splits at gaps and non-finite samples, resolves overlaps (the segment starting
    later wins, conflicting samples are counted in ``quality``), keeps one sampling rate
    per channel (the dominant one; the rest is reported), renames components to Z/N/E (see
    :data:`COMPONENT_MAP`) and groups channels by (location, band). A file that cannot be read
    becomes a :class:`FileFailure`; the others are still returned.

    Args:
        unit: the station-day to read (from :func:`station_days`).
        selection: keep only matching channels (matched on the original channel codes).
        pad_s: seconds of data on both sides of the day.

    Returns:
        (instruments sorted by location and band, failures).
    """
    selection = selection or StationSelection()
    t0, t1 = _day_bounds(unit.day, pad_s)
    failures: list[FileFailure] = []
    by_channel: dict[tuple[str, str], list[tuple[str, Trace]]] = defaultdict(list)
    for path in unit.paths:
        stream, failure = _read_file(path, unit, t0, t1)
        if failure is not None:
            failures.append(failure)
        for tr in stream:
            s = tr.stats
            if s.network != unit.network or s.station != unit.station or s.npts == 0:
                continue
            if not selection.matches(s.network, s.station, s.location, s.channel):
                continue
            by_channel[(s.location, s.channel)].append((path, tr))

    def canonical_first(item: tuple[tuple[str, str], list]) -> tuple[str, str, bool, str]:
        location, channel = item[0]
        return location, channel[:-1], channel[-1:] not in ("Z", "N", "E"), channel

    instruments: dict[tuple[str, str], InstrumentStream] = {}
    for (location, channel), traces in sorted(by_channel.items(), key=canonical_first):
        seed_id = f"{unit.network}.{unit.station}.{location}.{channel}"
        merged, problems, quality = _merge_channel(seed_id, traces, t0, t1)
        failures.extend(problems)
        band, letter = channel[:-1], channel[-1:]
        inst = instruments.get((location, band))
        if inst is None:
            inst = InstrumentStream(unit.network, unit.station, location, band, Stream())
            instruments[(location, band)] = inst
        if quality.as_dict():
            inst.quality[channel] = quality.as_dict()
        if not merged:
            continue
        component = COMPONENT_MAP.get(letter.upper())
        if component is None:
            inst.notes.append(f"{seed_id}: component {letter!r} has no Z/N/E meaning; left out")
            continue
        taken = {tr.stats.channel[-1] for tr in inst.stream}
        if component in taken:
            inst.notes.append(f"{seed_id}: component {component} already present; left out")
            continue
        for tr in merged:
            tr.stats.channel = band + component
        inst.stream.extend(merged)

    result = []
    for key in sorted(instruments):
        inst = instruments[key]
        if len(inst.stream) == 0:
            continue
        inst.stream.sort(keys=["channel", "starttime"])
        result.append(inst)
    return result, failures


def quality_notes(instruments: list[InstrumentStream]) -> dict[str, dict]:
    """Return what a station-day's reading found, per instrument ``NET.STA.LOC.BAND``.

    ``components`` (e.g. ``ZNE``, or ``Z`` for a single-component station), ``channels`` (per
    channel: segments, non-finite samples, overlapping and conflicting samples) and ``notes``
    (channels left out). The pick stage stores it in the ledger's ``notes`` column.
    """
    out = {}
    for inst in instruments:
        entry: dict[str, Any] = {"components": inst.components}
        if inst.quality:
            entry["channels"] = inst.quality
        if inst.notes:
            entry["notes"] = inst.notes
        out[f"{inst.network}.{inst.station}.{inst.location}.{inst.band}"] = entry
    return out
