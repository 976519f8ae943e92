"""The ``quakelake`` command line (and the ``picker`` alias with the original picker.py options)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from quakelake import params
from quakelake.config import ConfigError, RunConfig, build_config

NOT_YET = {
    "groups": "-G/--groups is not available yet in QuakeLake",
}


class CliError(RuntimeError):
    """A command-line problem the user can fix; printed without a traceback, exit status 2."""


# ----------------------------------------------------------------------------------------- dates
def parse_gregorian(text: str, option: str = "-D/--dates") -> dt.date:
    """Return the day written as YYMMDD, YYYYMMDD or YYYY-MM-DD (CliError naming ``option``)."""
    try:
        return params.parse_gregorian(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def parse_julian(text: str, option: str = "-J/--julian") -> dt.date:
    """Return the day written as year + day-of-year, YYDDD or YYYYDDD (CliError naming ``option``)."""
    try:
        return params.parse_julian(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


# ------------------------------------------------------------------------------------- arguments
def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("general")
    g.add_argument("--lake", type=Path, help="lake root folder (default ./lake)")
    g.add_argument("--lake-block", metavar="NAME", help="take the lake folder from a QuakeLake Lake block")
    g.add_argument("-c", "--config", type=Path, help="JSON or YAML configuration file; options override it")
    g.add_argument("--timing", action="store_true", default=None, help="report how long each stage took")
    out = g.add_mutually_exclusive_group()
    out.add_argument("--silent", action="store_true", help="print only errors and the final result")
    out.add_argument("-v", "--verbose", action="store_true", help="print more detail")


def _compute(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--runner", choices=["threads", "dask-local", "slurm", "address"],
                   help="task runner (default threads; slurm needs a compute block or config file)")
    g.add_argument("--workers", type=int, help="threads or Dask worker processes")
    g.add_argument("--address", help="existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (--runner address)")
    g.add_argument("--compute-block", metavar="NAME", help="take the task runner from a Compute Cluster block")


def _selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data selection")
    g.add_argument("-d", "--directory", type=Path, help="folder with the raw waveforms (any layout)")
    dates = g.add_mutually_exclusive_group()
    dates.add_argument("-D", "--dates", nargs=2, metavar=("START", "END"),
                       help="inclusive Gregorian day range, YYMMDD YYMMDD")
    dates.add_argument("-J", "--julian", nargs=2, metavar=("START", "END"),
                       help="inclusive range as year + day-of-year, YYDDD YYDDD")
    g.add_argument("-N", "--network", nargs="+", help="network codes (FDSN wildcards, * = any)")
    g.add_argument("-S", "--station", nargs="+", help="station codes (FDSN wildcards)")
    g.add_argument("-C", "--channel", nargs="+", help="channel codes (FDSN wildcards, e.g. HH? EH?)")
    g.add_argument("-G", "--groups", nargs="+", help="analyse the data grouped by a list (not available yet)")
    g.add_argument("-F", "--file", type=Path, help="station metadata file (StationXML or CSV)")


def _picking(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("picking")
    g.add_argument("-M", "--models", nargs="+", help="SeisBench models, e.g. PhaseNet EQTransformer")
    g.add_argument("-W", "--weights", nargs="+", help="pretrained weights, e.g. instance original")
    g.add_argument("-p", "--pwave", type=float, help="P probability threshold (0-1)")
    g.add_argument("-s", "--swave", type=float, help="S probability threshold (0-1)")
    g.add_argument("-b", "--batch", type=int, help="batch size for the model")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device (auto picks CUDA)")
    g.add_argument("--denoiser", nargs="?", const="DeepDenoiser/original", metavar="CLASS/WEIGHTS",
                   help="also pick on data denoised first (default DeepDenoiser/original; SeisDAE/<name> from "
                        "'quakelake train --denoiser'); its picks are extra members, weights '<W>+CLASS:WEIGHTS'")
    g.add_argument("-T", "--train", action="store_true",
                   help="fine-tune the first -M x -W on the lake's labelled picks (--reference, else the lake's "
                        "picks as pseudo-labels) and pick with the new weights too (see quakelake train)")
    g.add_argument("--force", action="store_true", default=None, help="recompute results that exist")
    _tuning_options(p.add_argument_group("fine-tuning with -T (see quakelake train --help)"))


def _tuning_options(g) -> None:
    g.add_argument("--labels", choices=["reference", "picks"],
                   help="training labels: reference (default with --reference) or the lake's picks (pseudo-labels)")
    g.add_argument("--min-probability", type=float, help="pseudo-labels: lake picks at or above this (default 0.7)")
    g.add_argument("--holdout-stations", nargs="+", metavar="NET.STA",
                   help="stations kept for validation (default every 4th station)")
    g.add_argument("--holdout-days", nargs="+", metavar="DAY", help="days kept for validation (YYMMDD ...)")
    g.add_argument("--name", help="name of the new weights in the SeisBench cache")
    g.add_argument("--epochs", type=int, help="passes over the training windows (default 5)")
    g.add_argument("--learning-rate", type=float, help="Adam learning rate (default 1e-3)")
    g.add_argument("--window", type=float, help="seconds per stored training window (default 60)")
    g.add_argument("--seed", type=int, help="seed of crops, splits and PyTorch (default 0)")


def _download_options(g) -> None:
    g.add_argument("--client", nargs="+", help="FDSN clients in order, e.g. OGS INGV GFZ or base URLs")
    g.add_argument("-K", "--key", type=Path, help="EIDA token file (never logged or stored)")
    g.add_argument("--rectdomain", nargs=4, type=float, metavar=("MINLAT", "MAXLAT", "MINLON", "MAXLON"))
    g.add_argument("--circdomain", nargs=4, type=float, metavar=("LAT", "LON", "MINRAD", "MAXRAD"))
    g.add_argument("--channel-priority", nargs="+", metavar="PATTERN",
                   help="download: channel patterns in order of preference (default HH? EH? HN?)")


def _association_options(g) -> None:
    g.add_argument("--pyrocko", action="store_true",
                   help="1-D travel times computed with Pyrocko from --velocity-model (instead of 0-D vp/vs)")
    g.add_argument("--velocity-model", type=Path, metavar="FILE",
                   help="layered velocity model (TauP .nd, VELEST .mod, CSV depth,vp,vs) for 1-D travel times")
    g.add_argument("--ogs", action="store_true",
                   help="the documented OGS (NE Italy) association default: PyOcto, OGS 1-D model, relocation")


def _later_stages(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("download, association, analysis")
    g.add_argument("--download", action="store_true", help="download the data from FDSN clients first")
    _download_options(g)
    g.add_argument("--pyocto", action="store_true", help="associate with PyOcto instead of GaMMA")
    _association_options(g)
    g.add_argument("--interactive", action="store_true", help="show each result as a plot and wait")
    _reference(p)


def _reference(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("comparison with a reference catalogue")
    g.add_argument("--reference", help="name of a reference catalogue in the lake (see import-catalog)")
    g.add_argument("--reference-file", nargs="+", type=Path, metavar="PATH",
                   help="catalogue files/folders to import under --reference first")
    g.add_argument("--pick-tolerance", type=float, help="pick match tolerance in s (default 0.5)")
    g.add_argument("--event-dt", type=float, help="event origin-time tolerance in s (default 2)")
    g.add_argument("--event-km", type=float, help="event epicentre tolerance in km (default 8)")
    g.add_argument("--report-dir", type=Path, help="folder for the Markdown/HTML report and plots")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``quakelake`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="quakelake",
        description="ML phase picks and event catalogues in a DuckDB/Parquet lakehouse.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the pipeline: [download ->] pick -> associate for a date range")
    for add in (_common, _selection, _picking, _later_stages, _compute):
        add(run)

    pick = sub.add_parser("pick", help="pick phases on a waveform archive into the lake")
    for add in (_common, _selection, _picking, _compute):
        add(pick)
    pick.add_argument("--reference", help="-T: reference catalogue (import-catalog --name) labelling the windows")

    download = sub.add_parser("download", help="download waveforms and station metadata from FDSN data centres")
    _common(download)
    _selection(download)
    _compute(download)
    g = download.add_argument_group("download")
    _download_options(g)
    g.add_argument("--force", action="store_true", default=None, help="download again files that exist")

    assoc = sub.add_parser("associate", help="associate picks (lake or --picks FILE) into events")
    _common(assoc)
    g = assoc.add_argument_group("association")
    dates = g.add_mutually_exclusive_group()
    dates.add_argument("-D", "--dates", nargs=2, metavar=("START", "END"), help="inclusive day range, YYMMDD YYMMDD")
    dates.add_argument("-J", "--julian", nargs=2, metavar=("START", "END"), help="inclusive range, YYDDD YYDDD")
    g.add_argument("-F", "--file", type=Path, help="station metadata (StationXML or CSV)")
    g.add_argument("--picks", type=Path, help="external pick table (CSV/Parquet: station id, phase, time[, probability])")
    g.add_argument("-M", "--models", nargs="+", help="associate the lake picks of these models (default all)")
    g.add_argument("-W", "--weights", nargs="+", help="... and these weights (default all)")
    g.add_argument("--pyocto", action="store_true", help="associate with PyOcto instead of GaMMA")
    _association_options(g)
    g.add_argument("--force", action="store_true", default=None, help="recompute days that have events")
    g.add_argument("--quakeml", type=Path, help="also write the events with their picks as QuakeML")
    g.add_argument("--export", type=Path, metavar="DIR", help="also write the per-day associated/ layout")
    _compute(assoc)

    exp = sub.add_parser("export", help="write lake picks/events as files (classified/, associated/, QuakeML)")
    _common(exp)
    dates = exp.add_mutually_exclusive_group()
    dates.add_argument("-D", "--dates", nargs=2, metavar=("START", "END"), help="inclusive day range, YYMMDD YYMMDD")
    dates.add_argument("-J", "--julian", nargs=2, metavar=("START", "END"), help="inclusive range, YYDDD YYDDD")
    exp.add_argument("--classified", type=Path, metavar="DIR", help="picks per day/network/station (CSV)")
    exp.add_argument("--associated", type=Path, metavar="DIR", help="events and their picks per day")
    exp.add_argument("--quakeml", type=Path, metavar="FILE", help="events with their picks as QuakeML")

    imp = sub.add_parser("import-catalog", help="import reference catalogue files into the lake")
    _common(imp)
    imp.add_argument("paths", nargs="+", type=Path, help="QuakeML, OGS .dat/.pun/.hpc/.txt, CSV files or folders")
    imp.add_argument("--name", required=True, help="name of the reference (several can coexist)")

    analyze = sub.add_parser("analyze", help="compare lake picks/events with a reference catalogue")
    _common(analyze)
    _reference(analyze)
    g = analyze.add_argument_group("what to compare")
    g.add_argument("--run-id", nargs="+", help="runs whose picks/events are compared (default all)")
    g.add_argument("-M", "--models", nargs="+", help="picker models to compare (default all)")
    g.add_argument("-W", "--weights", nargs="+", help="picker weights to compare (default all)")
    g.add_argument("--associator", nargs="+", help="associators to compare (default all)")
    g.add_argument("--interactive", action="store_true", help="show each plot in a window, one after another")

    sql = sub.add_parser("sql", help="run SQL over the lake and print the result as a table")
    _common(sql)
    sql.add_argument("query", help="SQL, e.g. \"SELECT phase, count(*) FROM picks GROUP BY ALL\"")
    sql.add_argument("--param", action="append", default=[], help="bound parameter for a ? in the query")
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table")
    sql.add_argument("--max-rows", type=int, default=100, help="rows to print in table format")

    train = sub.add_parser(
        "train", help="fine-tune a picker (or train a denoiser) on the archive and the lake's labelled picks",
        description="Fine-tune -M x -W on windows of the archive around labelled picks (analyst picks of "
                    "--reference, or the lake's picks above --min-probability) and save new named weights with "
                    "a model card in the SeisBench cache; pick with them through -W NAME. With --denoiser, train "
                    "SeisDAE on the archive's signal (high-SNR picks) and noise (no pick) windows instead.")
    _common(train)
    g = train.add_argument_group("data")
    g.add_argument("-d", "--directory", type=Path, help="waveform archive the windows are cut from")
    dates = g.add_mutually_exclusive_group()
    dates.add_argument("-D", "--dates", nargs=2, metavar=("START", "END"), help="inclusive day range, YYMMDD YYMMDD")
    dates.add_argument("-J", "--julian", nargs=2, metavar=("START", "END"), help="inclusive range, YYDDD YYDDD")
    g.add_argument("-N", "--network", nargs="+", help="network codes (FDSN wildcards)")
    g.add_argument("-S", "--station", nargs="+", help="station codes (FDSN wildcards)")
    g.add_argument("-C", "--channel", nargs="+", help="channel codes (FDSN wildcards)")
    g = train.add_argument_group("labels and splits")
    g.add_argument("--reference", help="reference catalogue (import-catalog --name) whose picks are the labels")
    _tuning_options(g)
    g = train.add_argument_group("training")
    g.add_argument("-M", "--models", nargs=1, metavar="MODEL", help="model class to fine-tune (PhaseNet, PhaseNetLight)")
    g.add_argument("-W", "--weights", nargs=1, metavar="WEIGHTS", help="parent weights (default original)")
    g.add_argument("-b", "--batch", type=int, help="windows per optimisation step")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device (auto takes CUDA)")
    g.add_argument("--denoiser", action="store_true", help="train a SeisDAE denoiser instead of fine-tuning a picker")
    g.add_argument("--min-snr", type=float, help="denoiser: signal windows whose P/S SNR reaches this, dB (default 10)")
    g.add_argument("--noise-margin", type=float, help="denoiser: noise windows this far from any pick, s (default 30)")

    tables = sub.add_parser("tables", help="list the lake's tables and their row counts")
    _common(tables)

    demo = sub.add_parser("demo", help="the whole available pipeline on a small real data set")
    _common(demo)
    demo.add_argument("--data", type=Path, help="folder of real miniSEED/SAC (default: $QUAKELAKE_DEMO_DATA)")
    demo.add_argument("-F", "--file", type=Path, help="station metadata (StationXML/CSV) to associate events")
    demo.add_argument("--reference-file", nargs="+", type=Path, metavar="PATH",
                      help="reference catalogue files (picks/events) to compare the demo's results with")
    return parser


def picker_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``picker`` alias: ``quakelake run`` with the original picker.py options."""
    parser = argparse.ArgumentParser(prog="picker", description="picker.py compatible front end of quakelake run")
    for add in (_common, _selection, _picking, _later_stages, _compute):
        add(parser)
    return parser


