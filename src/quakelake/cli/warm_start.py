"""Warm start: commands run in a fork of a process that has their modules loaded already.

A ``quakelake run`` over a small day spends more CPU importing its stack (Prefect, scikit-learn
and SciPy for GaMMA, numba, ObsPy, pandas, DuckDB: about 3 s on a 2-core machine) than
associating it. ``quakelake server start`` therefore starts, next to the local Prefect server,
this module as a process of its own that imports that stack once, loads GaMMA's cached numba
kernels, and then waits on a Unix socket (in a private ``0700`` folder) for commands. A command
(:func:`quakelake.cli.warm_client.hand_off`, called by the ``quakelake`` and ``picker`` entry
points once the options parse, before any heavy import) sends it its arguments, environment,
working folder and umask, and its own standard input, output and error as file descriptors; the
warm process forks, the fork takes them over and runs the command exactly as the command's
process would have (same code path, same output on the same terminal, same exit status), and
the command's process relays signals (Ctrl-C, ``SIGTERM``) and ends with the fork's exit
status. As with the Gradle daemon or dmypy, only the first command after ``server start`` pays
the imports.

A command runs in its own process as before (nothing here is needed, nothing changes) when:

- no warm process runs, or it answers on another host (a shared ``$PREFECT_HOME``);
- its environment differs from the one the warm process was started with (the names of
  :data:`~quakelake.cli.warm_client.IGNORED_ENV` aside): the imported modules read settings
  from it (Prefect, numba, SeisBench's cache root, BLAS threads);
- its resource limits or CPU affinity differ (a batch job's), or it runs another interpreter;
- the QuakeLake code changed since the warm process started (an upgrade, an edit): the
  command runs on its own with a ``warning:`` to refresh it (``quakelake server stop``, then
  ``start``);
- ``QUAKELAKE_COLD_START=1`` is set, or ``quakelake server start --cold`` started none.

A ``SIGKILL`` of the command (the OOM killer, ``kill -9``) ends its fork with ``SIGKILL`` too,
as the process it stands for: the fork's handler notices the command's end of the socket close.
``quakelake server stop`` does not end commands that run: their handlers outlive the warm
process and relay their exit status.

Run as ``python -m quakelake.cli.warm_start --record FILE`` (by ``server start``): the
socket's path is written to ``FILE`` (JSON, atomically) once the stack is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from pathlib import Path

from quakelake.cli.warm_client import (
    LENGTH,
    affinity,
    env_key,
    limits,
    receive_exactly,
    send_message,
)

#: Modules the warm process imports: what ``run``, ``pick``, ``associate`` and the lake commands
#: load. OpenVINO is left out: it starts a thread on import, and a fork copies only the forking one.
PRELOAD = (
    "prefect",
    "prefect.main",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "quakelake.cli",
    "quakelake.flows.pipeline",
    "quakelake.flows.analyze",
    "quakelake.association.magnitudes",
    "quakelake.association.gamma_location",
    "obspy.signal.invsim",
    "threadpoolctl",
    "numba",
    "gamma.seismic_ops",
    "gamma.utils",
    "pyarrow.dataset",
    "fastapi.encoders",  # Prefect's serialize_parameters, at the first flow run
    "anyio.streams.memory",
    "obspy.io.mseed.util",
    "xml.etree.ElementTree",
    "torch",
    "seisbench.models",
)


# --- the warm process's side -----------------------------------------------------------------


class _Warm:
    """The warm process: its own environment and limits, the code it loaded, its socket."""

    def __init__(self, sock_path: Path) -> None:
        from quakelake.service.server import code_fingerprint

        self.path = sock_path
        self.env = env_key(dict(os.environ))
        self.limits = limits()
        self.affinity = affinity()
        self.code = code_fingerprint()
        #: Threads other than the main one once the stack is loaded: a fork would copy their
        #: locks but not them, so no command is forked while any runs (none does today).
        self.threads: list[str] = []

    def refusal(self, request: dict) -> tuple[str, bool]:
        """Return why ``request`` must run in its own process ("" when it fits) and whether to say it."""
        from quakelake.service.server import code_fingerprint

        if self.threads:
            return f"threads in the warm process ({', '.join(self.threads)})", False
        if request.get("executable") != sys.executable:
            return "another Python interpreter", False
        if env_key(request.get("env", {})) != self.env:
            return "another environment", False
        if request.get("limits") != self.limits or request.get("affinity") != self.affinity:
            return "other resource limits or CPU affinity", False
        if code_fingerprint() != self.code:
            return (
                "the warm process of quakelake server start runs QuakeLake code older than this "
                "command's (updated since it started): running the command on its own; refresh it "
                "with quakelake server stop, then quakelake server start"
            ), True
        return "", False


def warm_up() -> dict[str, str]:
    """Import :data:`PRELOAD` and load GaMMA's cached kernels; return what failed."""
    import importlib

    failed: dict[str, str] = {}
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional stack missing: its commands import it themselves
            failed[name] = f"{type(exc).__name__}: {exc}"
    try:
        from quakelake.association.engines import warm_gamma_kernels

        warm_gamma_kernels()
    except Exception as exc:  # the first association loads or compiles them as usual
        failed["gamma kernels"] = f"{type(exc).__name__}: {exc}"
    return failed


