"""The command line's options: the ``quakelake`` parser, its subcommands and the ``picker`` alias.

One place for what a user can type; :mod:`quakelake.cli.settings` turns it into a run's settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from quakelake import __version__, params
from quakelake.errors import (
    BadInput,
    name_problem,
)

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

NOTES = """\
exit status: 0 done, 1 the work failed (no waveforms, a service did not answer),
             2 bad input (an option, a file or the configuration); -v shows the traceback.
Prefect API: $PREFECT_API_URL when set, else the server of `quakelake server start`,
             else a temporary one per command (slow; see README "Prefect server").
"""

SALTON = "../shared/data/phasenet_saltonsea_20201001"

#: The examples each command's --help ends with (the top-level help shows a tour).
COMMAND_EXAMPLES: dict[str, list[str]] = {
    "quakelake": [
        "quakelake server start                  keep a local Prefect server (fast commands, runs in its UI)",
        f"quakelake pick -d {SALTON}/mseed -M PhaseNet -W original",
        "quakelake run -d ARCHIVE -D 201001 201002 -F stations.xml --reference scsn",
        "quakelake import-catalog events.xml --name scsn",
        'quakelake sql "SELECT model, weights, phase, count(*) FROM picks GROUP BY ALL"',
    ],
    "run": [
        f"quakelake run -d {SALTON}/mseed -F {SALTON}/stations.xml",
        "quakelake run -d ARCHIVE -D 201001 201002 -F stations.xml --reference scsn",
        "quakelake run -d ARCHIVE -D 201001 201001 --download --client SCEDC -N CI -S BOM SLV",
    ],
    "pick": [
        f"quakelake pick -d {SALTON}/mseed -M PhaseNet -W original",
        "quakelake pick -d ARCHIVE -D 201001 201002 -M PhaseNet EQTransformer -W original volpick",
        "quakelake pick -d ARCHIVE -S BOM SLV --force          pick again what the lake holds",
    ],
    "download": [
        "quakelake download -d ARCHIVE -D 201001 201001 --client SCEDC -N CI -S BOM SLV",
        "quakelake download -d ARCHIVE -D 201001 201007 --client GFZ -N GE -K token.txt",
    ],
    "associate": [
        f"quakelake associate -F {SALTON}/stations.xml            the lake's picks",
        f"quakelake associate --picks picks.csv -F {SALTON}/stations.xml --pyocto",
        "quakelake associate -F stations.xml -M PhaseNet -W original --quakeml events.xml",
    ],
    "export": [
        "quakelake export --quakeml events.xml",
        "quakelake export --classified classified/ --associated associated/",
    ],
    "import-catalog": [
        "quakelake import-catalog events.xml --name scsn",
        f"quakelake import-catalog {SALTON}/DERIVED_scsn_events_first10min.csv --name scsn",
    ],
    "analyze": [
        "quakelake analyze --reference scsn",
        "quakelake analyze --reference scsn -M PhaseNet --interactive",
    ],
    "sql": [
        'quakelake sql "SELECT model, weights, phase, count(*) FROM picks GROUP BY ALL"',
        "quakelake sql \"SELECT * FROM units WHERE status = 'failed'\" --format csv",
    ],
    "tables": ["quakelake tables --lake lake"],
    "lake": [
        "quakelake lake history",
        "quakelake lake compare --as-of RUN_ID",
        "quakelake lake vacuum --expire-days 30",
    ],
    "lake history": ["quakelake lake history --lake lake"],
    "lake check": ["quakelake lake check", "quakelake lake check --repair"],
    "lake compact": ["quakelake lake compact && quakelake lake vacuum"],
    "lake vacuum": ["quakelake lake vacuum", "quakelake lake vacuum --expire-days 30"],
    "lake migrate": ["quakelake lake migrate --lake old-lake"],
    "lake attach": ["quakelake lake attach --lake lake"],
    "lake compare": [
        "quakelake lake compare --as-of RUN_ID",
        "quakelake lake compare --as-of 2026-12-01T00:00 --to RUN_ID",
    ],
    "demo": [f"quakelake demo --data {SALTON}/mseed -F {SALTON}/stations.xml"],
    "train": [
        "quakelake train -d ARCHIVE --reference scsn --name scsn-tuned",
        "quakelake train -d ARCHIVE --labels picks --min-probability 0.7 --name self-tuned",
        "quakelake train -d ARCHIVE --denoiser --reference scsn --name mine",
    ],
    "server": [
        "quakelake server start --workers 2",
        "quakelake server status",
        "quakelake server stop",
    ],
}


def examples(name: str) -> str:
    """Return the ``--help`` epilog of command ``name``: its examples, exit status, Prefect API."""
    lines = COMMAND_EXAMPLES.get(name, COMMAND_EXAMPLES["quakelake"])
    return "examples:\n" + "".join(f"  {line}\n" for line in lines) + "\n" + NOTES


EXAMPLES = examples("quakelake")


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


# ----------------------------------------------------------------------------------------- names
def _name_type(dots: bool = False):
    """Return the argparse type of a name that becomes a file name (refused before any work)."""

    def plain(text: str) -> str:
        problem = name_problem(text, dots)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return text

    return plain


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


# ------------------------------------------------------------------------------ model defaults
def model_field(path: str) -> tuple[type[BaseModel], str]:
    """Return the parameter model holding the run configuration parameter ``path`` and its name.

    >>> model_field("analyze.match.event_max_km")
    (<class 'quakelake.params.evaluation.MatchParams'>, 'event_max_km')
    """
    from quakelake.config import RunConfig

    model: type[BaseModel] = RunConfig
    *parents, leaf = path.split(".")
    for part in parents:
        annotation = model.model_fields[part].annotation
        model = next(  # the model itself, or the model of an optional section (download)
            t
            for t in (annotation, *get_args(annotation))
            if isinstance(t, type) and issubclass(t, BaseModel)
        )
    return model, leaf


def model_default(path: str) -> Any:
    """Return the default of the run configuration parameter ``path`` (e.g. ``pick.p_threshold``)."""
    model, leaf = model_field(path)
    return model.model_fields[leaf].get_default(call_default_factory=True)


def shown(value: Any) -> str:
    """Return ``value`` as one types it on the command line.

    >>> shown(["HH?", "EH?"]), shown(2.0), shown(0.3)
    ('HH? EH?', '2', '0.3')
    """
    if isinstance(value, list | tuple):
        return " ".join(shown(v) for v in value)
    if isinstance(value, BaseModel) and hasattr(value, "name"):  # an FDSN client by its name
        return str(value.name)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _option(g: Any, *flags: str, path: str, help: str, **kwargs: Any) -> argparse.Action:
    """Add an option whose default is the parameter ``path`` of the run configuration.

    Its help ends with ``(default X)``, X read from the parameter model, and the action keeps
    ``path`` as ``model_path`` (tests/test_cli_help.py checks the two agree).
    """
    action = g.add_argument(*flags, help=f"{help} (default {shown(model_default(path))})", **kwargs)
    action.model_path = path
    return action


# ------------------------------------------------------------------------------------- arguments
def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("general")
    _option(g, "--lake", type=Path, path="lake", help="lake root folder, created when missing")
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
    _option(
        g,
        "--runner",
        choices=["threads", "dask-local", "slurm", "address"],
        path="execution.runner",
        help="task runner; slurm needs a compute block or config file",
    )
    _option(
        g,
        "--workers",
        type=int,
        metavar="N",
        path="execution.workers",
        help="threads or Dask worker processes",
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
    _option(
        g,
        "-N",
        "--network",
        nargs="+",
        path="selection.networks",
        help="network codes, FDSN wildcards, * = any",
    )
    _option(
        g,
        "-S",
        "--station",
        nargs="+",
        path="selection.stations",
        help="station codes, FDSN wildcards",
    )
    _option(
        g,
        "-C",
        "--channel",
        nargs="+",
        path="selection.channels",
        help="channel codes, FDSN wildcards, e.g. HH? EH?",
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
    _option(
        g,
        "-M",
        "--models",
        nargs="+",
        path="pick.models",
        help="SeisBench models, e.g. PhaseNet EQTransformer",
    )
    _option(
        g,
        "-W",
        "--weights",
        nargs="+",
        path="pick.weights",
        help="pretrained weights, every model x weights is run, e.g. instance original",
    )
    _option(
        g, "-p", "--pwave", type=float, path="pick.p_threshold", help="P probability threshold, 0-1"
    )
    _option(
        g, "-s", "--swave", type=float, path="pick.s_threshold", help="S probability threshold, 0-1"
    )
    _option(g, "-b", "--batch", type=int, path="pick.batch_size", help="windows per model batch")
    _option(
        g,
        "--device",
        choices=["auto", "cpu", "cuda"],
        path="pick.device",
        help="torch device; auto picks CUDA",
    )
    _option(
        g,
        "--engine",
        choices=["auto", "openvino", "onnx", "torch", "seisbench"],
        path="pick.engine",
        help="what runs the model: auto = QuakeLake's batched engine where it applies (on CPU the "
        "runtime measured fastest for the model; openvino/onnx/torch force one), seisbench = "
        "SeisBench classify",
    )
    _option(
        g,
        "--precision",
        choices=["fp32", "fp16", "bf16"],
        path="pick.precision",
        help="network precision on CUDA; the CPU always runs fp32",
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
        const=model_default("ensemble.method"),
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
        type=_name_type(),
        help="name of the new weights in the SeisBench cache (default <weights>_<labels>_<YYYYMMDD>)",
    )
    g.add_argument("--epochs", type=int, help="passes over the training windows (default 5)")
    g.add_argument("--learning-rate", type=float, help="Adam learning rate (default 1e-3)")
    g.add_argument("--window", type=float, help="seconds per stored training window (default 60)")
    g.add_argument("--seed", type=int, help="seed of crops, splits and PyTorch (default 0)")


def _download_options(g) -> None:
    _option(
        g,
        "--client",
        nargs="+",
        path="download.clients",
        help="FDSN clients in order, short names or base URLs",
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
    _option(
        g,
        "--channel-priority",
        nargs="+",
        metavar="PATTERN",
        path="download.channel_priorities",
        help="channel patterns in order of preference",
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
    g.add_argument(
        "--ml-law",
        metavar="LAW",
        help="local magnitudes after association with this attenuation law: HB87 (Hutton & Boore "
        '1987) or a regional -log A0 table "distance value; distance value; ..." (km, as '
        "SeisComP's; SeisComP's own logA0 \"0:-1.3,60:-2.8,...\" is read too) (default: the "
        "config file's magnitude section; none: no magnitudes)",
    )
    g.add_argument(
        "--ml-corrections",
        metavar="REFERENCE",
        help="add the ML station corrections estimated against this reference (see "
        "`quakelake ml-corrections`) (default: none)",
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
    _option(
        g,
        "--pick-tolerance",
        type=float,
        metavar="S",
        path="analyze.match.pick_tolerance_s",
        help="pick match tolerance in s",
    )
    _option(
        g,
        "--event-dt",
        type=float,
        metavar="S",
        path="analyze.match.event_max_dt_s",
        help="event origin-time tolerance in s",
    )
    _option(
        g,
        "--event-km",
        type=float,
        metavar="KM",
        path="analyze.match.event_max_km",
        help="event epicentre tolerance in km",
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
        f"quakelake {__version__} (seisbench {v('seisbench')}, obspy {v('obspy')}, "
        f"prefect {v('prefect')}, duckdb {v('duckdb')})"
    )


MONITOR_HELP = """\
Follow one source of live data and keep picks and events in the lake as the waves arrive:
final picks equal the batch picks of the same data; provisional picks come earlier and are
confirmed or withdrawn; events keep their id while their origin is revised. Runs until
SIGINT/SIGTERM (finishes the cycle, commits, exits 0) or --duration. A Prefect event is emitted
per new, updated or deleted earthquake when a Prefect API answers (quakelake server start).
"""


def monitor_options(command) -> None:
    """Add the ``monitor`` subcommand (``command`` makes a subparser)."""
    p = command(
        "monitor", "follow live data: picks in seconds, events within a minute", MONITOR_HELP
    )
    src = p.add_argument_group("source (one)").add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--sds", type=Path, metavar="DIR", help="an SDS archive that grows (one source is required)"
    )
    src.add_argument(
        "--seedlink",
        metavar="HOST[:PORT]",
        help="a SeedLink server (default port 18000; one source is required)",
    )
    src.add_argument(
        "--fdsn",
        metavar="URL",
        help="an fdsnws-dataselect service, polled (one source is required)",
    )
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
        "--pyocto", action="store_true", default=True, help="associate with PyOcto (the default)"
    )
    g.add_argument(
        "--gamma", action="store_true", help="associate with GaMMA instead of PyOcto (default off)"
    )
    g.add_argument(
        "--no-magnitudes",
        action="store_true",
        help="no local magnitudes (default: ML from the -F StationXML responses, as the batch)",
    )
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
        "ring holds (default off: only new records)",
    )
    r.add_argument(
        "--playback",
        metavar="TIME",
        help="--fdsn: a drill on past data: the service is polled as if the clock read TIME "
        "when the monitor starts, e.g. 2020-10-01T00:00:00 (default: now)",
    )
    r.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="K",
        help="--playback: the drill's clock runs K times real time (default 1)",
    )
    r.add_argument(
        "--no-provisional", action="store_true", help="publish final picks only (default off)"
    )
    r.add_argument("-v", "--verbose", action="store_true", help="log every cycle (default off)")
    r.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="K",
        help="read and pick the stations in K shards, each on a Dask worker (--runner; "
        "default dask-local with K workers); association and the lake stay in this process "
        "(default 1: all in this process)",
    )
    r.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON or YAML configuration file: the monitor takes its execution part (the "
        "runner of the shards, SLURM job settings) (default: none)",
    )
    _compute(p)


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
            name,
            help=text,
            description=description or text,
            formatter_class=_Help,
            epilog=examples(name),
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

    monitor_options(command)

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
        help="events of this associator's catalogue (gamma, pyocto) (default: the lake's only "
        "catalogue; with several, choose one: they are never merged)",
    )
    exp.add_argument(
        "-M",
        "--models",
        nargs="+",
        help="the catalogue associated from this model's picks (default: any)",
    )
    exp.add_argument(
        "-W",
        "--weights",
        nargs="+",
        help="the catalogue associated from these weights' picks (default: any)",
    )
    exp.add_argument(
        "--catalogue",
        metavar="LABEL",
        help="the catalogue of this label, as the error listing the catalogues prints it "
        "(e.g. 'gamma PhaseNet/original @WEST') (default: none)",
    )
    exp.add_argument(
        "--run-id",
        help="events of the catalogue of this association run (default: see --associator)",
    )

    mlc = command(
        "ml-corrections",
        "estimate ML station corrections from residuals against a reference catalogue",
        "Estimate ML station corrections from one catalogue's station magnitudes and a reference "
        "(an imported catalogue with magnitudes): per station, the median of reference ML - our "
        "station ML over the matched events, stored in the lake's station_corrections table with "
        "its support (events, spread). Apply them with --ml-corrections REFERENCE.",
    )
    _common(mlc)
    mlc.add_argument(
        "--reference", required=True, help="reference catalogue in the lake (required)"
    )
    mlc.add_argument(
        "--associator", help="the catalogue of this associator (default: the only one)"
    )
    mlc.add_argument(
        "-M", "--models", nargs="+", help="the catalogue of this model's picks (default: any)"
    )
    mlc.add_argument(
        "-W", "--weights", nargs="+", help="the catalogue of these weights' picks (default: any)"
    )
    mlc.add_argument(
        "--catalogue", metavar="LABEL", help="the catalogue of this label (default: none)"
    )
    mlc.add_argument(
        "--min-events",
        type=int,
        default=2,
        metavar="N",
        help="fewest matched events a station needs for a correction (default 2)",
    )
    mlc.add_argument(
        "--station-magnitudes",
        nargs="+",
        type=Path,
        metavar="QUAKEML",
        help="the reference's QuakeML with station magnitudes: residuals against its station MLs "
        "instead of its event ML (default: against the event ML)",
    )
    mlc.add_argument(
        "--event-dt", type=float, default=2.0, metavar="S", help="event match |dt| in s (default 2)"
    )
    mlc.add_argument(
        "--event-km", type=float, default=8.0, metavar="KM", help="event match km (default 8)"
    )
    exp.add_argument(
        "--rejected",
        action="store_true",
        help="also write the origins the quality gate rejected, with evaluationStatus rejected "
        "(default: reported origins only)",
    )

    imp = command("import-catalog", "import reference catalogue files into the lake")
    _common(imp)
    imp.add_argument(
        "paths", nargs="+", type=Path, help="QuakeML, OGS .dat/.pun/.hpc/.txt, CSV files or folders"
    )
    imp.add_argument(
        "--name",
        required=True,
        type=_name_type(dots=True),
        help="name of the reference; several can coexist (required)",
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
        "look after the lake: history, check, compact, vacuum, migrate, rebuild, attach, compare",
        description="look after the lake; quakelake lake ACTION --help says what ACTION does",
    )
    actions = lake.add_subparsers(dest="action", required=True, metavar="ACTION")
    lake_actions = {
        "history": "the lake's snapshots, one per commit, with its run id",
        "check": "open every committed file and report damaged ones (--repair drops them so "
        "their units are computed again)",
        "compact": "merge small files into large ones (resume and --force keep working)",
        "vacuum": "delete the files no snapshot reads: killed runs' orphans, half-written "
        "temporaries, files merged away by compaction (--expire-days also ends old snapshots)",
        "migrate": "bring a lake of an older layout (no catalog, or absolute paths) to the "
        "current one, without re-picking",
        "rebuild": "rebuild a lost or zeroed catalog from the data files (the damaged one is kept)",
        "attach": "print the two lines any DuckDB client runs to open the lake",
        "compare": "picks per model x weights x phase and events per catalogue (associator x "
        "pick set x group) at two snapshots (--as-of RUN_ID [--to RUN_ID]; -M/-W/--associator "
        "choose)",
    }
    for action, text in lake_actions.items():
        act = actions.add_parser(
            action,
            help=text,
            description=text,
            formatter_class=_Help,
            epilog=examples(f"lake {action}"),
        )
        _common(act)
        if action == "compare":
            act.add_argument(
                "--as-of",
                metavar="RUN_ID|TIME",
                help="the snapshot before (e.g. the run before a reprocessing) (required)",
            )
            act.add_argument(
                "--to",
                metavar="RUN_ID|TIME",
                help="the snapshot after (default: the lake now)",
            )
            act.add_argument("-M", "--models", nargs="+", help="these models only (default all)")
            act.add_argument("-W", "--weights", nargs="+", help="these weights only (default all)")
            act.add_argument(
                "--associator", nargs="+", help="these associators' events only (default all)"
            )
        if action == "check":
            act.add_argument(
                "--repair", action="store_true", help="drop damaged files (default off)"
            )
        if action == "vacuum":
            act.add_argument(
                "--expire-days",
                type=float,
                help="also expire snapshots older than this many days (default: keep all)",
            )
            act.add_argument(
                "--grace-hours",
                type=float,
                default=1.0,
                help="leave uncommitted files younger than this, a run may still commit them "
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
    server.add_argument(
        "--cold",
        action="store_true",
        help="start: no warm process (by default one keeps Prefect and the science stack "
        "loaded and the commands run in a fork of it, without seconds of imports; "
        "QUAKELAKE_COLD_START=1 runs one command on its own)",
    )
    out = server.add_mutually_exclusive_group()
    out.add_argument("--silent", action="store_true", help="print only errors (default off)")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="tracebacks on errors (default off)"
    )

    serve = command(
        "serve",
        "publish the lake's catalogue: an FDSN event web service and a web page with a map",
        description="Serve the lake read-only over HTTP: fdsnws-event 1.2 at /fdsnws/event/1/ "
        "(query, version, application.wadl, catalogs, contributors; asofdate answers from the "
        "lake as it was at that time) and a web page at / (map, depth section, table, an "
        "event's picks on its waveforms) that updates itself when new events reach the lake.",
    )
    _common(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 opens the service to other machines (default 127.0.0.1)",
    )
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    serve.add_argument(
        "--tiles",
        metavar="URL",
        help="map tile URL template for sites with internet, e.g. "
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none, Natural Earth "
        "coastlines and borders served with the page)",
    )
    serve.add_argument(
        "--max-results",
        type=int,
        default=20000,
        metavar="N",
        help="most events one answer holds; a larger query gets 413 (default 20000)",
    )
    serve.add_argument(
        "--query-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a lake query running longer is stopped and answered 503 (default 10)",
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
    parser.add_argument("--version", action="version", version=_version())
    for add in (_common, _selection, _picking, _later_stages, _compute):
        add(parser)
    return parser