# ------------------------------------------------------------------------------------ to config
def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Return the configuration values given on the command line (only those given)."""
    o: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = o
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    put("lake", getattr(args, "lake", None))
    put("directory", getattr(args, "directory", None))
    put("station_file", getattr(args, "file", None))
    if getattr(args, "dates", None):
        put("window.start", parse_gregorian(args.dates[0]))
        put("window.end", parse_gregorian(args.dates[1]))
    if getattr(args, "julian", None):
        put("window.start", parse_julian(args.julian[0]))
        put("window.end", parse_julian(args.julian[1]))
    put("selection.networks", getattr(args, "network", None))
    put("selection.stations", getattr(args, "station", None))
    put("selection.channels", getattr(args, "channel", None))
    put("pick.models", getattr(args, "models", None))
    put("pick.weights", getattr(args, "weights", None))
    put("pick.p_threshold", getattr(args, "pwave", None))
    put("pick.s_threshold", getattr(args, "swave", None))
    put("pick.batch_size", getattr(args, "batch", None))
    put("pick.device", getattr(args, "device", None))
    if isinstance(getattr(args, "denoiser", None), str):  # `train --denoiser` is a switch, not a name
        put("pick.denoiser", args.denoiser)
    put("execution.runner", getattr(args, "runner", None))
    put("execution.workers", getattr(args, "workers", None))
    put("execution.address", getattr(args, "address", None))
    put("force", getattr(args, "force", None))
    if getattr(args, "download", False) or getattr(args, "command", "") == "download":
        o.setdefault("download", {})
        put("download.clients", getattr(args, "client", None))
        put("download.token_file", getattr(args, "key", None))
        put("download.channel_priorities", getattr(args, "channel_priority", None))
        if getattr(args, "rectdomain", None):
            put("download.rectdomain", dict(zip(
                ("minlatitude", "maxlatitude", "minlongitude", "maxlongitude"), args.rectdomain, strict=True)))
        if getattr(args, "circdomain", None):
            put("download.circdomain", dict(zip(("latitude", "longitude", "minradius", "maxradius"),
                                                args.circdomain, strict=True)))
    if getattr(args, "ogs", False):
        from quakelake.association import ogs_default

        o["associate"] = ogs_default().model_dump(mode="json")
    elif getattr(args, "pyocto", False):
        o["associate"] = {"associator": "pyocto"}
    if getattr(args, "velocity_model", None):
        o.setdefault("associate", {})["velocity"] = {"kind": "1d", "model_file": args.velocity_model}
    put("analyze.reference", getattr(args, "reference", None))
    put("analyze.reference_paths", getattr(args, "reference_file", None))
    put("analyze.match.pick_tolerance_s", getattr(args, "pick_tolerance", None))
    put("analyze.match.event_max_dt_s", getattr(args, "event_dt", None))
    put("analyze.match.event_max_km", getattr(args, "event_km", None))
    put("analyze.report_dir", getattr(args, "report_dir", None))
    put("timing", getattr(args, "timing", None))
    if getattr(args, "silent", False):
        put("verbosity", 0)
    elif getattr(args, "verbose", False):
        put("verbosity", 2)
    return o


def _refuse_unavailable(args: argparse.Namespace) -> None:
    if getattr(args, "groups", None):
        raise CliError(NOT_YET["groups"])
    if getattr(args, "pyrocko", False) and not (getattr(args, "velocity_model", None) or getattr(args, "ogs", False)):
        raise CliError("--pyrocko computes 1-D travel times from a layered model: add --velocity-model FILE "
                       "(TauP .nd, VELEST .mod or CSV depth,vp,vs), or --ogs for the OGS model")
    if getattr(args, "command", "") != "download" and not getattr(args, "download", False):
        for name, flag in (("client", "--client"), ("key", "-K/--key"), ("rectdomain", "--rectdomain"),
                           ("circdomain", "--circdomain"), ("channel_priority", "--channel-priority")):
            if getattr(args, name, None):
                raise CliError(f"{flag} belongs to the download stage: add --download")


def load_config(args: argparse.Namespace) -> RunConfig:
    """Return the run configuration: defaults < ``-c`` file < blocks named on the command line < options.

    A ``--denoiser`` that is neither cached nor fetchable fails here, before any work starts.
    """
    cfg = _load_config(args)
    if cfg.pick.denoiser and getattr(args, "command", "run") in ("run", "pick"):
        from quakelake.denoise import check_available

        check_available(cfg.pick.denoiser)
    return cfg


def _load_config(args: argparse.Namespace) -> RunConfig:
    overrides = overrides_from_args(args)
    if getattr(args, "lake_block", None) and "lake" not in overrides:
        from quakelake.blocks import load_lake

        overrides["lake"] = load_lake(args.lake_block)
    if getattr(args, "compute_block", None):
        from quakelake.blocks import load_compute

        block = load_compute(args.compute_block).model_dump(exclude_none=True)
        overrides["execution"] = {**block, **overrides.get("execution", {})}
    return build_config(getattr(args, "config", None), overrides)


def _quiet_prefect(cfg: RunConfig) -> None:
    # Read by Prefect at import: set before any flow module is imported.
    level = {0: "ERROR", 1: "WARNING", 2: "INFO"}[cfg.verbosity]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_ROOT_LEVEL", level)


# ------------------------------------------------------------------------------------- commands
def cmd_pick(args: argparse.Namespace) -> int:
    """Run the pick flow."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the folder with the raw waveforms to pick")
    if not cfg.directory.is_dir():
        raise CliError(f"-d/--directory: {cfg.directory} is not a folder")
    if getattr(args, "train", False):
        cfg = fine_tune_before_picking(args, cfg)
    _quiet_prefect(cfg)
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.runners import make_task_runner

    t0 = time.perf_counter()
    summary = pick_phases.with_options(task_runner=make_task_runner(cfg.execution))(cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.pick, cfg.force,
                          progress=cfg.verbosity > 0)
    print_summary(summary, cfg, time.perf_counter() - t0)
    return 0