def serve(record: Path) -> int:
    """Load the stack, listen on a private socket, fork one handler per command until ``SIGTERM``."""
    import tempfile
    import threading

    folder = Path(tempfile.mkdtemp(prefix="quakelake-warm-"))  # 0700: this user only
    warm = _Warm(folder / "socket")  # its environment before the imports add to it
    failed = warm_up()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(warm.path))
    listener.listen(16)
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    warm.threads = threads
    from quakelake.lakehouse.atomic import atomic_write

    atomic_write(
        record,
        json.dumps(
            {
                "socket": str(warm.path),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "not_loaded": sorted(failed),
            }
        ),
    )
    print(
        f"warm start: listening on {warm.path}; not loaded: {failed or 'none'}; "
        f"other threads: {threads or 'none'}",
        flush=True,
    )
    me = os.getpid()

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except InterruptedError:
                continue
            if os.fork() == 0:
                listener.close()
                _handle(conn, warm)  # never returns
            conn.close()
    finally:
        if os.getpid() == me:
            listener.close()
            warm.path.unlink(missing_ok=True)
            folder.rmdir()
            try:
                if json.loads(record.read_text()).get("pid") == me:
                    record.unlink()
            except (OSError, ValueError):
                pass


def _handle(conn: socket.socket, warm: _Warm) -> None:
    """One command, in a fork of the warm process: check it fits, fork it, relay its end."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outlive `server stop`: relay the end
        msg, fds, _flags, _addr = socket.recv_fds(conn, LENGTH.size, 3)
        data = receive_exactly(conn, LENGTH.unpack(msg)[0]) if len(msg) == LENGTH.size else None
        request = json.loads(data) if data else None
        if request is None:
            return
        why, say = warm.refusal(request)
        if why:
            send_message(conn, {"refused": why, "say": say})
            return
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        send_message(conn, {"pid": pid})
        send_message(conn, _wait(pid, conn))
        code = 0
    except BaseException:  # noqa: BLE001 (a handler must never return into the accept loop)
        code = 1
    finally:
        os._exit(code)


def _wait(pid: int, conn: socket.socket) -> dict:
    """Wait for the command's fork; end it with SIGKILL when the command's process goes away."""
    import select

    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    watch: list = [conn] + ([pidfd] if pidfd is not None else [])
    while True:
        ready, _, _ = select.select(watch, [], [], 0.5 if pidfd is None else None)
        if conn in ready:
            try:
                gone = not conn.recv(64)
            except OSError:
                gone = True
            if gone:  # SIGKILLed, or its terminal closed without a signal: end the fork too
                watch.remove(conn)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    if pidfd is not None:
        os.close(pidfd)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def _run(request: dict, fds: list[int]) -> None:
    """Become the command: its descriptors, folder, environment, umask, then its entry point."""
    code = 1
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])
        _take_streams(request.get("fds", []), fds)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        sys.argv = [request["entry"], *request["argv"]]
        if "numpy" in sys.modules:  # a fresh process's global generator is seeded afresh too
            import numpy

            numpy.random.seed()
        from quakelake import cli

        entry = cli.picker_main if request["entry"] == "picker" else cli.main
        code = entry(list(request["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:  # noqa: BLE001 (reported as the command's own process would)
        import traceback

        traceback.print_exc()
    finally:
        from quakelake import cli

        # what the command's own process does at its end: threads joined, atexit handlers run
        # (Prefect sends its last logs), output flushed; never back into the warm process's code
        cli._end_process(code)


def _take_streams(names: list[int], fds: list[int]) -> None:
    """Make the command's standard streams this process's fds 0, 1, 2 and ``sys.std*``."""
    import io

    given = dict(zip(names, fds, strict=False))
    for fd in (0, 1, 2):
        if fd in given:
            os.dup2(given[fd], fd)
            os.close(given[fd])
        else:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)
    encoding = sys.stdout.encoding if sys.stdout is not None else "utf-8"
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding
    )
    streams = []
    for fd, errors in ((1, "strict"), (2, "backslashreplace")):
        streams.append(
            io.TextIOWrapper(
                io.BufferedWriter(io.FileIO(fd, "w", closefd=False)),
                encoding=encoding,
                errors=errors,
                line_buffering=fd == 2 or os.isatty(fd),
                write_through=bool(os.environ.get("PYTHONUNBUFFERED")),
            )
        )
    sys.stdout = streams[0]
    sys.stderr = streams[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quakelake.cli.warm_start", description=__doc__)
    parser.add_argument("--record", type=Path, required=True, help="JSON file for the socket")
    args = parser.parse_args(argv)
    return serve(args.record)


if __name__ == "__main__":
    raise SystemExit(main())
