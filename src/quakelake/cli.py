"""The ``quakelake`` command line (and the ``picker`` alias with the original picker.py options).

Expected failures (:class:`quakelake.errors.QuakeLakeError`) end in one ``error:`` line and exit
status 2 (bad input) or 1 (failed work); ``-v`` adds the traceback. Heavy modules (Prefect, the
science stack) are imported only by the commands that need them, so ``--help`` and the checks
made before any work starts answer quickly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from quakelake import params
from quakelake.errors import (
    EXIT_FAILED_WORK,
    EXIT_OK,
    BadInput,
    FailedWork,
    QuakeLakeError,
    one_line,
)
from quakelake.printing import (
    format_table,
    print_analysis,
    print_association,
    print_card,
    print_download,
    print_summary,
    print_timing,
    warn,
)

if TYPE_CHECKING:
    import pandas as pd

    from quakelake.config import RunConfig

GROUPS_HELP = (
    "run per named station group (sub-network): groups are defined under 'groups:' in the -c "
    "config file or in --groups-file as name: [NET.STA, NET.*, ...]; picking covers the stations of "
    "the chosen groups, association runs once per group, the analyzer adds metrics per group (default: no groups)"
)

# Which option sets a configuration parameter: errors name what the user typed.
OPTION_OF = {
    "lake": "--lake",
    "directory": "-d/--directory",
    "station_file": "-F/--file",
    "window": "-D/--dates (or -J/--julian)",
    "window.start": "-D/--dates (or -J/--julian)",
    "window.end": "-D/--dates (or -J/--julian)",
    "selection.networks": "-N/--network",
    "selection.stations": "-S/--station",
    "selection.channels": "-C/--channel",
    "pick.models": "-M/--models",
    "pick.weights": "-W/--weights",
    "pick.p_threshold": "-p/--pwave",
    "pick.s_threshold": "-s/--swave",
    "pick.batch_size": "-b/--batch",
    "pick.device": "--device",
    "execution.runner": "--runner",
    "execution.workers": "--workers",
    "execution.address": "--address",
    "download.clients": "--client",
    "download.token_file": "-K/--key",
    "download.channel_priorities": "--channel-priority",
    "download.rectdomain": "--rectdomain",
    "download.circdomain": "--circdomain",
    "analyze.reference": "--reference",
    "analyze.reference_paths": "--reference-file",
    "analyze.match.pick_tolerance_s": "--pick-tolerance",
    "analyze.match.event_max_dt_s": "--event-dt",
    "analyze.match.event_max_km": "--event-km",
    "analyze.report_dir": "--report-dir",
}

EXAMPLES = """\
examples:
  quakelake server start                  keep a local Prefect server (fast commands, runs in its UI)
  quakelake pick -d ../shared/data/phasenet_saltonsea_20201001/mseed -M PhaseNet -W original
  quakelake run -d ARCHIVE -D 201001 201002 -F stations.xml --reference scsn
  quakelake import-catalog events.xml --name scsn
  quakelake sql "SELECT model, weights, phase, count(*) FROM picks GROUP BY ALL"

exit status: 0 done, 1 the work failed (no waveforms, a service did not answer),
             2 bad input (an option, a file or the configuration); -v shows the traceback.
Prefect API: $PREFECT_API_URL when set, else the server of `quakelake server start`,
             else a temporary one per command (slow; see README "Prefect server").
