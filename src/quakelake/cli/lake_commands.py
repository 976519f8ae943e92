"""The commands on a lake and the local server: sql, tables, lake, export, import-catalog, server."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from quakelake.cli.checks import check_lake
from quakelake.cli.options import CliError
from quakelake.cli.printing import (
    format_table,
)
from quakelake.cli.settings import load_config
from quakelake.errors import (
    BadInput,
    FailedWork,
    one_line,
)

if TYPE_CHECKING:
    pass


def cmd_sql(args: argparse.Namespace) -> int:
    """Run SQL over the lake and print it."""
    from quakelake.lakehouse import Lake
    from quakelake.lakehouse.user_sql import user_query

    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    # one SELECT, read-only, no file outside the lake: writes go through QuakeLake's commands
    frame = user_query(Lake(cfg.lake), args.query, args.param or None, as_of=args.as_of)
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    elif args.format == "json":
        print(frame.to_json(orient="records", date_format="iso"))
    else:
        print(format_table(frame, args.max_rows))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """List tables with data and their row counts."""
    from quakelake.lakehouse import Lake, queries

    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    lake = Lake(cfg.lake)
    for name in lake.tables():
        try:
            n = queries.row_count(lake, name, read_only=True)
        except BadInput as exc:  # a damaged file: say so, list the other tables
            print(f"{name:<18} {'?':>12} rows  {len(lake.files(name)):>6} files  ({one_line(exc)})")
            continue
        print(f"{name:<18} {n:>12,} rows  {len(lake.files(name)):>6} files")
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    """Lake maintenance: history, check, compact, vacuum, migrate, attach."""
    from quakelake.lakehouse import Lake, maintenance

    cfg = load_config(args)
    check_lake(cfg.lake)
    lake = Lake(cfg.lake)
    if args.action == "rebuild":
        from quakelake.lakehouse.recovery import rebuild

        done = rebuild(lake)
        if done.set_aside:
            print(f"the damaged catalog was kept as {done.set_aside}")
        for table, n in done.rows.items():
            if n:
                print(f"{table:<18} {n:>12,} rows")
        print(
            f"catalog rebuilt from {done.kept} data files kept in place and {done.rewritten} "
            "rewritten; the history before is gone (one snapshot per table)"
        )
        return 0
    problem = lake.catalog_problem()
    if problem:
        raise FailedWork(
            f"lake {cfg.lake}: {problem}; run quakelake lake rebuild --lake {cfg.lake} to "
            "rebuild the catalog from the data files"
        )
    if args.action not in ("migrate", "attach") and not lake.exists():
        raise CliError(
            f"--lake: {cfg.lake} has no catalog"
            + ("; run quakelake lake migrate first" if lake.legacy() else "; no lake there yet")
        )
    if args.action == "history":
        print(format_table(lake.history(), 10_000))
    elif args.action == "check":
        report = maintenance.check(lake, repair=args.repair)
        if report.catalog:
            raise FailedWork(
                f"lake {cfg.lake}: {report.catalog}; run quakelake lake rebuild --lake "
                f"{cfg.lake} to rebuild the catalog from the data files"
            )
        for table, path, why in report.damaged:
            print(f"damaged {table} file {path}: {why}")
        print(
            f"{report.files} committed files checked, {len(report.damaged)} damaged"
            + (f", {len(report.repaired)} dropped (their units run again)" if args.repair else "")
        )
        if report.damaged and not args.repair:
            raise FailedWork(
                f"{len(report.damaged)} damaged files in lake {cfg.lake}; run quakelake lake "
                "check --repair to drop them, then rerun the commands that made them"
            )
    elif args.action == "compact":
        for table, (before, after) in maintenance.compact(lake).items():
            if before:
                print(f"{table:<18} {before:>7} files -> {after}")
    elif args.action == "vacuum":
        removed = maintenance.vacuum(lake, args.expire_days, args.grace_hours * 3600)
        said = {
            "orphans": "never committed (left by killed runs)",
            "temporary": "half-written temporaries",
            "expired": "read by no snapshot (merged by compaction, or of expired snapshots)",
        }
        for kind, paths in removed.items():
            print(f"{len(paths):>6} files removed: {said.get(kind, kind)}")
    elif args.action == "migrate" and lake.exists():
        moved = maintenance.relocate(lake)
        print(
            f"{moved['relative']} catalog paths made relative to {lake.root}"
            + (
                f", {moved['linked']} files moved into their table folders"
                if moved["linked"]
                else ""
            )
            + (f", {moved['copied']} copied in from outside" if moved["copied"] else "")
            + (
                f", {moved['missing']} missing (see quakelake lake check)"
                if moved["missing"]
                else ""
            )
            if any(moved.values())
            else f"lake {lake.root} is current: every path in its catalog is relative"
        )
    elif args.action == "migrate":
        counts = maintenance.migrate(cfg.lake)
        damaged = counts.pop("damaged")
        for table, n in counts.items():
            print(f"{table:<18} {n:>7} files migrated")
        if damaged:
            print(f"{damaged} damaged files left in place (see quakelake lake check)")
    elif args.action == "compare":
        if not args.as_of:
            raise CliError("--as-of: compare needs the snapshot before (a run id or a time)")
        from quakelake.analysis.compare import known_names
        from quakelake.catalogs.catalogues import check_names

        known = known_names(lake)
        where = f"in lake {cfg.lake}"
        check_names("-M/--models", args.models, known["models"], where)
        check_names("-W/--weights", args.weights, known["weights"], where)
        check_names("--associator", args.associator, known["associators"], where + "'s events")
        compared = maintenance.compare(
            lake, args.as_of, args.to, args.models, args.weights, args.associator
        )
        print(format_table(compared, 10_000))
    else:
        print(maintenance.catalog_attach_sql(lake))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the lake's picks and events (optionally for a day range) as files."""
    if not (args.classified or args.associated or args.quakeml):
        raise CliError(
            "export: say what to write: --classified DIR, --associated DIR and/or --quakeml FILE"
        )
    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    from quakelake.catalogs.export import write_associated, write_classified, write_quakeml
    from quakelake.lakehouse import Lake, queries

    lake, w = Lake(cfg.lake), cfg.window
    written = 0
    if args.classified:
        picks = queries.picks(lake, first_day=w.start, last_day=w.end)
        files = write_classified(picks, args.classified)
        written += len(picks)
        print(f"classified/: {len(files)} files ({len(picks)} picks) under {args.classified}")
    if args.associated or args.quakeml:
        from quakelake.catalogs.export import catalogue_tables, reported, select_catalogue

        events, label = select_catalogue(
            *queries.events_and_runs(lake, w.start, w.end),
            args.associator,
            args.run_id,
            models=args.models,
            weights=args.weights,
            catalogue=args.catalogue,
        )
        origins = len(events)
        events = reported(events, getattr(args, "rejected", False))
        tables = catalogue_tables(lake, events)
        assignments = tables.pop("assignments")
        written += origins
        print(f"catalogue: {label}")
        if len(events) < origins:
            print(
                f"left out {origins - len(events)} origins the quality gate rejected "
                "(--rejected writes them too)"
            )
        if args.associated:
            print(
                f"associated/: {len(write_associated(events, assignments, args.associated))} files under "
                f"{args.associated}"
            )
        if args.quakeml:
            print(
                f"QuakeML: {write_quakeml(events, assignments, args.quakeml, **tables)} ({len(events)} events)"
            )
    if not written:
        from quakelake.params.text import days_text

        raise CliError(
            f"-D/--dates: the lake {cfg.lake} has no picks or events for {days_text(w)}; "
            'check the day range (quakelake sql "SELECT DISTINCT day FROM picks")'
        )
    return 0


