"""A watchdog that ends a command's child processes when the command itself is killed.

``quakelake`` starts children it does not control the birth of: the temporary Prefect server
(~240 MB and an open port), Dask worker processes. A normal exit or Ctrl-C stops them, but a
``SIGKILL`` (the OOM killer, ``kill -9``, a batch system) gives the command no chance: the
children would live on, orphaned. :func:`start` launches this file as a small separate process
(standard library only, in its own session) that notes the command's descendants every second
and, once the command is gone, sends them ``SIGTERM`` and, after a grace period, ``SIGKILL``.

Linux only (it reads ``/proc``); elsewhere :func:`start` does nothing. Set
``QUAKELAKE_NO_WATCHDOG=1`` to turn it off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DISABLE_ENV = "QUAKELAKE_NO_WATCHDOG"
_STARTED: dict[int, subprocess.Popen] = {}


def _stat(pid: int) -> tuple[int, int] | None:
    """Return (parent pid, start time in clock ticks) of ``pid``, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int, exclude: int | None = None) -> dict[int, int]:
    """Return every live descendant of ``root`` -> its start time (``exclude`` and its subtree left out)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        info = _stat(int(entry.name))
        if info is not None:
            children.setdefault(info[0], []).append(int(entry.name))
            starts[int(entry.name)] = info[1]
    out: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid == exclude or pid in out:
            continue
        out[pid] = starts[pid]
        todo.extend(children.get(pid, []))
    return out


def _same(pid: int, start: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] == start


def watch(parent: int, interval: float = 1.0, grace: float = 5.0) -> int:
    """Note ``parent``'s descendants until it dies, then end those still running; return how many."""
    me = os.getpid()
    parent_info = _stat(parent)
    if parent_info is None:
        return 0
    parent_start = parent_info[1]
    known: dict[int, int] = {}
    while _same(parent, parent_start):
        known = {p: s for p, s in known.items() if _same(p, s)}
        known.update(descendants(parent, exclude=me))
        time.sleep(interval)
    known.update({p: s for p, s in descendants(parent, exclude=me).items()})
    left = {p: s for p, s in known.items() if _same(p, s)}
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_same(p, s) for p, s in left.items()):
        time.sleep(0.1)
    for pid, start in left.items():
        if _same(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return len(left)


def start() -> subprocess.Popen | None:
    """Start the watchdog of this process (once per process); None where it cannot run."""
    if os.environ.get(DISABLE_ENV) == "1" or not Path("/proc/self/stat").exists():
        return None
    pid = os.getpid()
    if pid in _STARTED:
        return _STARTED[pid]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-E", str(Path(__file__).resolve()), str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C on the terminal reaches the command, not the watchdog
            close_fds=True,
        )
    except OSError:
        return None
    _STARTED[pid] = proc
    return proc


if __name__ == "__main__":
    watch(int(sys.argv[1]))
