"""One way to write a file so that readers see either nothing or all of it.

Every file QuakeLake writes for others to read (lake data files, the catalog pointer, cache
entries, travel-time tables, exported engines, the warm cluster's record, downloaded miniSEED and
StationXML, NonLinLoc exports) goes through :func:`atomic_write`: the content lands in a
temporary file first and ``os.replace`` renames it onto the target, which is atomic on POSIX
filesystems. The default temporary name ``.<name>.<pid>.<hex>.tmp`` is hidden (a leading dot)
and ends in ``.tmp``, so the lake's views, archive scans and ``lake vacuum`` all pass it by.

Plain Python: no Prefect, no DuckDB.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(
    path: Path | str,
    content: bytes | str | Callable[[Path], object],
    *,
    temporary: Path | None = None,
) -> Path:
    """Write ``content`` to ``path`` through a temporary file and a rename; return ``path``.

    Args:
        path: the target; its folder is created when missing.
        content: bytes, text (written as ``Path.write_text`` does), or a function that writes the file at the path it is given
            (e.g. ``lambda tmp: table.to_parquet(tmp)``).
        temporary: where to write first (default: a hidden ``.tmp`` file beside ``path``); it
            must lie on the same filesystem as ``path``.

    A failure leaves no temporary file behind and the target as it was.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a" / "b.txt", "hello").read_text()
    'hello'
    >>> sorted(p.name for p in (folder / "a").iterdir())
    ['b.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary or path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content)
        else:
            content(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