def cmd_ml_corrections(args: argparse.Namespace) -> int:
    """Estimate ML station corrections against a reference and store them in the lake."""
    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    if args.min_events < 1:
        raise CliError("--min-events: give 1 or more")
    import pandas as pd

    from quakelake.analysis import evaluation
    from quakelake.association.station_corrections import (
        estimate_corrections,
        read_quakeml_station_magnitudes,
        write_corrections,
    )
    from quakelake.catalogs.export import select_catalogue
    from quakelake.lakehouse import Lake, queries
    from quakelake.lakehouse.lineage import new_run_id

    lake = Lake(cfg.lake)
    if not lake.has_files("station_magnitudes"):
        raise CliError(
            f"--lake: {cfg.lake} has no station magnitudes; associate with --ml-law HB87 (or a "
            "magnitude section in the config file) first"
        )
    events, label = select_catalogue(
        *queries.events_and_runs(lake),
        args.associator,
        None,
        models=args.models,
        weights=args.weights,
        catalogue=args.catalogue,
    )
    ref_events = queries.reference_events(lake, args.reference)
    if not len(ref_events) or ref_events["magnitude"].isna().all():
        known = ", ".join(queries.reference_catalogs(lake)) or "none"
        raise CliError(
            f"--reference {args.reference}: no reference events with magnitudes in the lake "
            f"(references: {known}); import one with `quakelake import-catalog PATH --name NAME`"
        )
    ours = queries.event_rows(
        lake,
        "station_magnitudes",
        ["event_id", "station_id", "magnitude", "law"],
        events["event_id"].astype(str).tolist(),
    )
    laws = sorted(set(ours["law"].dropna()))
    if any("+corrections:" in law for law in laws) or len(laws) != 1:
        raise CliError(
            f"ml-corrections: the catalogue {label} has station magnitudes of laws "
            f"{', '.join(laws) or 'none'}; estimate from one law without corrections "
            "(associate again without --ml-corrections)"
        )
    matches = evaluation.match_events(events, ref_events, args.event_dt, args.event_km)
    tp = matches[matches["outcome"] == "TP"]
    to_ref = dict(zip(tp["event_id"], tp["reference_event_id"], strict=True))
    ours = ours.assign(event_id=ours["event_id"].map(to_ref)).dropna(subset=["event_id"])
    if args.station_magnitudes:
        _, theirs = read_quakeml_station_magnitudes(list(args.station_magnitudes))
        reference: pd.DataFrame = theirs
        against = "station"
    else:
        reference, against = ref_events, "event"
    table = estimate_corrections(ours, reference, against=against, min_events=args.min_events)
    print(f"catalogue: {label}; {len(tp)} events matched to {args.reference}")
    if not len(table):
        raise CliError(
            f"--min-events {args.min_events}: no station has that many matched events against "
            f"{args.reference}; lower --min-events or match more events"
        )
    run_id = new_run_id()
    write_corrections(cfg.lake, table, args.reference, laws[0], run_id)
    print(format_table(table.round(3), 10_000))
    print(
        f"{len(table)} station corrections ({laws[0]}, against the reference's {against} ML) -> "
        f"lake {cfg.lake} station_corrections; apply them with --ml-corrections {args.reference}"
    )
    return 0


