"""The ``quakelake`` command line (and the ``picker`` alias with the original picker.py options).

Expected failures (:class:`quakelake.errors.QuakeLakeError`) end in one ``error:`` line and exit
status 2 (bad input) or 1 (failed work); ``-v`` adds the traceback. Heavy modules (Prefect, the
science stack) are imported only by the commands that need them, so ``--help`` and the checks
made before any work starts answer quickly.

The package reads in the order a command runs:

- :mod:`~quakelake.cli.options`: the parser, every option and its help;
- :mod:`~quakelake.cli.settings`: options over the config file and blocks, into a ``RunConfig``;
- :mod:`~quakelake.cli.checks`: what is checked before any work starts;
- :mod:`~quakelake.cli.startup`: the Prefect API, warm workers, quiet logs, ``--timing``;
- :mod:`~quakelake.cli.commands`: the commands that run flows;
- :mod:`~quakelake.cli.lake_commands`: the commands on a lake and on the local server;
- here: dispatch, the one ``error:`` line, and the end of the process.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from quakelake.cli.commands import (
    cmd_analyze,
    cmd_associate,
    cmd_demo,
    cmd_download,
    cmd_pick,
    cmd_run,
    cmd_train,
    exit_status,
)
from quakelake.cli.lake_commands import (
    cmd_export,
    cmd_import_catalog,
    cmd_lake,
    cmd_ml_corrections,
    cmd_serve,
    cmd_server,
    cmd_sql,
    cmd_tables,
)
from quakelake.cli.monitor_command import cmd_monitor
from quakelake.cli.options import (
    CliError,
    build_parser,
    parse_gregorian,
    parse_julian,
    picker_parser,
)
from quakelake.cli.settings import load_config
from quakelake.errors import QuakeLakeError, disk_full, one_line

__all__ = [
    "CliError",
    "build_parser",
    "exit_status",
    "load_config",
    "main",
    "parse_gregorian",
    "parse_julian",
    "picker_main",
    "picker_parser",
]

COMMANDS = {
    "run": cmd_run,
    "pick": cmd_pick,
    "associate": cmd_associate,
    "export": cmd_export,
    "download": cmd_download,
    "import-catalog": cmd_import_catalog,
    "ml-corrections": cmd_ml_corrections,
    "analyze": cmd_analyze,
    "sql": cmd_sql,
    "tables": cmd_tables,
    "lake": cmd_lake,
    "demo": cmd_demo,
    "train": cmd_train,
    "server": cmd_server,
    "serve": cmd_serve,
    "monitor": cmd_monitor,
}


def _dispatch(func, args: argparse.Namespace) -> int:
    """Run a command; expected failures become one ``error:`` line and their exit status."""
    verbose = bool(getattr(args, "verbose", False))
    try:
        return func(args)
    except QuakeLakeError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "error: interrupted; run the same command again to resume (finished units are kept)",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if verbose:
            raise
        full = disk_full(exc, getattr(args, "lake", None))
        if full:
            print(f"error: {full}", file=sys.stderr)
            return 1
        lost = _lost_api(exc)
        if lost:
            # after Prefect's own complaints, which may not end their line
            print(f"\nerror: {lost}", file=sys.stderr)
            return 1
        if "ephemeral Prefect API server" in str(exc):
            print(
                "error: Prefect's temporary server did not start in time (a busy machine?); keep one "
                "running with quakelake server start, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                file=sys.stderr,
            )
            return 1
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)[:500]} (run again with -v for the "
            "traceback, and report it)",
            file=sys.stderr,
        )
        return 1


def _lost_api(exc: BaseException) -> str:
    """Return the message for a Prefect API that stopped answering during a command, else "".

    The API answered when the command started (it is checked before any work), so a refused
    connection later means it went away: ``quakelake server stop``, a restart, a lost network.
    """
    url = os.environ.get("PREFECT_API_URL")
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__module__.startswith("httpx") and type(seen).__name__ in (
            "ConnectError",
            "ConnectTimeout",
            "ReadError",
            "RemoteProtocolError",
        ):
            break
        seen = seen.__cause__ or seen.__context__
    if seen is None or not url:
        return ""
    return (
        f"the Prefect API at {url} stopped answering during the command (quakelake server stop, "
        "or a restart?); the units committed before are in the lake: start the server and run "
        "the same command again to finish (finished units are kept)"
    )


def _no_telemetry() -> None:
    # Offline observatories and HPC nodes: the Prefect server must not phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


#: Commands that run flows, so start children (the temporary Prefect server, Dask workers).
FLOW_COMMANDS = {"run", "pick", "download", "associate", "analyze", "demo"}


def _guard_children() -> None:
    # A SIGKILLed command must not leave its Prefect server or Dask workers running.
    from quakelake.service import lifeline

    lifeline.start()


def _end_process(code: int) -> NoReturn:
    """Exit the command's process now that its work is done, skipping the interpreter's teardown.

    What a normal exit does that matters still happens, in the same order: other threads are
    joined, the ``atexit`` handlers run (Prefect sends its remaining logs and events and stops
    its temporary server, Dask closes its cluster) and the output is flushed. Only the teardown
    of every loaded module is skipped: with torch loaded it took 2-3 s on a 2-core machine,
    after the work was done. Nothing is left half-written: the lake holds only committed files,
    whatever ends the process.
    """
    import atexit
    import threading

    try:
        # what the interpreter's exit does first: idle thread pools told to stop, other threads
        # joined (joining a pool's idle worker without that would wait for ever)
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _observed() -> bool:
    """Return True under a profiler or tracer (cProfile, coverage): they report at a normal exit."""
    return sys.getprofile() is not None or sys.gettrace() is not None


#: Commands that may run in a fork of the warm process (:mod:`quakelake.cli.warm_start`); not the
#: server's own command, nor the long-lived ``serve`` and ``monitor``.
WARM_COMMANDS = set(COMMANDS) - {"server", "serve", "monitor"}


def _warm(entry: str, args: argparse.Namespace) -> int | None:
    """Return the exit status of the command run by the warm process; None when it runs here."""
    from quakelake.cli.warm_client import hand_off

    verbosity = 0 if getattr(args, "silent", False) else 2 if getattr(args, "verbose", False) else 1
    return hand_off(entry, sys.argv[1:], verbosity)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``quakelake`` (``argv`` None: the command line; the process ends here)."""
    _no_telemetry()
    args = build_parser().parse_args(argv)
    if argv is None and args.command in WARM_COMMANDS:
        warm = _warm("quakelake", args)
        if warm is not None:
            return warm
    if args.command in FLOW_COMMANDS:
        _guard_children()
    code = _dispatch(COMMANDS[args.command], args)
    if argv is None and args.command in FLOW_COMMANDS and not _observed():
        _end_process(code)
    return code


def picker_main(argv: list[str] | None = None) -> int:
    """Entry point of ``picker``: the original picker.py options, run as ``quakelake run``."""
    _no_telemetry()
    args = picker_parser().parse_args(argv)
    args.command = "run"
    if argv is None:
        warm = _warm("picker", args)
        if warm is not None:
            return warm
    _guard_children()
    code = _dispatch(cmd_run, args)
    if argv is None and not _observed():
        _end_process(code)
    return code