def print_summary(summary: dict, cfg: RunConfig, seconds: float) -> None:
    """Print a run summary (one line in silent mode)."""
    line = (f"run {summary['run_id']}: {summary['units']} units (done {summary['done']}, skipped "
            f"{summary['skipped']}, failed {summary['failed']}), picks {summary['picks_per_phase']}, "
            f"unreadable files {summary['unreadable_files']} -> lake {cfg.lake}")
    print(line)
    for w in summary.get("skipped_weights", []):
        print(f"warning: {w}", file=sys.stderr)
    if cfg.timing:
        for stage, s in summary["seconds"].items():
            print(f"  {stage:<12} {s:8.2f} s")
        print(f"  {'total':<12} {seconds:8.2f} s")


def cmd_sql(args: argparse.Namespace) -> int:
    """Run SQL over the lake and print it."""
    from quakelake.lakehouse import Lake

    cfg = load_config(args)
    frame = Lake(cfg.lake).query(args.query, args.param or None)
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    elif args.format == "json":
        print(frame.to_json(orient="records", date_format="iso"))
    else:
        print(format_table(frame, args.max_rows))
    return 0


def format_table(frame, max_rows: int = 100) -> str:
    """Return ``frame`` as an aligned text table with a row count."""
    import pandas as pd

    with pd.option_context("display.max_rows", max_rows, "display.max_columns", None,
                           "display.width", 200, "display.max_colwidth", 60):
        body = frame.to_string(index=False, max_rows=max_rows) if len(frame) else "(no rows)"
    return f"{body}\n({len(frame)} row{'s' if len(frame) != 1 else ''})"


