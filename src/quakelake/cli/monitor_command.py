"""``quakelake monitor``: follow live data (a growing SDS archive, SeedLink, FDSN) into the lake."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from quakelake.cli.checks import check_lake, check_station_file
from quakelake.cli.options import CliError

HELP = """\
Follow one source of live data and keep picks and events in the lake as the waves arrive:
final picks equal the batch picks of the same data; provisional picks come earlier and are
confirmed or withdrawn; events keep their id while their origin is revised. Runs until
SIGINT/SIGTERM (finishes the cycle, commits, exits 0) or --duration. A Prefect event is emitted
per new, updated or deleted earthquake when a Prefect API answers (quakelake server start).
"""


def add_monitor_parser(command) -> None:
    """Add the ``monitor`` subcommand (``command`` makes a subparser)."""
    p = command("monitor", "follow live data: picks in seconds, events within a minute", HELP)
    src = p.add_argument_group("source (one)").add_mutually_exclusive_group(required=True)
    src.add_argument("--sds", type=Path, metavar="DIR", help="an SDS archive that grows")
    src.add_argument("--seedlink", metavar="HOST[:PORT]", help="a SeedLink server (port 18000)")
    src.add_argument("--fdsn", metavar="URL", help="an fdsnws-dataselect service, polled")
    g = p.add_argument_group("selection and science")
    g.add_argument("-N", "--network", nargs="+", help="network codes, wildcards (default *)")
    g.add_argument("-S", "--station", nargs="+", help="station codes, wildcards (default *)")
    g.add_argument("-C", "--channel", nargs="+", help="channel codes, e.g. HH? (default *)")
    g.add_argument(
        "-F",
        "--file",
        type=Path,
        help="station metadata for association (default: none, picks only)",
    )
    g.add_argument("--lake", type=Path, help="lake folder (default ./lake)")
    g.add_argument(
        "--catalog", metavar="URL", help="the lake's PostgreSQL catalog (default: the lake's own)"
    )
    g.add_argument("-M", "--models", nargs="+", help="the picking model (one; default PhaseNet)")
    g.add_argument("-W", "--weights", nargs="+", help="its weights (one; default original)")
    g.add_argument("-p", "--pwave", type=float, help="P threshold (default 0.3)")
    g.add_argument("-s", "--swave", type=float, help="S threshold (default 0.3)")
    g.add_argument(
        "--pyocto", action="store_true", default=True, help="associate with PyOcto (default)"
    )
    g.add_argument("--gamma", action="store_true", help="associate with GaMMA instead of PyOcto")
    r = p.add_argument_group("running")
    r.add_argument(
        "--name", default="monitor", help="the monitor's name in the lake (default monitor)"
    )
    r.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: until stopped)",
    )
    r.add_argument(
        "--cycle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between cycles (default 2)",
    )
    r.add_argument(
        "--window",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="association window (default 300)",
    )
    r.add_argument(
        "--from-start",
        action="store_true",
        help="--sds: read the files from their start; --seedlink: everything the server's "
        "ring holds (default: only new records)",
    )
    r.add_argument("--no-provisional", action="store_true", help="publish final picks only")
    r.add_argument("-v", "--verbose", action="store_true", help="log every cycle")


def _one(values: list[str] | None, option: str, default: str) -> str:
    if not values:
        return default
    if len(values) > 1:
        raise CliError(
            f"{option}: the monitor runs one model x weights; give one (got {', '.join(values)})"
        )
    return values[0]


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitor until stopped or --duration."""
    from quakelake.monitor import MonitorSpec

    lake = args.lake or Path("lake")
    check_lake(lake)
    if args.sds is not None and not Path(args.sds).is_dir():
        raise CliError(f"--sds: {args.sds} is not a folder; give the SDS archive's root")
    stations = check_station_file(args.file)
    for opt, value in (("-p/--pwave", args.pwave), ("-s/--swave", args.swave)):
        if value is not None and not 0.0 < value <= 1.0:
            raise CliError(f"{opt}: give a probability in (0, 1] (got {value})")
    for opt, value in (("--cycle", args.cycle), ("--window", args.window)):
        if value <= 0:
            raise CliError(f"{opt}: give a positive number of seconds (got {value})")
    model = _one(args.models, "-M/--models", "PhaseNet")
    weights = _one(args.weights, "-W/--weights", "original")
    from quakelake.picking import check_models

    problems = check_models([model], [weights])
    if problems:  # the monitor cannot wait for a download: cached weights only
        raise CliError(problems[0].split(" (SeisBench will")[0])
    spec = MonitorSpec(
        lake=str(lake),
        sds=str(args.sds) if args.sds else None,
        seedlink=args.seedlink,
        fdsn=args.fdsn,
        networks=args.network or ["*"],
        stations=args.station or ["*"],
        channels=args.channel or ["*"],
        station_file=str(args.file) if args.file else None,
        model=model,
        weights=weights,
        p_threshold=args.pwave or 0.3,
        s_threshold=args.swave or 0.3,
        pyocto=not args.gamma,
        associate=stations is not None,
        name=args.name,
        cycle_s=args.cycle,
        window_s=args.window,
        duration_s=args.duration,
        provisional=not args.no_provisional,
        from_start=args.from_start,
        catalog=args.catalog,
    )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    notify = _notifier(spec.name)
    from quakelake.monitor import build_monitor

    try:
        mon = build_monitor(spec, notify=notify, stations_table=stations)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if stations is None:
        print("monitor: no station file (-F): picks only, no events", file=sys.stderr)
    print(
        f"monitor {spec.name}: following {spec.source_label} into {lake} "
        f"({model}/{weights}{', ' + ('GaMMA' if args.gamma else 'PyOcto') if stations is not None else ''})",
        file=sys.stderr,
    )
    code = mon.run()
    events = 0 if mon.catalog is None else len(mon.catalog.preferred())
    print(f"monitor {spec.name}: {mon.cycles} cycles, {events} events", file=sys.stderr)
    return code


def _notifier(name: str):
    """Prefect events when an API is configured or the local server runs; else none (never a
    temporary server: the monitor outlives it)."""
    from quakelake.server import resolve_api

    if resolve_api() == "temporary":
        print(
            "monitor: no Prefect API (quakelake server start): no Prefect events", file=sys.stderr
        )
        return None
    from quakelake.flows.monitor import prefect_notifier

    return prefect_notifier(name)