"""


class CliError(BadInput):
    """A command-line problem the user can fix; printed without a traceback, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line (exit status 2), no usage dump."""

    def error(self, message: str):  # argparse's hook: never returns
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class _Help(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=110)


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
    g.add_argument(
        "--lake", type=Path, help="lake root folder, created when missing (default ./lake)"
    )
    g.add_argument(
        "--lake-block",
        metavar="NAME",
        help="take the lake folder from a QuakeLake Lake block (default: none)",
    )
    g.add_argument(
        "--catalog",
        metavar="URL",
        help="the lake's catalog: postgresql://USER@HOST/DB for many writers (password from "
        "PGPASSWORD or ~/.pgpass), recorded in the lake folder (default: catalog.sqlite in it)",
    )
    g.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON or YAML configuration file; options override it (default: none)",
    )
    g.add_argument(
        "--timing",
        action="store_true",
        default=None,
        help="report how long start-up and each stage took (default off)",
    )
    out = g.add_mutually_exclusive_group()
    out.add_argument(
        "--silent", action="store_true", help="print only errors and the final result (default off)"
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print each task (unit) and, on errors, the traceback (default off)",
    )


def _compute(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument(
        "--runner",
        choices=["threads", "dask-local", "slurm", "address"],
        help="task runner (default threads; slurm needs a compute block or config file)",
    )
    g.add_argument(
        "--workers", type=int, metavar="N", help="threads or Dask worker processes (default 2)"
    )
    g.add_argument(
        "--address",
        help="existing Dask scheduler, e.g. tcp://10.0.0.5:8786, for --runner address "
        "(default: none)",
    )
    g.add_argument(
        "--compute-block",
        metavar="NAME",
        help="take the task runner from a Compute Cluster block (default: none)",
    )


def _dates(g) -> None:
    dates = g.add_mutually_exclusive_group()
    dates.add_argument(
        "-D",
        "--dates",
        nargs=2,
        metavar=("START", "END"),
        help="inclusive Gregorian day range, YYMMDD YYMMDD (default: every day found)",
    )
    dates.add_argument(
        "-J",
        "--julian",
        nargs=2,
        metavar=("START", "END"),
        help="inclusive range as year + day-of-year, YYDDD YYDDD (default: every day found)",
    )


def _selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data selection")
    g.add_argument(
        "-d",
        "--directory",
        type=Path,
        help="folder with the raw waveforms, any layout (required; the target with --download)",
    )
    _dates(g)
    g.add_argument(
        "-N", "--network", nargs="+", help="network codes, FDSN wildcards (default * = any)"
    )
    g.add_argument("-S", "--station", nargs="+", help="station codes, FDSN wildcards (default *)")
    g.add_argument(
        "-C", "--channel", nargs="+", help="channel codes, FDSN wildcards, e.g. HH? EH? (default *)"
    )
    _group_options(g)
    g.add_argument(
        "-F",
        "--file",
        type=Path,
        help="station metadata file, StationXML or CSV (default: the lake's downloaded stations)",
    )


def _group_options(g) -> None:
    g.add_argument("-G", "--groups", nargs="+", metavar="NAME", help=GROUPS_HELP)
    g.add_argument(
        "--groups-file",
        type=Path,
        metavar="FILE",
        help="YAML/JSON file of station groups, name: [NET.STA, NET.*, ...] (see -G; default: groups of -c only)",
    )


def _picking(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("picking")
    g.add_argument(
        "-M",
        "--models",
        nargs="+",
        help="SeisBench models, e.g. PhaseNet EQTransformer (default PhaseNet)",
    )
    g.add_argument(
        "-W",
        "--weights",
        nargs="+",
        help="pretrained weights, every model x weights is run, e.g. instance original (default original)",
    )
    g.add_argument("-p", "--pwave", type=float, help="P probability threshold, 0-1 (default 0.3)")
    g.add_argument("-s", "--swave", type=float, help="S probability threshold, 0-1 (default 0.3)")
    g.add_argument("-b", "--batch", type=int, help="windows per model batch (default 256)")
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="torch device; auto picks CUDA (default auto)",
    )
    g.add_argument(
        "--engine",
        choices=["auto", "openvino", "onnx", "torch", "seisbench"],
        help="what runs the model: auto = QuakeLake's batched engine where it applies (on CPU the "
        "runtime measured fastest for the model; openvino/onnx/torch force one), seisbench = "
        "SeisBench classify (default auto)",
    )
    g.add_argument(
        "--precision",
        choices=["fp32", "fp16", "bf16"],
        help="network precision on CUDA; the CPU always runs fp32 (default fp32)",
    )
    g.add_argument(
        "--denoiser",
        nargs="?",
        const="DeepDenoiser/original",
        metavar="CLASS/WEIGHTS",
        help="also pick on data denoised first (default DeepDenoiser/original; SeisDAE/<name> from "
        "'quakelake train --denoiser'); its picks are extra members, weights '<W>+CLASS:WEIGHTS' "
        "(default off)",
    )
    g.add_argument(
        "--ensemble",
        nargs="?",
        const="mean",
        choices=["mean", "median", "semblance"],
        help="also store consensus picks of all -M x -W members as model 'ensemble' (needs two "
        "or more members): the members' probability curves aggregated by METHOD (default "
        "mean; semblance = mean weighted by the members' coherence, as ELEP) (default off)",
    )
    g.add_argument(
        "-T",
        "--train",
        action="store_true",
        help="fine-tune the first -M x -W on the lake's labelled picks (--reference, else the lake's "
        "picks as pseudo-labels) and pick with the new weights too (see quakelake train) (default off)",
    )
    g.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="recompute results that exist (default off)",
    )
    _tuning_options(p.add_argument_group("fine-tuning with -T (see quakelake train --help)"))


def _tuning_options(g) -> None:
    g.add_argument(
        "--labels",
        choices=["reference", "picks"],
        help="training labels: reference (default with --reference) or the lake's picks (pseudo-labels)",
    )
    g.add_argument(
        "--min-probability",
        type=float,
        help="pseudo-labels: lake picks at or above this (default 0.7)",
    )
    g.add_argument(
        "--holdout-stations",
        nargs="+",
        metavar="NET.STA",
        help="stations kept for validation (default every 4th station)",
    )
    g.add_argument(
        "--holdout-days",
        nargs="+",
        metavar="DAY",
        help="days kept for validation, YYMMDD ... (default: none)",
    )
    g.add_argument(
        "--name",
        help="name of the new weights in the SeisBench cache (default <weights>_<labels>_<YYYYMMDD>)",
    )
    g.add_argument("--epochs", type=int, help="passes over the training windows (default 5)")
    g.add_argument("--learning-rate", type=float, help="Adam learning rate (default 1e-3)")
    g.add_argument("--window", type=float, help="seconds per stored training window (default 60)")
    g.add_argument("--seed", type=int, help="seed of crops, splits and PyTorch (default 0)")


def _download_options(g) -> None:
    g.add_argument(
        "--client",
        nargs="+",
        help="FDSN clients in order, short names or base URLs (default INGV GFZ ORFEUS ETH IRIS)",
    )
    g.add_argument(
        "-K",
        "--key",
        type=Path,
        metavar="FILE",
        help="EIDA token file, never logged or stored (default $QUAKELAKE_EIDA_TOKEN)",
    )
    g.add_argument(
        "--rectdomain",
        nargs=4,
        type=float,
        metavar=("MINLAT", "MAXLAT", "MINLON", "MAXLON"),
        help="only stations inside this latitude/longitude box in degrees (default: anywhere)",
    )
    g.add_argument(
        "--circdomain",
        nargs=4,
        type=float,
        metavar=("LAT", "LON", "MINRAD", "MAXRAD"),
        help="only stations MINRAD..MAXRAD degrees from LAT, LON (default: anywhere)",
    )
    g.add_argument(
        "--channel-priority",
        nargs="+",
        metavar="PATTERN",
        help="channel patterns in order of preference (default HH? EH? HN?)",
    )


def _association_options(g) -> None:
    g.add_argument(
        "--pyrocko",
        action="store_true",
        help="1-D travel times computed with Pyrocko from --velocity-model (default: 0-D vp/vs)",
    )
    g.add_argument(
        "--velocity-model",
        type=Path,
        metavar="FILE",
        help="layered velocity model (TauP .nd, VELEST .mod, CSV depth,vp,vs) for 1-D travel "
        "times (default: none)",
    )
    g.add_argument(
        "--ogs",
        action="store_true",
        help="the documented OGS (NE Italy) association default: PyOcto, OGS 1-D model, relocation",
    )


def _later_stages(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("download, association, analysis")
    g.add_argument(
        "--download",
        action="store_true",
        help="download the data from FDSN clients first (default off)",
    )
    _download_options(g)
    g.add_argument("--pyocto", action="store_true", help="associate with PyOcto (default GaMMA)")
    _association_options(g)
    g.add_argument(
        "--interactive",
        action="store_true",
        help="after the run, show each station-day's waveforms and picks, one window at a time",
    )
    _reference(p)


def _reference(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("comparison with a reference catalogue")
    g.add_argument(
        "--reference",
        help="name of a reference catalogue in the lake, see import-catalog (default: none)",
    )
    g.add_argument(
        "--reference-file",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="catalogue files/folders to import under --reference first (default: none)",
    )
    g.add_argument(
        "--pick-tolerance", type=float, metavar="S", help="pick match tolerance in s (default 0.5)"
    )
    g.add_argument(
        "--event-dt", type=float, metavar="S", help="event origin-time tolerance in s (default 2)"
    )
    g.add_argument(
        "--event-km", type=float, metavar="KM", help="event epicentre tolerance in km (default 8)"
    )
    g.add_argument(
        "--earthquakes-only",
        action="store_true",
        help="leave reference events typed otherwise (quarry blasts, explosions) and their picks out "
        "(default off)",
    )
    g.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        help="folder for the Markdown/HTML report and plots (default: none)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return (
        f"quakelake {v('quakelake')} (seisbench {v('seisbench')}, obspy {v('obspy')}, "
        f"prefect {v('prefect')}, duckdb {v('duckdb')})"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``quakelake`` argument parser."""
    parser = _Parser(
        prog="quakelake",
        formatter_class=_Help,
        epilog=EXAMPLES,
        description="ML phase picks and event catalogues in a DuckDB/Parquet lakehouse.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, description=description or text, formatter_class=_Help, epilog=EXAMPLES
        )

    run = command(
        "run", "the pipeline: [download ->] pick -> associate [-> analyze] for a date range"
    )
    for add in (_common, _selection, _picking, _later_stages, _compute):
        add(run)

    pick = command("pick", "pick phases on a waveform archive into the lake")
    for add in (_common, _selection, _picking, _compute):
        add(pick)
    pick.add_argument(
        "--reference",
        help="-T: reference catalogue (import-catalog --name) labelling the windows (default: none, the lake's picks)",
    )

    download = command("download", "download waveforms and station metadata from FDSN data centres")
    _common(download)
    _selection(download)
    _compute(download)
    g = download.add_argument_group("download")
    _download_options(g)
    g.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="download again files that exist (default off)",
    )

    assoc = command("associate", "associate picks (lake or --picks FILE) into events")
    _common(assoc)
    g = assoc.add_argument_group("association")
    _dates(g)
    g.add_argument(
        "-F",
        "--file",
        type=Path,
        help="station metadata, StationXML or CSV (default: the lake's downloaded stations)",
    )
    g.add_argument(
        "--picks",
        type=Path,
        metavar="FILE",
        help="external pick table, CSV/Parquet: station id, phase, time[, probability] (default: lake picks)",
    )
    g.add_argument(
        "-M", "--models", nargs="+", help="associate the lake picks of these models (default all)"
    )
    g.add_argument("-W", "--weights", nargs="+", help="... and these weights (default all)")
    g.add_argument("--pyocto", action="store_true", help="associate with PyOcto (default GaMMA)")
    _association_options(g)
    _group_options(g)
    g.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="recompute days that have events (default off)",
    )
    g.add_argument(
        "--quakeml",
        type=Path,
        metavar="FILE",
        help="also write the events with their picks as QuakeML (default: none)",
    )
    g.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="also write the per-day associated/ layout (default: none)",
    )
    _compute(assoc)

    exp = command("export", "write lake picks/events as files (classified/, associated/, QuakeML)")
    _common(exp)
    _dates(exp)
    exp.add_argument(
        "--classified",
        type=Path,
        metavar="DIR",
        help="picks per day/network/station as CSV (default: none)",
    )
    exp.add_argument(
        "--associated",
        type=Path,
        metavar="DIR",
        help="events and their picks per day (default: none)",
    )
    exp.add_argument(
        "--quakeml",
        type=Path,
        metavar="FILE",
        help="events with their picks as QuakeML (default: none)",
    )
    exp.add_argument(
        "--associator",
        choices=["gamma", "pyocto"],
        help="events of this associator's latest catalogue (default: the latest catalogue)",
    )
    exp.add_argument(
        "--run-id", help="events of the catalogue of this association run (default: the latest)"
    )

    imp = command("import-catalog", "import reference catalogue files into the lake")
    _common(imp)
    imp.add_argument(
        "paths", nargs="+", type=Path, help="QuakeML, OGS .dat/.pun/.hpc/.txt, CSV files or folders"
    )
    imp.add_argument(
        "--name", required=True, help="name of the reference; several can coexist (required)"
    )

    analyze = command("analyze", "compare lake picks/events with a reference catalogue")
    _common(analyze)
    _reference(analyze)
    g = analyze.add_argument_group("what to compare")
    g.add_argument("--run-id", nargs="+", help="runs whose picks/events are compared (default all)")
    g.add_argument("-M", "--models", nargs="+", help="picker models to compare (default all)")
    g.add_argument("-W", "--weights", nargs="+", help="picker weights to compare (default all)")
    g.add_argument("--associator", nargs="+", help="associators to compare (default all)")
    _group_options(g)
    g.add_argument(
        "--interactive",
        action="store_true",
        help="show each plot in a window, one after another (default off)",
    )

    sql = command("sql", "run SQL over the lake and print the result as a table")
    _common(sql)
    sql.add_argument("query", help='SQL, e.g. "SELECT phase, count(*) FROM picks GROUP BY ALL"')
    sql.add_argument(
        "--param",
        action="append",
        default=[],
        help="bound parameter for a ? in the query, repeat for several (default: none)",
    )
    sql.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table: aligned text, csv: comma-separated with a header, json: one object per "
        "row (default table)",
    )
    sql.add_argument(
        "--max-rows", type=int, default=100, help="rows to print in table format (default 100)"
    )
    sql.add_argument(
        "--as-of",
        metavar="RUN_ID|TIME",
        help="query the lake as it was right after run RUN_ID, or at TIME (ISO 8601, UTC) "
        "(default: now)",
    )

    lake = command(
        "lake",
        "look after the lake: history, check, compact, vacuum, migrate",
        description="history: the lake's snapshots (one per commit, with its run id); check: "
        "open every committed file and report damaged ones (--repair drops them so their units "
        "are computed again); compact: merge small files into large ones (resume keeps "
        "working); vacuum: delete files no snapshot reads (killed runs' orphans, compacted "
        "files; --expire-days also ends old snapshots); migrate: bring a lake of the layout "
        "before the catalog under one, without re-picking; attach: print the two lines any "
        "DuckDB client runs to open the lake; compare: picks per model x weights x phase and "
        "events per associator at two snapshots (--as-of RUN_ID [--to RUN_ID]).",
    )
    lake.add_argument(
        "action",
        choices=["history", "check", "compact", "vacuum", "migrate", "attach", "compare"],
    )
    lake.add_argument(
        "--as-of",
        metavar="RUN_ID|TIME",
        help="compare: the snapshot before (e.g. the run before a reprocessing) (default: none)",
    )
    lake.add_argument(
        "--to",
        metavar="RUN_ID|TIME",
        help="compare: the snapshot after (default: the lake now)",
    )
    _common(lake)
    lake.add_argument(
        "--repair", action="store_true", help="check: drop damaged files (default off)"
    )
    lake.add_argument(
        "--expire-days",
        type=float,
        help="vacuum: also expire snapshots older than this many days (default: keep all)",
    )
    lake.add_argument(
        "--grace-hours",
        type=float,
        default=1.0,
        help="vacuum: leave uncommitted files younger than this, a run may still commit them "
        "(default 1)",
    )

    train = command(
        "train",
        "fine-tune a picker (or train a denoiser) on the archive and the lake's labelled picks",
        description="Fine-tune -M x -W on windows of the archive around labelled picks (analyst picks of "
        "--reference, or the lake's picks above --min-probability) and save new named weights with "
        "a model card in the SeisBench cache; pick with them through -W NAME. With --denoiser, train "
        "SeisDAE on the archive's signal (high-SNR picks) and noise (no pick) windows instead.",
    )
    _common(train)
    g = train.add_argument_group("data")
    g.add_argument(
        "-d", "--directory", type=Path, help="waveform archive the windows are cut from (required)"
    )
    _dates(g)
    g.add_argument("-N", "--network", nargs="+", help="network codes, FDSN wildcards (default *)")
    g.add_argument("-S", "--station", nargs="+", help="station codes, FDSN wildcards (default *)")
    g.add_argument("-C", "--channel", nargs="+", help="channel codes, FDSN wildcards (default *)")
    g = train.add_argument_group("labels and splits")
    g.add_argument(
        "--reference",
        help="reference catalogue (import-catalog --name) whose picks are the labels (default: none)",
    )
    _tuning_options(g)
    g = train.add_argument_group("training")
    g.add_argument(
        "-M",
        "--models",
        nargs=1,
        metavar="MODEL",
        help="model class to fine-tune, PhaseNet or PhaseNetLight (default PhaseNet)",
    )
    g.add_argument(
        "-W", "--weights", nargs=1, metavar="WEIGHTS", help="parent weights (default original)"
    )
    g.add_argument("-b", "--batch", type=int, help="windows per optimisation step (default 32)")
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="torch device; auto takes CUDA (default auto)",
    )
    g.add_argument(
        "--denoiser",
        action="store_true",
        help="train a SeisDAE denoiser instead of fine-tuning a picker",
    )
    g.add_argument(
        "--min-snr",
        type=float,
        help="denoiser: signal windows whose P/S SNR reaches this, dB (default 10)",
    )
    g.add_argument(
        "--noise-margin",
        type=float,
        help="denoiser: noise windows this far from any pick, s (default 30)",
    )

    tables = command("tables", "list the lake's tables and their row counts")
    _common(tables)

    demo = command("demo", "the whole available pipeline on a small real data set")
    _common(demo)
    demo.add_argument(
        "--data", type=Path, help="folder of real miniSEED/SAC (default: $QUAKELAKE_DEMO_DATA)"
    )
    demo.add_argument(
        "-F",
        "--file",
        type=Path,
        help="station metadata (StationXML/CSV) to associate events (default: none)",
    )
    demo.add_argument(
        "--reference-file",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="reference catalogue files (picks/events) to compare the demo's results with "
        "(default: none)",
    )

    server = command(
        "server", "a local Prefect server that outlives one command: start, stop, status"
    )
    server.add_argument(
        "action",
        choices=["start", "stop", "status"],
        help="start it in the background, stop it, or say whether it runs",
    )
    server.add_argument("--port", type=int, default=4200, help="port on 127.0.0.1 (default 4200)")
    server.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="start: also keep N warm Dask worker processes (one thread each, PhaseNet loaded) "
        "that pick and run commands use when no --runner is given (default 0: none)",
    )
    out = server.add_mutually_exclusive_group()
    out.add_argument("--silent", action="store_true", help="print only errors (default off)")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="tracebacks on errors (default off)"
    )
    return parser