def cmd_tables(args: argparse.Namespace) -> int:
    """List tables with data and their row counts."""
    from quakelake.lakehouse import Lake

    cfg = load_config(args)
    lake = Lake(cfg.lake)
    for name in lake.tables():
        n = lake.query(f'SELECT count(*) AS n FROM "{name}"')["n"][0]
        print(f"{name:<18} {n:>12,} rows  {len(lake.files(name)):>6} files")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole available pipeline on a small real data set into the lake."""
    from quakelake import demo

    reference_files = args.reference_file
    args.reference_file = None  # handled by the demo, not by the configuration
    return demo.run_demo(args.data, load_config(args), reference_files)


def train_params(args: argparse.Namespace, cfg: RunConfig) -> dict[str, Any]:
    """Return the training parameters given on the command line (the models' defaults fill the rest)."""
    o: dict[str, Any] = {}
    reference = getattr(args, "reference", None) or cfg.analyze.reference
    values = {
        "reference": reference,
        "labels": getattr(args, "labels", None) or ("reference" if reference else "picks"),
        "min_probability": getattr(args, "min_probability", None),
        "holdout_stations": getattr(args, "holdout_stations", None),
        "holdout_days": [parse_gregorian(d, "--holdout-days") for d in args.holdout_days]
        if getattr(args, "holdout_days", None) else None,
        "name": getattr(args, "name", None),
        "epochs": getattr(args, "epochs", None),
        "learning_rate": getattr(args, "learning_rate", None),
        "batch_size": getattr(args, "batch", None) if getattr(args, "command", "") == "train" else None,
        "window_s": getattr(args, "window", None),
        "seed": getattr(args, "seed", None),
        "device": getattr(args, "device", None),
        "min_snr_db": getattr(args, "min_snr", None),
        "noise_margin_s": getattr(args, "noise_margin", None),
    }
    o.update({k: v for k, v in values.items() if v is not None})
    return o


def fine_tune_before_picking(args: argparse.Namespace, cfg: RunConfig) -> RunConfig:
    """-T/--train: fine-tune the first model x weights, then return ``cfg`` with the new weights in the grid."""
    from quakelake import training

    if cfg.directory is None or not cfg.directory.is_dir():
        raise CliError("-T/--train: -d/--directory must be the archive to cut training windows from")
    values = train_params(args, cfg)
    if cfg.analyze.reference and cfg.analyze.reference_paths:
        from quakelake.catalogs import import_catalog

        import_catalog(cfg.lake, cfg.analyze.reference_paths, cfg.analyze.reference)
    values = {k: v for k, v in values.items() if k in training.TrainParams.model_fields}
    params = build_config(None, {"model": cfg.pick.models[0], "weights": cfg.pick.weights[0], **values},
                          model=training.TrainParams)
    card = training.train_picker(cfg.lake, cfg.directory, params, selection=cfg.selection, days=cfg.window)
    print_card(card)
    return cfg.model_copy(update={"pick": training.pick_params_with(cfg.pick, card["name"])})


def print_card(card: dict[str, Any]) -> None:
    """Print what a training run produced: weights name, windows, loss curve, validation."""
    first, last = card["history"][0], card["history"][-1]
    print(f"trained {card['model']}/{card['name']} (parent {card['parent_weights']}) on {card['windows']} "
          f"windows in {card['seconds']} s on {card['device']}: validation loss {first['val_loss']:.4f} -> "
          f"{last['val_loss']:.4f}")
    for key in ("validation_parent", "validation"):
        if key in card:
            v = card[key]
            print(f"  {key:<18} recall {v['recall']:.3f}  precision {v['precision']:.3f}  "
                  f"residual median {v['residual_median_s']:+.3f} s")
    print(f"  weights: {card['weights_path']}")


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a picker, or train a denoiser, on the archive and the lake's labelled picks."""
    from quakelake import denoise, training

    cfg = load_config(args)
    if cfg.directory is None or not cfg.directory.is_dir():
        raise CliError("-d/--directory: give the waveform archive to cut training windows from")
    values = train_params(args, cfg)
    if args.denoiser:
        if args.models and args.models[0] != "SeisDAE":
            raise CliError(f"-M/--models: a denoiser is trained as SeisDAE, not {args.models[0]!r}")
        values = {k: v for k, v in values.items() if k in denoise.DenoiserTrainParams.model_fields}
        params = build_config(None, values, model=denoise.DenoiserTrainParams)
        card = denoise.train_denoiser(cfg.lake, cfg.directory, params, cfg.selection, cfg.window)
        print_card(card)
        print(f"  denoise before picking with --denoiser {card['model']}/{card['name']}")
        return 0
    values = {k: v for k, v in values.items() if k in training.TrainParams.model_fields}
    params = build_config(None, {"model": (args.models or ["PhaseNet"])[0], "weights": (args.weights or ["original"])[0],
                                 **values}, model=training.TrainParams)
    card = training.train_picker(cfg.lake, cfg.directory, params, selection=cfg.selection, days=cfg.window)
    print_card(card)
    print(f"  pick with -M {card['model']} -W {card['name']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline: [download ->] pick [-> analyze] for a date range."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if getattr(args, "train", False):
        cfg = fine_tune_before_picking(args, cfg)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the waveform archive (the download target with --download)")
    if cfg.download is None and not cfg.directory.is_dir():
        raise CliError(f"-d/--directory: {cfg.directory} is not a folder (add --download to fill it)")
    if cfg.download is not None and (cfg.window.start is None or cfg.window.end is None):
        raise CliError("--download needs a date range: give -D/--dates or -J/--julian")
    _quiet_prefect(cfg)
    from quakelake.flows.pipeline import run_pipeline

    t0 = time.perf_counter()
    out = run_pipeline(cfg)
    if "download" in out:
        print_download(out["download"])
    print_summary(out["pick"], cfg, time.perf_counter() - t0)
    for summary in out.get("associate", []):
        print_association(summary)
    if cfg.associate is not None and not out.get("associate"):
        print("association skipped: no station coordinates (pass -F/--file stations.xml|csv)", file=sys.stderr)
    if "analyze" in out:
        print_analysis(out["analyze"], args)
    if getattr(args, "interactive", False):
        from quakelake.plotting import show_one_by_one
        from quakelake.review import station_day_views

        shown = show_one_by_one(station_day_views(cfg.lake, cfg.directory, cfg.window, cfg.selection,
                                                  cfg.pick, cfg.analyze.reference))
        print(f"reviewed {shown} instrument-days")
    return 0


def cmd_associate(args: argparse.Namespace) -> int:
    """Associate picks into events (lake picks of each model x weights, or an external pick table)."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.associate is None:
        raise CliError("the configuration disables association (associate: null); remove that to associate")
    if args.picks is not None and not args.picks.is_file():
        raise CliError(f"--picks: {args.picks} is not a file")
    if args.picks is not None and cfg.station_file is None:
        raise CliError("--picks needs station coordinates: give -F/--file stations.xml|csv")
    _quiet_prefect(cfg)
    from quakelake.flows.associate import associate_events
    from quakelake.flows.runners import make_task_runner
    from quakelake.lakehouse import Lake

    flow_fn = associate_events.with_options(task_runner=make_task_runner(cfg.execution))
    sources: list[tuple[str | None, str | None]] = [(None, None)]
    if args.picks is None and Lake(cfg.lake).has_files("picks"):
        combos = Lake(cfg.lake).query("SELECT DISTINCT model, weights FROM picks ORDER BY ALL")
        sources = [(m, w) for m, w in combos.itertuples(index=False)
                   if (not args.models or m in args.models) and (not args.weights or w in args.weights)]
        if not sources:
            raise CliError(f"no picks of models {args.models} x weights {args.weights} in lake {cfg.lake}")
    for model, weights in sources:
        summary = flow_fn(cfg.lake, cfg.window, cfg.associate, picks_file=args.picks,
                          station_file=cfg.station_file, model=model, weights=weights, force=cfg.force)
        print_association(summary)
        export_events(cfg.lake, summary["run_id"], args.quakeml, args.export)
    return 0


def print_association(summary: dict) -> None:
    """Print an association summary line."""
    print(f"associate {summary['run_id']} ({summary['associator']}, {summary['pick_source']}): "
          f"{summary['days']} days (done {summary['done']}, skipped {summary['skipped']}, failed "
          f"{summary['failed']}), {summary['events']} events")
    if summary.get("unknown_stations"):
        print(f"warning: picks on stations without coordinates: {', '.join(summary['unknown_stations'])}",
              file=sys.stderr)


def export_events(lake_root: Path, run_id: str, quakeml: Path | None, folder: Path | None) -> None:
    """Write the events of the association run ``run_id`` (incl. days it found already done) out."""
    if quakeml is None and folder is None:
        return
    from quakelake.export import write_associated, write_quakeml
    from quakelake.lakehouse import Lake

    lake = Lake(lake_root)
    fp = lake.query("SELECT json_extract_string(config_json, '$.config_fingerprint') AS fp, "
                    "json_extract_string(config_json, '$.pick_source') AS src FROM runs WHERE run_id = ?",
                    [run_id])
    where, params_ = "config_fingerprint = ? AND pick_source = ?", [fp["fp"][0], fp["src"][0]]
    events = lake.read("events", where, params_) if lake.has_files("events") else lake.read("events")
    assignments = lake.read("assignments", "config_fingerprint = ?", [fp["fp"][0]]) \
        if lake.has_files("assignments") else lake.read("assignments")
    assignments = assignments[assignments["event_id"].isin(events["event_id"])]
    if quakeml is not None:
        print(f"QuakeML: {write_quakeml(events, assignments, quakeml)} ({len(events)} events)")
    if folder is not None:
        print(f"associated/ layout: {len(write_associated(events, assignments, folder))} files under {folder}")


def cmd_export(args: argparse.Namespace) -> int:
    """Write the lake's picks and events (optionally for a day range) as files."""
    from quakelake.export import write_associated, write_classified, write_quakeml
    from quakelake.lakehouse import Lake

    if not (args.classified or args.associated or args.quakeml):
        raise CliError("export: say what to write: --classified DIR, --associated DIR and/or --quakeml FILE")
    cfg = load_config(args)
    lake, w = Lake(cfg.lake), cfg.window
    start = w.start or dt.date.min
    end = w.end or dt.date.max

    def rows(table: str):
        if not lake.has_files(table):
            return lake.read(table)
        return lake.read(table, "day BETWEEN ? AND ?", [start, end])

    if args.classified:
        files = write_classified(rows("picks"), args.classified)
        print(f"classified/: {len(files)} files under {args.classified}")
    if args.associated or args.quakeml:
        events, assignments = rows("events"), rows("assignments")
        if args.associated:
            print(f"associated/: {len(write_associated(events, assignments, args.associated))} files under "
                  f"{args.associated}")
        if args.quakeml:
            print(f"QuakeML: {write_quakeml(events, assignments, args.quakeml)} ({len(events)} events)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download waveforms and station metadata into an SDS archive."""
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the archive folder to download into")
    if cfg.window.start is None or cfg.window.end is None:
        raise CliError("download needs a date range: give -D/--dates or -J/--julian")
    _quiet_prefect(cfg)
    from quakelake.flows.download import download_waveforms
    from quakelake.flows.runners import make_task_runner

    flow_fn = download_waveforms.with_options(task_runner=make_task_runner(cfg.execution))
    print_download(flow_fn(cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.download, cfg.force))
    return 0


def print_download(summary: dict) -> None:
    """Print a download summary line."""
    print(f"download {summary['run_id']}: {summary['units']} station-days (ok {summary['ok']}, skipped "
          f"{summary['skipped']}, no data {summary['no_data']}, failed {summary['failed']}), "
          f"{summary['bytes'] / 1e6:.1f} MB -> {summary['archive']}")
    for err in summary.get("client_errors", []) or []:
        print(f"warning: {err}", file=sys.stderr)


def cmd_import_catalog(args: argparse.Namespace) -> int:
    """Import reference catalogue files into the lake."""
    from quakelake.catalogs import import_catalog

    cfg = load_config(args)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CliError(f"import-catalog: no such file or folder: {', '.join(missing)}")
    counts = import_catalog(cfg.lake, args.paths, args.name)
    print(f"reference {counts['name']!r}: {counts['events']} events, {counts['picks']} picks from "
          f"{counts['files']} files -> lake {cfg.lake}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Compare the lake's picks and events with a reference catalogue."""
    cfg = load_config(args)
    if not cfg.analyze.reference:
        raise CliError("--reference NAME: the reference catalogue to compare with (see import-catalog)")
    _quiet_prefect(cfg)
    from quakelake.evaluation import RunSelection
    from quakelake.flows.analyze import analyze_run

    selection = RunSelection(run_ids=args.run_id or [], models=args.models or [], weights=args.weights or [],
                             associators=args.associator or [])
    summary = analyze_run(cfg.lake, cfg.analyze.reference, selection, cfg.analyze.match,
                          reference_paths=cfg.analyze.reference_paths or None, report_dir=cfg.analyze.report_dir)
    print_analysis(summary, args)
    return 0


def print_analysis(summary: dict, args: argparse.Namespace) -> None:
    """Print the metrics of an analysis and show its plots with --interactive."""
    from quakelake.lakehouse import Lake

    lake = Lake(getattr(args, "lake", None) or "lake")
    metrics = lake.query(
        "SELECT level, model, weights, associator, phase, tp, fp, fn, round(precision, 3) AS precision, "
        "round(recall, 3) AS recall, round(residual_median, 3) AS residual_median FROM metrics "
        "WHERE run_id = ? AND group_by IN ('model,weights', 'model,weights,phase', 'associator') ORDER BY ALL",
        [summary["run_id"]],
    ) if lake.has_files("metrics") else None
    print(f"analysis {summary['run_id']} against {summary.get('reference')!r}:")
    if metrics is not None and len(metrics):
        print(format_table(metrics))
    if summary.get("report"):
        print(f"report: {summary['report']}")
    if getattr(args, "interactive", False):
        show_images(list((summary.get("figures") or {}).values()))


def show_images(paths: list[str]) -> int:
    """Show PNG files one after another, each window blocking until it is closed."""
    import matplotlib.pyplot as plt

    from quakelake.plotting import show_one_by_one

    figures = []
    for path in paths:
        fig, ax = plt.subplots(figsize=(10, 7))
        ax.imshow(plt.imread(path))
        ax.set_axis_off()
        ax.set_title(Path(path).stem)
        figures.append(fig)
    return show_one_by_one(figures)


COMMANDS = {
    "run": cmd_run, "pick": cmd_pick, "associate": cmd_associate, "export": cmd_export,
    "download": cmd_download, "import-catalog": cmd_import_catalog,
    "analyze": cmd_analyze, "sql": cmd_sql, "tables": cmd_tables, "demo": cmd_demo, "train": cmd_train,
}


def _dispatch(func, args: argparse.Namespace) -> int:
    from quakelake.lakehouse import LakeQueryError
    from quakelake.training import TrainingError

    try:
        return func(args)
    except (CliError, ConfigError, LakeQueryError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from quakelake.flows.pick import NoWaveforms
        from quakelake.picking import ModelUnavailable

        if isinstance(exc, ModelUnavailable):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, NoWaveforms):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _no_telemetry() -> None:
    # Offline observatories and HPC nodes: the temporary Prefect server must not phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``quakelake``."""
    _no_telemetry()
    args = build_parser().parse_args(argv)
    return _dispatch(COMMANDS[args.command], args)


def picker_main(argv: list[str] | None = None) -> int:
    """Entry point of ``picker``: the original picker.py options, run as ``quakelake run``."""
    _no_telemetry()
    args = picker_parser().parse_args(argv)
    args.command = "run"
    return _dispatch(cmd_run, args)


if __name__ == "__main__":
    sys.exit(main())
