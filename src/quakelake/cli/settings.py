"""From the command line to a run's settings: options over the config file and blocks, groups, ensembles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quakelake.cli.options import OPTION_OF, CliError, parse_gregorian, parse_julian
from quakelake.cli.printing import (
    warn,
)

if TYPE_CHECKING:
    from quakelake.config import RunConfig


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
        from quakelake.association.settings import ogs_default

        o["associate"] = ogs_default().model_dump(mode="json")
    elif getattr(args, "pyocto", False):
        o["associate"] = {"associator": "pyocto"}
    if getattr(args, "velocity_model", None):
        o.setdefault("associate", {})["velocity"] = {
            "kind": "1d",
            "model_file": args.velocity_model,
        }
    if getattr(args, "ml_law", None):
        from quakelake.params.magnitudes import AttenuationLaw

        law = AttenuationLaw.from_text(args.ml_law)
        o.setdefault("magnitude", {}).setdefault("law", {}).update(
            law.model_dump(mode="json", include={"name", "table"})
        )
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


def refuse_unavailable(args: argparse.Namespace) -> None:
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
        from quakelake.picking.ensemble import check_members

        members = [f"{m}/{w}" for m in cfg.pick.models for w in cfg.pick.weights]
        check_members(members + ([f"{cfg.pick.models[0]}/fine-tuned"] if trained else []))


def checked_groups(cfg: RunConfig) -> dict[str, list[str]]:
    """Return the -G groups, each checked against the stations this run can pick (before work)."""
    if not cfg.use_groups:
        return {}
    from quakelake.archive.stations import known_stations
    from quakelake.params import groups as station_groups

    if cfg.download is not None and cfg.station_file is None:
        # names only: the archive is filled by the download
        return station_groups.chosen_groups(cfg.groups, cfg.groups_file, cfg.use_groups, None, "")
    stations, where = known_stations(cfg.station_file, cfg.directory, cfg.selection)
    return station_groups.chosen_groups(
        cfg.groups, cfg.groups_file, cfg.use_groups, stations, where
    )


def lake_groups(cfg: RunConfig, check: bool = True) -> dict[str, list[str]]:
    """Return the -G groups, each checked against the stations with picks in the lake."""
    if not cfg.use_groups:
        return {}
    from quakelake.archive.stations import picked_stations
    from quakelake.params import groups as station_groups

    stations = picked_stations(cfg.lake) if check else None
    where = f"the picks in lake {cfg.lake}"
    return station_groups.chosen_groups(
        cfg.groups, cfg.groups_file, cfg.use_groups, stations, where
    )


def station_overlap(cfg: RunConfig, summaries: list[dict]) -> int:
    """Warn and return exit status 1 when the -F station file lists none of the stations with picks."""
    if cfg.station_file is None or not any(s.get("unknown_stations") for s in summaries):
        return 0
    from quakelake.archive.stations import unlisted_picks

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
    if getattr(args, "ml_corrections", None):
        cfg = _with_corrections(cfg, args.ml_corrections)
    if cfg.pick.denoiser and getattr(args, "command", "run") in ("run", "pick"):
        from quakelake.picking.denoise import check_available

        check_available(cfg.pick.denoiser)
    return cfg


def _with_corrections(cfg: RunConfig, reference: str) -> RunConfig:
    """Return ``cfg`` whose magnitude law adds the lake's station corrections against ``reference``."""
    from quakelake.association.station_corrections import read_corrections
    from quakelake.lakehouse import Lake
    from quakelake.params.magnitudes import MagnitudeParams

    magnitude = cfg.magnitude or MagnitudeParams()
    rows = read_corrections(Lake(cfg.lake), reference, law=magnitude.law.name)
    corrections = dict(zip(rows["station_id"], rows["correction"].astype(float), strict=True))
    law = magnitude.law.model_copy(
        update={
            "station_corrections": {**corrections, **magnitude.law.station_corrections},
            # the law's name says the corrections: estimations read uncorrected magnitudes only
            "name": f"{magnitude.law.name}+corrections:{reference}",
        }
    )
    return cfg.model_copy(update={"magnitude": magnitude.model_copy(update={"law": law})})


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