def picker_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``picker`` alias: ``quakelake run`` with the original picker.py options."""
    parser = _Parser(
        prog="picker",
        formatter_class=_Help,
        epilog=EXAMPLES,
        description="picker.py compatible front end of quakelake run",
    )
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
    if isinstance(
        getattr(args, "denoiser", None), str
    ):  # `train --denoiser` is a switch, not a name
        put("pick.denoiser", args.denoiser)
    put("ensemble.method", getattr(args, "ensemble", None))
    put("use_groups", getattr(args, "groups", None))
    put("groups_file", getattr(args, "groups_file", None))
    put("pick.engine", getattr(args, "engine", None))
    put("pick.precision", getattr(args, "precision", None))
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
            put(
                "download.rectdomain",
                dict(
                    zip(
                        ("minlatitude", "maxlatitude", "minlongitude", "maxlongitude"),
                        args.rectdomain,
                        strict=True,
                    )
                ),
            )
        if getattr(args, "circdomain", None):
            put(
                "download.circdomain",
                dict(
                    zip(
                        ("latitude", "longitude", "minradius", "maxradius"),
                        args.circdomain,
                        strict=True,
                    )
                ),
            )
    if getattr(args, "ogs", False):
        from quakelake.association_settings import ogs_default

        o["associate"] = ogs_default().model_dump(mode="json")
    elif getattr(args, "pyocto", False):
        o["associate"] = {"associator": "pyocto"}
    if getattr(args, "velocity_model", None):
        o.setdefault("associate", {})["velocity"] = {
            "kind": "1d",
            "model_file": args.velocity_model,
        }
    put("analyze.reference", getattr(args, "reference", None))
    put("analyze.reference_paths", getattr(args, "reference_file", None))
    put("analyze.match.pick_tolerance_s", getattr(args, "pick_tolerance", None))
    put("analyze.match.event_max_dt_s", getattr(args, "event_dt", None))
    put("analyze.match.event_max_km", getattr(args, "event_km", None))
    if getattr(args, "earthquakes_only", False):
        put("analyze.match.event_types", ["earthquake"])
    put("analyze.report_dir", getattr(args, "report_dir", None))
    put("timing", getattr(args, "timing", None))
    if getattr(args, "silent", False):
        put("verbosity", 0)
    elif getattr(args, "verbose", False):
        put("verbosity", 2)
    return o


def _refuse_unavailable(args: argparse.Namespace) -> None:
    if getattr(args, "pyrocko", False) and not (
        getattr(args, "velocity_model", None) or getattr(args, "ogs", False)
    ):
        raise CliError(
            "--pyrocko computes 1-D travel times from a layered model: add --velocity-model FILE "
            "(TauP .nd, VELEST .mod or CSV depth,vp,vs), or --ogs for the OGS model"
        )
    if getattr(args, "command", "") != "download" and not getattr(args, "download", False):
        for name, flag in (
            ("client", "--client"),
            ("key", "-K/--key"),
            ("rectdomain", "--rectdomain"),
            ("circdomain", "--circdomain"),
            ("channel_priority", "--channel-priority"),
        ):
            if getattr(args, name, None):
                raise CliError(f"{flag} belongs to the download stage: add --download")


def _flat_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += _flat_keys(value, f"{prefix}{key}.")
    return keys


def check_ensemble(cfg: RunConfig, trained: bool = False) -> None:
    """Refuse an ensemble of fewer than two model x weights members before any work starts.

    ``trained``: -T adds the fine-tuned weights of the first model to the grid.
    """
    if cfg.ensemble is not None:
        from quakelake.ensemble import check_members

        members = [f"{m}/{w}" for m in cfg.pick.models for w in cfg.pick.weights]
        check_members(members + ([f"{cfg.pick.models[0]}/fine-tuned"] if trained else []))


def _checked_groups(cfg: RunConfig) -> dict[str, list[str]]:
    """Return the -G groups, each checked against the stations this run can pick (before work)."""
    if not cfg.use_groups:
        return {}
    from quakelake import groups as station_groups
    from quakelake.stations import known_stations

    if cfg.download is not None and cfg.station_file is None:
        # names only: the archive is filled by the download
        return station_groups.chosen_groups(cfg.groups, cfg.groups_file, cfg.use_groups, None, "")
    stations, where = known_stations(cfg.station_file, cfg.directory, cfg.selection)
    return station_groups.chosen_groups(
        cfg.groups, cfg.groups_file, cfg.use_groups, stations, where
    )


def _lake_groups(cfg: RunConfig, check: bool = True) -> dict[str, list[str]]:
    """Return the -G groups, each checked against the stations with picks in the lake."""
    if not cfg.use_groups:
        return {}
    from quakelake import groups as station_groups
    from quakelake.stations import picked_stations

    stations = picked_stations(cfg.lake) if check else None
    where = f"the picks in lake {cfg.lake}"
    return station_groups.chosen_groups(
        cfg.groups, cfg.groups_file, cfg.use_groups, stations, where
    )


def _station_overlap(cfg: RunConfig, summaries: list[dict]) -> int:
    """Warn and return exit status 1 when the -F station file lists none of the stations with picks."""
    if cfg.station_file is None or not any(s.get("unknown_stations") for s in summaries):
        return 0
    from quakelake.stations import unlisted_picks

    message = unlisted_picks(cfg.station_file, cfg.lake)
    if message:
        warn(message)
    return 1 if message else 0


def load_config(args: argparse.Namespace) -> RunConfig:
    """Return the run configuration: defaults < ``-c`` file < blocks named on the command line < options.

    A ``--denoiser`` that is neither cached nor fetchable fails here, before any work starts.

    Raises:
        ConfigError: naming the option (or, for values from the file, the parameter) that is invalid.
    """
    cfg = _load_config(args)
    _adopt_catalog(args, cfg.lake)
    if cfg.pick.denoiser and getattr(args, "command", "run") in ("run", "pick"):
        from quakelake.denoise import check_available

        check_available(cfg.pick.denoiser)
    return cfg


def _adopt_catalog(args: argparse.Namespace, lake: Path) -> None:
    """Record ``--catalog`` in the lake folder so every later command and worker finds it."""
    if not getattr(args, "catalog", None):
        return
    from quakelake.lakehouse import Lake

    Lake(lake, catalog=args.catalog).adopt()


def _load_config(args: argparse.Namespace) -> RunConfig:
    from quakelake.flows.settings import resolve_settings

    overrides = overrides_from_args(args)
    given = set(_flat_keys(overrides))
    if "window.start" in given:
        given.add("window")
    names = {key: option for key, option in OPTION_OF.items() if key in given}
    if getattr(args, "julian", None):
        names.update(
            {k: "-J/--julian" for k in ("window", "window.start", "window.end") if k in names}
        )
    elif getattr(args, "dates", None):
        names.update(
            {k: "-D/--dates" for k in ("window", "window.start", "window.end") if k in names}
        )
    return resolve_settings(
        getattr(args, "config", None),
        overrides,
        lake_block=getattr(args, "lake_block", None),
        compute_block=getattr(args, "compute_block", None),
        names=names,
    )


# ------------------------------------------------------------------- checks before any work starts
def check_lake(lake: Path, must_exist: bool = False) -> None:
    """Refuse a lake path that is a file (or, for queries, a folder that holds no lake)."""
    lake = Path(lake)
    if lake.exists() and not lake.is_dir():
        raise CliError(
            f"--lake: {lake} is a file, not a lake folder; give a folder (created when missing)"
        )
    if must_exist:
        from quakelake.lakehouse import Lake

        if lake.is_dir() and Lake(lake).legacy():
            raise CliError(
                f"--lake: {lake} is a lake of the layout before the catalog; run quakelake "
                f"lake migrate --lake {lake} once (nothing is recomputed)"
            )
        if not lake.is_dir() or not Lake(lake).exists() or not Lake(lake).tables():
            raise CliError(
                f"--lake: {lake} holds no lake (no table has data); give the --lake folder of "
                "an earlier run, or fill it with pick/run/import-catalog"
            )


def check_station_file(path: Path | None) -> pd.DataFrame | None:
    """Return the stations of the -F file; refuse one that is missing, unreadable or lists none."""
    if path is None:
        return None
    from quakelake.stations import read_stations

    path = Path(path)
    if not path.is_file():
        raise CliError(
            f"-F/--file: station file {path} does not exist; pass StationXML or a CSV "
            "(network, station, latitude, longitude, elevation)"
        )
    try:
        stations = read_stations(path)
    except QuakeLakeError as exc:
        raise CliError(f"-F/--file: {one_line(exc)}") from exc
    except Exception as exc:  # ObsPy/pandas parse errors of a junk file
        raise CliError(
            f"-F/--file: {path} is neither StationXML nor a station CSV ({type(exc).__name__}: "
            f"{one_line(exc)[:200]}); pass StationXML or a CSV with network, station, latitude, "
            "longitude, elevation"
        ) from exc
    if not len(stations):
        raise CliError(
            f"-F/--file: {path} lists no station; pass the metadata of the archive's stations"
        )
    return stations


def check_reference(cfg: RunConfig) -> None:
    """Refuse a --reference name the lake does not hold when no --reference-file imports it."""
    name = cfg.analyze.reference
    if not name or cfg.analyze.reference_paths:
        missing = [str(p) for p in cfg.analyze.reference_paths if not Path(p).exists()]
        if missing:
            raise CliError(f"--reference-file: no such file or folder: {', '.join(missing)}")
        return
    held = sorted(
        {
            p.name.removeprefix("catalog=")
            for table in ("reference_events", "reference_picks")
            for p in (Path(cfg.lake) / table).glob("catalog=*")
            if p.is_dir()
        }
    )
    if name not in held:
        raise CliError(
            f"--reference: the lake {cfg.lake} holds no reference catalogue {name!r} "
            f"(it holds: {', '.join(held) or 'none'}); import it with import-catalog --name {name} "
            "or add --reference-file"
        )


def check_models(cfg: RunConfig) -> list[str]:
    """Refuse unknown SeisBench models before any work; return weights not cached offline.

    Weights that are not cached are not refused here (SeisBench may fetch them); the pick stage
    warns about each one it cannot load, with what the cache holds.
    """
    from quakelake.picking import check_models as check

    return check(cfg.pick.models, cfg.pick.weights)


def check_inputs(cfg: RunConfig, args: argparse.Namespace) -> list[str]:
    """Validate every path and name of a pick/run before work starts; return warnings to show."""
    check_lake(cfg.lake)
    stations = check_station_file(cfg.station_file)
    if stations is not None and cfg.download is None and cfg.directory is not None:
        from quakelake.stations import check_covers_archive
        from quakelake.waveforms import archive_stations

        check_covers_archive(
            stations,
            cfg.station_file,
            archive_stations(cfg.directory, cfg.selection),
            f"archive {cfg.directory}",
        )
    check_reference(cfg)
    if (
        cfg.download is not None
        and cfg.download.token_file is not None
        and not Path(cfg.download.token_file).expanduser().is_file()
    ):
        raise CliError(
            f"-K/--key: EIDA token file {cfg.download.token_file} does not exist; pass the file "
            "downloaded from the EIDA authentication service"
        )
    velocity = getattr(args, "velocity_model", None)
    if velocity is not None and not Path(velocity).is_file():
        raise CliError(
            f"--velocity-model: {velocity} does not exist; pass a TauP .nd, VELEST .mod or CSV file"
        )
    check_models(cfg)
    return []


# ---------------------------------------------------------------------------- Prefect, start-up
_T0 = time.perf_counter()


def _startup_seconds() -> float:
    """Return the seconds since this process started (interpreter, imports, checks)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _T0