def cmd_import_catalog(args: argparse.Namespace) -> int:
    """Import reference catalogue files into the lake."""
    cfg = load_config(args)
    check_lake(cfg.lake)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CliError(f"import-catalog: no such file or folder: {', '.join(missing)}")
    from quakelake.catalogs import import_catalog

    counts = import_catalog(cfg.lake, args.paths, args.name)
    events = f"{counts['events']} events"
    if counts.get("pick_events") and not counts["events"]:
        events = "no event location"  # a pick table: its picks name their events by id
    of = f" of {counts['pick_events']} events" if counts.get("pick_events") else ""
    print(
        f"reference {counts['name']}: {events}, {counts['picks']} picks{of} "
        f"from {counts['files']} files -> lake {cfg.lake}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the lake's catalogue over HTTP (fdsnws-event and the web page) until interrupted."""
    cfg = load_config(args)
    # the options that need no lake are checked before the lake's catalog is opened
    if not 0 < args.port < 65536:
        raise CliError(f"--port: {args.port} is not a TCP port; give 1-65535")
    if args.max_results < 1:
        raise CliError(f"--max-results: {args.max_results} must be at least 1")
    if args.query_timeout <= 0:
        raise CliError(f"--query-timeout: {args.query_timeout} must be more than 0 seconds")
    if args.tiles and not args.tiles.startswith(("http://", "https://")):
        raise CliError(
            f"--tiles: {args.tiles!r} is not an http(s) URL template with {{z}}/{{x}}/{{y}}"
        )
    check_lake(cfg.lake, must_exist=True)
    from quakelake.service.webservice import serve

    serve(
        cfg.lake,
        host=args.host,
        port=args.port,
        tiles=args.tiles,
        max_results=args.max_results,
        timeout_s=args.query_timeout,
    )
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    """Start, stop or report the local Prefect server that outlives one command."""
    from quakelake.service import server

    if args.action == "start":
        if args.workers < 0:
            raise CliError("--workers: give 0 (none) or a number of worker processes")
        record = server.start(args.port, workers=args.workers, warm=not args.cold)
        if not args.silent:
            print(
                f"Prefect server: {record['api_url']} (UI {record['api_url'].removesuffix('/api')}, "
                f"pid {record['pid']}, log {record['log']}); quakelake commands use it until "
                "quakelake server stop"
            )
            if record.get("dask_address"):
                print(_warm_text(record))
            if record.get("warm_pid"):
                print(_warm_start_text(record))
        return 0
    if args.action == "stop":
        record = server.stop()
        if not args.silent:
            print(
                f"Prefect server at {record['api_url']} stopped"
                if record
                else "no local Prefect server ran"
            )
        return 0
    record = server.local_server()
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        why = server.answers(configured)
        print(
            f"PREFECT_API_URL={configured}: "
            + ("answers" if not why else f"does not answer ({why})")
        )
        return 0 if not why else 1
    if record is None:
        print(
            "no local Prefect server runs: commands start a temporary one (quakelake server start)"
        )
        return 1
    print(f"Prefect server: {record['api_url']} (pid {record['pid']}) answers")
    if record.get("dask_address"):
        print(_warm_text(record))
    if server.runs_warm_start(record):
        print(_warm_start_text(record))
    return 0


def _warm_start_text(record: dict) -> str:
    """Return the line that tells which warm process the commands fork from."""
    return (
        f"warm start: commands run in forks of pid {record['warm_pid']}, their modules loaded "
        f"(log {record['warm_log']}; QUAKELAKE_COLD_START=1 runs one on its own)"
    )


def _warm_text(record: dict) -> str:
    """Return the line that tells where the warm workers listen and what they hold."""
    missing = record.get("not_warmed") or []
    return (
        f"warm workers: {record['workers']} x {record['threads']} thread(s) at "
        f"{record['dask_address']}; pick units go there when no --runner is given"
        + (f" (not preloaded: {', '.join(missing)})" if missing else "")
    )
