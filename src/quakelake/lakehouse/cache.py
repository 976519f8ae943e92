"""A per-user cache of what QuakeLake derives from its inputs, keyed by their content.

Some results are pure functions of input bytes and cost seconds to recompute on every command:
the station table of a StationXML file (ObsPy's parse), the first association pass that sets
the Vp/Vs ratio and the search depth. A rerun that finds nothing to do would pay them again just
to recompute the same keys. They are kept under ``$XDG_CACHE_HOME/quakelake/<kind>/`` (``~/.cache``
when unset), one file per key (a SHA-256 of everything the value depends on), written
atomically; a damaged or unreadable entry is recomputed, a read-only home just recomputes.
Deleting the folder is always safe. The cache lives in the user's home, not in ``/tmp``:
another account on a shared login node must not be able to plant entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from quakelake.lakehouse.atomic import atomic_write

log = logging.getLogger(__name__)


def cache_dir(kind: str) -> Path:
    """Return the folder of cached ``kind`` entries (not created)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "quakelake" / kind


def content_key(*parts: bytes | str) -> str:
    """Return the SHA-256 (hex, 40 characters) of ``parts``, each length-prefixed."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:40]


def entry(kind: str, key: str, suffix: str) -> Path:
    """Return the path of one cache entry."""
    return cache_dir(kind) / f"{key}{suffix}"


def publish(tmp_writer, path: Path) -> None:
    """Write ``path`` through ``tmp_writer(tmp_path)`` and rename it into place (no half entry).

    A folder that cannot be written is logged at debug level and skipped.
    """
    try:
        atomic_write(path, tmp_writer)
    except OSError as exc:
        log.debug("cache entry %s not written (%s)", path, exc)


def read_json(kind: str, key: str) -> Any | None:
    """Return the cached JSON value of ``key``, or None when absent or unreadable."""
    path = entry(kind, key, ".json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(kind: str, key: str, value: Any) -> None:
    """Cache ``value`` (JSON) under ``key``."""
    text = json.dumps(value)
    publish(lambda tmp: tmp.write_text(text), entry(kind, key, ".json"))
