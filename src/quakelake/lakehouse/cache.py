"""A per-user cache of what QuakeLake derives from its inputs, keyed by their content and the code.

Some results are pure functions of input bytes and cost seconds to recompute on every command:
the station table of a StationXML file (ObsPy's parse), the first association pass that sets
the Vp/Vs ratio and the search depth, the eikonal travel-time tables. A rerun that finds nothing
to do would pay them again just to recompute the same values. They are kept under
``$XDG_CACHE_HOME/quakelake/<kind>/`` (``~/.cache`` when unset), one file per key, written
atomically. Deleting the folder is always safe.

An entry is never trusted because it parses:

- its key (:func:`content_key`) is a SHA-256 of everything the value depends on *and* of the
  code that made it: this module's :data:`FORMAT`, QuakeLake's version and the user's own
  version of the entry's kind, so an entry of other code is never looked up;
- it carries a SHA-256 of its key and its content (:func:`digest`), so a truncated, edited,
  copied or planted file fails the check;
- the caller's ``check`` validates the value against its schema (columns, types, value ranges)
  and, where that is cheap, against its source (the StationXML coordinates).

An entry that fails any of these is recomputed and replaced, with a warning naming the file
and why; it never crashes a command. The cache lives in the user's home, not in ``/tmp``:
another account on a shared login node must not be able to plant entries.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from quakelake.lakehouse.atomic import atomic_write

log = logging.getLogger(__name__)

# Bump when the layout of entries (envelope, digest) changes: every entry is then recomputed.
FORMAT = "2"

# A check returns None when a value is sound, else what is wrong with it.
Check = Callable[[Any], "str | None"]


@cache
def code_version() -> str:
    """Return QuakeLake's installed version ("unknown" when not installed), part of every key."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quakelake")
    except PackageNotFoundError:
        return "unknown"


def cache_dir(kind: str) -> Path:
    """Return the folder of cached ``kind`` entries (not created)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "quakelake" / kind


def content_key(kind: str, version: str, *parts: bytes | str) -> str:
    """Return the key (SHA-256, 40 hex characters) of a ``kind`` entry of ``parts``.

    Args:
        kind: the entry's kind (also its folder).
        version: the kind's own version, bumped when what it computes changes.
        parts: every input the value depends on, each length-prefixed.
    """
    h = hashlib.sha256()
    for part in (kind, version, FORMAT, code_version(), *parts):
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:40]


def digest(key: str, payload: bytes) -> str:
    """Return the SHA-256 (hex) of an entry's key and content: what the entry must carry."""
    return hashlib.sha256(key.encode() + b"\0" + payload).hexdigest()


def entry(kind: str, key: str, suffix: str) -> Path:
    """Return the path of one cache entry."""
    return cache_dir(kind) / f"{key}{suffix}"


def publish(tmp_writer: Callable[[Path], object], path: Path) -> None:
    """Write ``path`` through ``tmp_writer(tmp_path)`` and rename it into place (no half entry).

    A folder that cannot be written is logged at debug level and skipped.
    """
    try:
        atomic_write(path, tmp_writer)
    except OSError as exc:
        log.debug("cache entry %s not written (%s)", path, exc)


def reject(path: Path, why: str) -> None:
    """Warn that the entry ``path`` is not used (``why``); the caller recomputes and replaces it."""
    log.warning("cache entry %s is not used (%s); recomputing it", path, why)


# ------------------------------------------------------------------------------- JSON values
def read_json(kind: str, key: str, check: Check) -> Any | None:
    """Return the cached JSON value of ``key``, or None when absent or not sound (with a warning).

    Sound: the envelope's key and digest match, and ``check(value)`` finds nothing wrong.
    """
    path = entry(kind, key, ".json")
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        envelope = json.loads(text)
        value = envelope["value"]
        body = json.dumps(value, sort_keys=True).encode()
        if envelope.get("key") != key or envelope.get("sha256") != digest(key, body):
            reject(path, "its checksum does not match its content")
            return None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        reject(path, f"not a QuakeLake cache entry: {type(exc).__name__}")
        return None
    problem = _checked(check, value)
    if problem:
        reject(path, problem)
        return None
    return value


def write_json(kind: str, key: str, value: Any) -> None:
    """Cache ``value`` (JSON) under ``key`` with its digest."""
    body = json.dumps(value, sort_keys=True).encode()
    text = json.dumps({"key": key, "sha256": digest(key, body), "value": value})
    publish(lambda tmp: tmp.write_text(text), entry(kind, key, ".json"))


# ---------------------------------------------------------------------------------- tables
_META = b"quakelake.cache"


def frame_digest(key: str, frame: pd.DataFrame) -> str:
    """Return the digest of a table entry: its key, columns, dtypes and every value."""
    # dtype kinds and ns-resolution values: the digest of a table survives its Parquet round trip
    header = json.dumps([[str(c), t.kind] for c, t in frame.dtypes.items()]).encode()
    body = frame.to_json(orient="values", date_unit="ns", double_precision=15).encode()
    return digest(key, header + body)


def read_frame(kind: str, key: str, check: Check) -> pd.DataFrame | None:
    """Return the cached table of ``key``, or None when absent or not sound (with a warning)."""
    import pyarrow.parquet as pq

    path = entry(kind, key, ".parquet")
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        table = pq.read_table(io.BytesIO(raw))
        meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
        frame = table.to_pandas()
    except Exception as exc:  # any unreadable file: recomputed, never a crash
        reject(path, f"unreadable: {type(exc).__name__}")
        return None
    if meta.get("key") != key or meta.get("sha256") != _checked_digest(key, frame):
        reject(path, "its checksum does not match its content")
        return None
    problem = _checked(check, frame)
    if problem:
        reject(path, problem)
        return None
    return frame


def write_frame(kind: str, key: str, frame: pd.DataFrame) -> None:
    """Cache ``frame`` (Parquet) under ``key`` with its digest in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {})}
    meta[_META] = json.dumps({"key": key, "sha256": frame_digest(key, frame)}).encode()
    table = table.replace_schema_metadata(meta)
    publish(lambda tmp: pq.write_table(table, tmp), entry(kind, key, ".parquet"))


def _checked_digest(key: str, frame: pd.DataFrame) -> str | None:
    try:
        return frame_digest(key, frame)
    except Exception:  # values that cannot be written as JSON: no digest can match
        return None


def _checked(check: Check, value: Any) -> str | None:
    try:
        return check(value)
    except Exception as exc:  # a check that trips over a wrong type: the value is not sound
        return f"{type(exc).__name__} while checking it: {exc}"
