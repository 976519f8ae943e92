"""``quakelake monitor``: follow live data (a growing SDS archive, SeedLink, FDSN) into the lake.

Its options are defined in :mod:`quakelake.cli.options` (``monitor_options``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from quakelake.cli.checks import check_lake, check_station_file
from quakelake.cli.options import CliError


def _one(values: list[str] | None, option: str, default: str) -> str:
    if not values:
        return default
    if len(values) > 1:
        raise CliError(
            f"{option}: the monitor runs one model x weights; give one (got {', '.join(values)})"
        )
    return values[0]


def _playback(args: argparse.Namespace) -> str | None:
    """Return --playback as an ISO time (checked), or None."""
    if args.speed <= 0:
        raise CliError(f"--speed: give a positive factor (got {args.speed})")
    if args.playback is None:
        if args.speed != 1.0:
            raise CliError("--speed: only with --playback TIME (a drill on past data)")
        return None
    if args.fdsn is None:
        raise CliError(
            "--playback: only with --fdsn (an SDS archive or a SeedLink ring is read as it is: "
            "use --from-start)"
        )
    from obspy import UTCDateTime

    try:
        return str(UTCDateTime(args.playback))
    except (ValueError, TypeError):
        raise CliError(
            f"--playback: {args.playback!r} is not a time; give e.g. 2020-10-01T00:00:00"
        ) from None


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitor until stopped or --duration."""
    from quakelake.service.monitor import MonitorSpec

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
    playback = _playback(args)
    execution = _execution(args)
    model = _one(args.models, "-M/--models", "PhaseNet")
    weights = _one(args.weights, "-W/--weights", "original")
    from quakelake.picking.models import check_models

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
        magnitudes=not args.no_magnitudes,
        playback=playback,
        speed=args.speed,
        from_start=args.from_start,
        catalog=args.catalog,
        shards=args.shards,
        execution=execution,
    )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    if execution is not None:  # Dask's own INFO lines would drown the cycles'
        import distributed  # noqa: F401 (sets up its loggers)

        logging.getLogger("distributed").setLevel(logging.WARNING)
    notify = _notifier(spec.name)
    from quakelake.service.monitor import build_monitor

    try:
        mon = build_monitor(spec, notify=notify, stations_table=stations)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if stations is None:
        print("monitor: no station file (-F): picks only, no events", file=sys.stderr)
    print(
        f"monitor {spec.name}: following {spec.source_label} into {lake} "
        f"({model}/{weights}{', ' + ('GaMMA' if args.gamma else 'PyOcto') if stations is not None else ''}"
        f"{f', {spec.shards} shards on {execution.runner}' if execution is not None else ''})",
        file=sys.stderr,
    )
    code = mon.run()
    events = 0 if mon.catalog is None else len(mon.catalog.preferred())
    print(f"monitor {spec.name}: {mon.cycles} cycles, {events} events", file=sys.stderr)
    return code


def _execution(args: argparse.Namespace):
    """Return where the shards run (None: the whole monitor in this process).

    ``--shards K`` > 1 without a runner: a LocalCluster of K processes; a runner, an address,
    a compute block or a configuration file alone: the given number of shards there.
    """
    if args.shards < 1:
        raise CliError(f"--shards: give a number of shards >= 1 (got {args.shards})")
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers: give a number of workers >= 1 (got {args.workers})")
    named = args.runner or args.address or args.compute_block or args.config
    if args.shards == 1 and not named:
        return None
    if args.runner == "threads":
        raise CliError(
            "--runner: shards run on Dask workers: give dask-local, slurm or address "
            "(threads is the monitor in this process, --shards 1)"
        )
    if not (args.config or args.compute_block):
        if args.runner == "address" and not args.address:
            raise CliError(
                "--runner address: give the scheduler's --address, e.g. tcp://10.0.0.5:8786"
            )
        if args.runner == "slurm":
            raise CliError(
                "--runner slurm: give the SLURM job settings: -c FILE (execution.slurm) or "
                "--compute-block NAME"
            )
    from quakelake.config import ConfigError
    from quakelake.flows.settings import resolve_settings

    given: dict = {"runner": args.runner, "workers": args.workers, "address": args.address}
    if args.address and not args.runner:
        given["runner"] = "address"
    overrides = {"execution": {k: v for k, v in given.items() if v is not None}}
    names = {"execution.runner": "--runner", "execution.workers": "--workers"}
    names["execution.address"] = "--address"
    if args.compute_block:
        from quakelake.service.server import resolve_api

        resolve_api()  # blocks live on the server every command uses
    try:
        cfg = resolve_settings(
            args.config, overrides, compute_block=args.compute_block, names=names
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    execution = cfg.execution
    if execution.runner == "threads":  # nothing named a Dask runner: a local cluster
        execution = execution.model_copy(update={"runner": "dask-local"})
    if execution.runner == "dask-local" and args.workers is None:
        execution = execution.model_copy(update={"workers": max(execution.workers, args.shards)})
    return execution


def _notifier(name: str):
    """Prefect events when an API is configured or the local server runs; else none (never a
    temporary server: the monitor outlives it)."""
    from quakelake.service.server import resolve_api

    if resolve_api() == "temporary":
        print(
            "monitor: no Prefect API (quakelake server start): no Prefect events", file=sys.stderr
        )
        return None
    from quakelake.service.monitor_flow import prefect_notifier

    return prefect_notifier(name)