def _quiet_prefect(cfg: RunConfig) -> str:
    """Settle the Prefect API and log levels before Prefect is imported; return which API is used."""
    from quakelake.server import resolve_api

    level = {0: "ERROR", 1: "WARNING", 2: "INFO"}[cfg.verbosity]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_ROOT_LEVEL", level)
    api = resolve_api()
    if api == "temporary":
        # Prefect's 20 s are too short for its temporary server on a busy login node.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if api == "temporary" and cfg.verbosity > 1:
        print(
            "note: no Prefect server configured: starting a temporary one for this command "
            "(quakelake server start keeps one running)",
            file=sys.stderr,
        )
    return api


def _use_warm_workers(cfg: RunConfig) -> RunConfig:
    """Return ``cfg`` picking on the warm workers of ``quakelake server start --workers N``.

    Only when the user chose no runner (option, file or block) and the warm cluster answers and
    fits this command (:func:`quakelake.server.warm_address`); the archive and lake paths are made
    absolute, as the workers run in another folder. Otherwise ``cfg`` unchanged.
    """
    from quakelake.server import warm_address

    if "runner" in cfg.execution.model_fields_set or cfg.execution.runner != "threads":
        return cfg
    address = warm_address()
    if not address:
        return cfg
    execution = cfg.execution.model_copy(update={"runner": "address", "address": address})
    update: dict[str, Any] = {"execution": execution, "lake": cfg.lake.resolve()}
    if cfg.directory is not None:
        update["directory"] = cfg.directory.resolve()
    if cfg.verbosity > 1:
        print(f"note: picking on the warm workers at {address}", file=sys.stderr)
    return cfg.model_copy(update=update)


class _DropExpectedErrors:
    """Console log filter: Prefect's failure logs of an expected error (the CLI prints it once)."""

    def filter(self, record) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, QuakeLakeError):
            return False
        text = record.getMessage() if record.levelno >= 40 else ""
        return not any(name in text for name in _expected_error_names())


def _expected_error_names() -> set[str]:
    names, todo = set(), [QuakeLakeError]
    while todo:
        cls = todo.pop()
        names.update((f"{cls.__name__}:", f"{cls.__name__}("))
        todo += cls.__subclasses__()
    return names


def _install_log_filter(verbosity: int) -> None:
    """Keep tracebacks of expected errors off the console unless -v (the Prefect UI still has them)."""
    if verbosity > 1:
        return
    import logging

    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.addFilter(_DropExpectedErrors())


def _timing(cfg: RunConfig, stages: dict[str, float], t0: float, flow: bool = True) -> None:
    """Print --timing: start-up, each stage, and what Prefect and the flow imports took besides.

    ``flow=False``: no flow ran (a rerun with nothing to do), so there is no Prefect line.
    """
    if not cfg.timing:
        return
    total = _startup_seconds()
    startup = total - (time.perf_counter() - t0)
    rest = total - startup - sum(stages.values())
    print_timing(
        {
            "start-up (Python, checks)": startup,
            **stages,
            **({"flow imports, Prefect runs": max(rest, 0.0)} if flow else {}),
        },
        total,
    )


# ------------------------------------------------------------------------------------- commands
def cmd_pick(args: argparse.Namespace) -> int:
    """Run the pick flow."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the folder with the raw waveforms to pick")
    if not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is not a folder; give the waveform archive"
        )
    for w in check_inputs(cfg, args):
        warn(w)
    groups = _checked_groups(cfg)
    check_ensemble(cfg, trained=getattr(args, "train", False))
    if getattr(args, "train", False):  # the first work: after every check
        cfg = fine_tune_before_picking(args, cfg)
    elif not cfg.force and cfg.ensemble is None:
        t0 = time.perf_counter()
        done = _nothing_to_pick(cfg, groups)
        if done is not None:
            print_summary(done, cfg.lake)
            _timing(cfg, {"pick: nothing to do": time.perf_counter() - t0}, t0, flow=False)
            return EXIT_OK
    _quiet_prefect(cfg)
    cfg = _use_warm_workers(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.runners import make_task_runner

    _install_log_filter(cfg.verbosity)
    flow_fn = pick_phases.with_options(task_runner=make_task_runner(cfg.execution))
    summary = flow_fn(
        cfg.directory,
        cfg.lake,
        cfg.window,
        cfg.selection,
        cfg.pick,
        cfg.force,
        progress=cfg.verbosity > 0,
        ensemble=cfg.ensemble,
        groups=groups or None,
    )
    print_summary(summary, cfg.lake)
    _timing(cfg, {f"pick: {k}": v for k, v in summary["seconds"].items()}, t0)
    return exit_status(summary)


def _nothing_to_pick(cfg: RunConfig, groups: dict[str, list[str]]) -> dict | None:
    """Return the summary of a pick run that finds every unit in the lake, before Prefect starts.

    An unchanged rerun is answered from the lake's ledger and the archive's headers alone: no
    flow run, nothing written (``--force`` recomputes). Anything to do returns None: the flow runs.
    """
    from quakelake.pick_plan import nothing_to_do

    summary = nothing_to_do(
        cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.pick, groups or None
    )
    if summary is not None and cfg.verbosity > 1:
        print(
            "nothing to do: every station-day x model/weights is in the lake with the same "
            "waveforms and settings (no flow run; --force recomputes)",
            file=sys.stderr,
        )
    return summary


def exit_status(*summaries: dict | list | None) -> int:
    """Return 1 when any stage summary counts a failed unit, else 0 (lists hold one per run)."""
    flat: list[dict] = []
    for s in summaries:
        if isinstance(s, list):
            flat.extend(x for x in s if isinstance(x, dict))
        elif isinstance(s, dict):
            flat.append(s)
    return EXIT_FAILED_WORK if any(int(s.get("failed", 0) or 0) > 0 for s in flat) else EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    """Run SQL over the lake and print it."""
    from quakelake.lakehouse import Lake

    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    # read-only: writes go through QuakeLake's own commands, never through SQL
    frame = Lake(cfg.lake).query(args.query, args.param or None, as_of=args.as_of, read_only=True)
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    elif args.format == "json":
        print(frame.to_json(orient="records", date_format="iso"))
    else:
        print(format_table(frame, args.max_rows))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """List tables with data and their row counts."""
    from quakelake.lakehouse import Lake

    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    lake = Lake(cfg.lake)
    for name in lake.tables():
        try:
            n = lake.query(f'SELECT count(*) AS n FROM "{name}"')["n"][0]
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
    if args.action not in ("migrate", "attach") and not lake.exists():
        raise CliError(
            f"--lake: {cfg.lake} has no catalog"
            + ("; run quakelake lake migrate first" if lake.legacy() else "; no lake there yet")
        )
    if args.action == "history":
        print(format_table(lake.history(), 10_000))
    elif args.action == "check":
        report = maintenance.check(lake, repair=args.repair)
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
        for kind, paths in removed.items():
            print(f"{kind:<10} {len(paths):>6} files removed")
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
        print(format_table(maintenance.compare(lake, args.as_of, args.to), 10_000))
    else:
        print(maintenance.catalog_attach_sql(lake))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole available pipeline on a small real data set into the lake."""
    from quakelake import demo

    reference_files = args.reference_file
    args.reference_file = None  # handled by the demo, not by the configuration
    cfg = load_config(args)
    check_lake(cfg.lake)
    check_station_file(cfg.station_file)
    _quiet_prefect(cfg)
    return demo.run_demo(args.data, cfg, reference_files)


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the training options given on the command line (None: not given)."""
    return {
        "reference": getattr(args, "reference", None),
        "labels": getattr(args, "labels", None),
        "min_probability": getattr(args, "min_probability", None),
        "holdout_stations": getattr(args, "holdout_stations", None),
        "holdout_days": [parse_gregorian(d, "--holdout-days") for d in args.holdout_days]
        if getattr(args, "holdout_days", None)
        else None,
        "name": getattr(args, "name", None),
        "epochs": getattr(args, "epochs", None),
        "learning_rate": getattr(args, "learning_rate", None),
        "batch_size": getattr(args, "batch", None)
        if getattr(args, "command", "") == "train"
        else None,
        "window_s": getattr(args, "window", None),
        "seed": getattr(args, "seed", None),
        "device": getattr(args, "device", None),
        "min_snr_db": getattr(args, "min_snr", None),
        "noise_margin_s": getattr(args, "noise_margin", None),
    }


def fine_tune_before_picking(args: argparse.Namespace, cfg: RunConfig) -> RunConfig:
    """-T/--train: fine-tune the first model x weights; return ``cfg`` with the new weights in the grid."""
    from quakelake.training import fine_tune_for_picking

    card, cfg = fine_tune_for_picking(cfg, train_options(args))
    print_card(card)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune a picker, or train a denoiser, on the archive and the lake's labelled picks."""
    from quakelake import denoise, training
    from quakelake.config import build_config

    cfg = load_config(args)
    if cfg.directory is None or not cfg.directory.is_dir():
        raise CliError("-d/--directory: give the waveform archive to cut training windows from")
    given = train_options(args)
    if args.denoiser:
        if args.models and args.models[0] != "SeisDAE":
            raise CliError(f"-M/--models: a denoiser is trained as SeisDAE, not {args.models[0]!r}")
        values = training.label_defaults(given, cfg.analyze.reference)
        fields = denoise.DenoiserTrainParams.model_fields
        params = build_config(
            None,
            {k: v for k, v in values.items() if k in fields},
            model=denoise.DenoiserTrainParams,
        )
        card = denoise.train_denoiser(cfg.lake, cfg.directory, params, cfg.selection, cfg.window)
        print_card(card)
        print(f"  denoise before picking with --denoiser {card['model']}/{card['name']}")
        return 0
    params = training.train_params(
        given,
        (args.models or ["PhaseNet"])[0],
        (args.weights or ["original"])[0],
        cfg.analyze.reference,
    )
    card = training.train_picker(
        cfg.lake, cfg.directory, params, selection=cfg.selection, days=cfg.window
    )
    print_card(card)
    print(f"  pick with -M {card['model']} -W {card['name']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline: [download ->] pick [-> associate] [-> analyze] for a date range."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError(
            "-d/--directory: give the waveform archive (the download target with --download)"
        )
    if cfg.download is None and not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is not a folder (add --download to fill it)"
        )
    if cfg.download is not None and (cfg.window.start is None or cfg.window.end is None):
        raise CliError("--download needs a date range: give -D/--dates or -J/--julian")
    if getattr(args, "interactive", False):
        from quakelake.plotting import require_display

        require_display("--interactive")
    for w in check_inputs(cfg, args):
        warn(w)
    _checked_groups(cfg)
    check_ensemble(cfg, trained=getattr(args, "train", False))
    if getattr(args, "train", False):  # the first work: after every check
        cfg = fine_tune_before_picking(args, cfg)
    elif not getattr(args, "interactive", False):
        t0 = time.perf_counter()
        done = _nothing_to_run(cfg)
        if done is not None:
            print_summary(done["pick"], cfg.lake)
            for summary in done.get("associate", []):
                print_association(summary, cfg.lake, cfg.window)
            _timing(cfg, {"run: nothing to do": time.perf_counter() - t0}, t0, flow=False)
            return _station_overlap(cfg, done.get("associate", []))
    _quiet_prefect(cfg)
    cfg = _use_warm_workers(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.pipeline import run_pipeline

    _install_log_filter(cfg.verbosity)
    out = run_pipeline(cfg)
    stages: dict[str, float] = {}
    if "download" in out:
        print_download(out["download"])
        stages.update({f"download: {k}": v for k, v in out["download"].get("seconds", {}).items()})
    print_summary(out["pick"], cfg.lake)
    stages.update({f"pick: {k}": v for k, v in out["pick"]["seconds"].items()})
    for summary in out.get("associate", []):
        print_association(summary, cfg.lake, cfg.window)
        stages[f"associate: {summary['pick_source']}"] = float(summary.get("seconds", 0.0))
    if cfg.associate is not None and not out.get("associate"):
        warn("association skipped: no station coordinates (pass -F/--file stations.xml|csv)")
    if "analyze" in out:
        print_analysis(out["analyze"], out["analyze"].get("lake") or cfg.lake)
        if "seconds" in out["analyze"]:
            stages["analyze"] = float(out["analyze"]["seconds"])
    if "seconds" in out:
        stages.update({f"{k} (stage)": v for k, v in out["seconds"].items()})
    _timing(cfg, stages, t0)
    if getattr(args, "interactive", False):
        from quakelake.plotting import show_one_by_one
        from quakelake.review import station_day_views

        shown = show_one_by_one(
            station_day_views(
                cfg.lake, cfg.directory, cfg.window, cfg.selection, cfg.pick, cfg.analyze.reference
            )
        )
        print(f"reviewed {shown} instrument-days")
    status = exit_status(out.get("download"), out.get("pick"), out.get("associate"))
    if status:
        print(
            'error: some units failed (see the failed counts above and `quakelake sql "SELECT * FROM units '
            "WHERE status = 'failed'\"`); run the same command again to retry them",
            file=sys.stderr,
        )
        return status
    if out.get("analyze", {}).get("warnings"):
        return 1  # nothing of the reference compared
    return _station_overlap(cfg, out.get("associate", []))


def _nothing_to_run(cfg: RunConfig) -> dict | None:
    """Return the stage summaries of a pipeline run that finds nothing to do, before Prefect starts.

    Pick and every association must each have nothing to do (a download, an ensemble, an
    analysis or ``--force`` always run the flow); None: the pipeline flow runs, as before.
    """
    from quakelake.associate_plan import pipeline_nothing_to_do

    done = pipeline_nothing_to_do(cfg)
    if done is not None and cfg.verbosity > 1:
        print(
            "nothing to do: every pick unit and association day is in the lake with the same "
            "inputs and settings (no flow run; --force recomputes)",
            file=sys.stderr,
        )
    return done


def cmd_associate(args: argparse.Namespace) -> int:
    """Associate picks into events (lake picks of each model x weights, or an external pick table)."""
    _refuse_unavailable(args)
    cfg = load_config(args)
    if cfg.associate is None:
        raise CliError(
            "-c/--config: the configuration disables association (associate: null); remove that "
            "to associate"
        )
    if args.picks is not None and not args.picks.is_file():
        raise CliError(f"--picks: {args.picks} is not a file")
    if args.picks is not None and cfg.station_file is None:
        raise CliError("--picks needs station coordinates: give -F/--file stations.xml|csv")
    check_lake(cfg.lake)
    check_station_file(cfg.station_file)
    velocity = getattr(args, "velocity_model", None)
    if velocity is not None and not Path(velocity).is_file():
        raise CliError(
            f"--velocity-model: {velocity} does not exist; pass a TauP .nd, VELEST .mod or CSV file"
        )
    groups = _lake_groups(cfg, check=args.picks is None)
    from quakelake.lakehouse import Lake

    sources: list[tuple[str | None, str | None]] = [(None, None)]
    if args.picks is None and Lake(cfg.lake).has_files("picks"):
        combos = Lake(cfg.lake).query("SELECT DISTINCT model, weights FROM picks ORDER BY ALL")
        sources = [
            (m, w)
            for m, w in combos.itertuples(index=False)
            if (not args.models or m in args.models) and (not args.weights or w in args.weights)
        ]
        if not sources:
            held = ", ".join(f"{m}/{w}" for m, w in combos.itertuples(index=False))
            raise CliError(
                f"-M/--models, -W/--weights: no picks of {' '.join(args.models or ['any'])} x "
                f"{' '.join(args.weights or ['any'])} in lake {cfg.lake} (it holds {held})"
            )
    if not cfg.force and args.quakeml is None and args.export is None:
        t0 = time.perf_counter()
        done = _nothing_to_associate(cfg, args.picks, sources, groups)
        if done is not None:
            for summary in done:
                print_association(summary, cfg.lake, cfg.window)
            _timing(cfg, {"associate: nothing to do": time.perf_counter() - t0}, t0, flow=False)
            return max(exit_status(*done), _station_overlap(cfg, done) if args.picks is None else 0)
    _quiet_prefect(cfg)
    from quakelake.export import export_run
    from quakelake.flows.associate import associate_events
    from quakelake.flows.runners import stage_runner

    _install_log_filter(cfg.verbosity)
    # Threads in this process unless execution.associate_on says the runner.
    flow_fn = associate_events.with_options(task_runner=stage_runner("associate", cfg.execution))
    summaries = []
    for model, weights in sources:
        for group, patterns in groups.items() if groups else [(None, None)]:
            summary = flow_fn(
                cfg.lake,
                cfg.window,
                cfg.associate,
                picks_file=args.picks,
                station_file=cfg.station_file,
                model=model,
                weights=weights,
                force=cfg.force,
                group=group,
                group_stations=patterns,
                magnitude=cfg.magnitude,
            )
            print_association(summary, cfg.lake, cfg.window)
            for line in export_run(cfg.lake, summary["run_id"], args.quakeml, args.export):
                print(line)
            summaries.append(summary)
    return max(
        exit_status(*summaries), _station_overlap(cfg, summaries) if args.picks is None else 0
    )


def _nothing_to_associate(
    cfg: RunConfig,
    picks_file: Path | None,
    sources: list[tuple[str | None, str | None]],
    groups: dict[str, list[str]],
) -> list[dict] | None:
    """Return the summaries of associate runs that find every day in the lake, before Prefect starts.

    One per pick set x group, as the flows would run; None as soon as one of them has work
    (:func:`quakelake.associate_plan.nothing_to_do`): then every flow runs, as before.
    """
    from quakelake.associate_plan import given_response_files, nothing_to_associate

    responses = given_response_files(None, cfg.station_file)
    summaries = nothing_to_associate(cfg, sources, groups, picks_file, responses)
    if summaries is None:
        return None
    if cfg.verbosity > 1:
        print(
            "nothing to do: every day is in the lake with the same picks, stations and settings "
            "(no flow run; --force recomputes)",
            file=sys.stderr,
        )
    return summaries


def cmd_export(args: argparse.Namespace) -> int:
    """Write the lake's picks and events (optionally for a day range) as files."""
    if not (args.classified or args.associated or args.quakeml):
        raise CliError(
            "export: say what to write: --classified DIR, --associated DIR and/or --quakeml FILE"
        )
    cfg = load_config(args)
    check_lake(cfg.lake, must_exist=True)
    from quakelake.export import write_associated, write_classified, write_quakeml
    from quakelake.lakehouse import Lake, queries

    lake, w = Lake(cfg.lake), cfg.window
    written = 0
    if args.classified:
        picks = queries.picks(lake, first_day=w.start, last_day=w.end)
        files = write_classified(picks, args.classified)
        written += len(picks)
        print(f"classified/: {len(files)} files ({len(picks)} picks) under {args.classified}")
    if args.associated or args.quakeml:
        from quakelake.export import catalogue_tables, select_catalogue

        events, label = select_catalogue(
            *queries.events_and_runs(lake, w.start, w.end), args.associator, args.run_id
        )
        tables = catalogue_tables(lake, events)
        assignments = tables.pop("assignments")
        written += len(events)
        print(f"catalogue: {label}")
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
        from quakelake.printing import days_text

        raise CliError(
            f"-D/--dates: the lake {cfg.lake} has no picks or events for {days_text(w)}; "
            'check the day range (quakelake sql "SELECT DISTINCT day FROM picks")'
        )
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download waveforms and station metadata into an SDS archive."""
    cfg = load_config(args)
    if cfg.directory is None:
        raise CliError("-d/--directory: give the archive folder to download into")
    if cfg.window.start is None or cfg.window.end is None:
        raise CliError("-D/--dates: download needs a date range: give -D/--dates or -J/--julian")
    if cfg.directory.exists() and not cfg.directory.is_dir():
        raise CliError(
            f"-d/--directory: {cfg.directory} is a file; give the archive folder to download into"
        )
    check_lake(cfg.lake)
    if (
        cfg.download is not None
        and cfg.download.token_file is not None
        and not Path(cfg.download.token_file).expanduser().is_file()
    ):
        raise CliError(
            f"-K/--key: EIDA token file {cfg.download.token_file} does not exist; pass the file "
            "downloaded from the EIDA authentication service"
        )
    _quiet_prefect(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.download import download_waveforms
    from quakelake.flows.runners import stage_runner

    # Downloads run in this process whatever --runner says: compute nodes have no internet.
    _install_log_filter(cfg.verbosity)
    flow_fn = download_waveforms.with_options(task_runner=stage_runner("download", cfg.execution))
    summary = flow_fn(cfg.directory, cfg.lake, cfg.window, cfg.selection, cfg.download, cfg.force)
    print_download(summary)
    _timing(cfg, {f"download: {k}": v for k, v in summary.get("seconds", {}).items()}, t0)
    status = exit_status(summary)
    if status:
        print(
            f"error: {summary['failed']} of {summary['units']} station-days failed to download (see the "
            "`downloads` table); run the same command again to retry them",
            file=sys.stderr,
        )
    return status


def cmd_import_catalog(args: argparse.Namespace) -> int:
    """Import reference catalogue files into the lake."""
    cfg = load_config(args)
    check_lake(cfg.lake)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CliError(f"import-catalog: no such file or folder: {', '.join(missing)}")
    from quakelake.catalogs import import_catalog

    counts = import_catalog(cfg.lake, args.paths, args.name)
    print(
        f"reference {counts['name']}: {counts['events']} events, {counts['picks']} picks from "
        f"{counts['files']} files -> lake {cfg.lake}"
    )
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Compare the lake's picks and events with a reference catalogue."""
    cfg = load_config(args)
    if not cfg.analyze.reference:
        raise CliError(
            "--reference NAME: the reference catalogue to compare with (see import-catalog)"
        )
    check_lake(cfg.lake, must_exist=not cfg.analyze.reference_paths)
    check_reference(cfg)
    if getattr(args, "interactive", False):
        from quakelake.plotting import require_display

        require_display("--interactive")
    groups = _lake_groups(cfg)
    _quiet_prefect(cfg)
    t0 = time.perf_counter()
    from quakelake.flows.analyze import analyze_run
    from quakelake.flows.runners import stage_runner
    from quakelake.params.evaluation import RunSelection

    _install_log_filter(cfg.verbosity)
    selection = RunSelection(
        run_ids=args.run_id or [],
        models=args.models or [],
        weights=args.weights or [],
        associators=args.associator or [],
    )
    flow_fn = analyze_run.with_options(task_runner=stage_runner("analyze", cfg.execution))
    summary = flow_fn(
        cfg.lake,
        cfg.analyze.reference,
        selection,
        cfg.analyze.match,
        reference_paths=cfg.analyze.reference_paths or None,
        report_dir=cfg.analyze.report_dir,
        groups=groups or None,
    )
    print_analysis(summary, summary.get("lake") or cfg.lake)
    _timing(cfg, {"analyze": time.perf_counter() - t0}, t0)
    if getattr(args, "interactive", False):
        show_images(list((summary.get("figures") or {}).values()))
    return 1 if summary.get("warnings") else 0  # nothing of the reference was compared


def show_images(paths: list[str]) -> int:
    """Show PNG files one after another, each window blocking until it is closed."""
    import matplotlib.pyplot as plt

    from quakelake.plotting import show_one_by_one

    def figures():
        for path in paths:
            fig, ax = plt.subplots(figsize=(10, 7))
            ax.imshow(plt.imread(path))
            ax.set_axis_off()
            ax.set_title(Path(path).stem)
            yield fig

    return show_one_by_one(figures())


def cmd_server(args: argparse.Namespace) -> int:
    """Start, stop or report the local Prefect server that outlives one command."""
    from quakelake import server

    if args.action == "start":
        if args.workers < 0:
            raise CliError("--workers: give 0 (none) or a number of worker processes")
        record = server.start(args.port, workers=args.workers)
        if not args.silent:
            print(
                f"Prefect server: {record['api_url']} (UI {record['api_url'].removesuffix('/api')}, "
                f"pid {record['pid']}, log {record['log']}); quakelake commands use it until "
                "quakelake server stop"
            )
            if record.get("dask_address"):
                print(_warm_text(record))
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
    return 0


def _warm_text(record: dict) -> str:
    """Return the line that tells where the warm workers listen and what they hold."""
    missing = record.get("not_warmed") or []
    return (
        f"warm workers: {record['workers']} x {record['threads']} thread(s) at "
        f"{record['dask_address']}; pick units go there when no --runner is given"
        + (f" (not preloaded: {', '.join(missing)})" if missing else "")
    )


COMMANDS = {
    "run": cmd_run,
    "pick": cmd_pick,
    "associate": cmd_associate,
    "export": cmd_export,
    "download": cmd_download,
    "import-catalog": cmd_import_catalog,
    "analyze": cmd_analyze,
    "sql": cmd_sql,
    "tables": cmd_tables,
    "lake": cmd_lake,
    "demo": cmd_demo,
    "train": cmd_train,
    "server": cmd_server,
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


def _no_telemetry() -> None:
    # Offline observatories and HPC nodes: the Prefect server must not phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


#: Commands that run flows, so start children (the temporary Prefect server, Dask workers).
FLOW_COMMANDS = {"run", "pick", "download", "associate", "analyze", "demo"}


def _guard_children() -> None:
    # A SIGKILLed command must not leave its Prefect server or Dask workers running.
    from quakelake import lifeline

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``quakelake`` (``argv`` None: the command line; the process ends here)."""
    _no_telemetry()
    args = build_parser().parse_args(argv)
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
    _guard_children()
    code = _dispatch(cmd_run, args)
    if argv is None and not _observed():
        _end_process(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
