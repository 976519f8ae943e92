"""Checks made before any work starts: lake path, station file, reference, models, inputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from quakelake.cli.options import CliError
from quakelake.errors import (
    QuakeLakeError,
    one_line,
)

if TYPE_CHECKING:
    import pandas as pd

    from quakelake.config import RunConfig


def check_lake(lake: Path, must_exist: bool = False) -> None:
    """Refuse a lake path that is a file (or, for queries, a folder that holds no lake)."""
    lake = Path(lake)
    if lake.exists() and not lake.is_dir():
        raise CliError(
            f"--lake: {lake} is a file, not a lake folder; give a folder (created when missing)"
        )
    if must_exist:
        from quakelake.lakehouse import Lake

        Lake(lake).refuse_lost()  # a lost or zeroed catalog: say so, never "no lake"
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
    from quakelake.archive.stations import read_stations

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
    from quakelake.picking.models import check_models as check

    return check(cfg.pick.models, cfg.pick.weights)


def check_inputs(cfg: RunConfig, args: argparse.Namespace) -> list[str]:
    """Validate every path and name of a pick/run before work starts; return warnings to show."""
    check_lake(cfg.lake)
    stations = check_station_file(cfg.station_file)
    if stations is not None and cfg.download is None and cfg.directory is not None:
        from quakelake.archive.stations import check_covers_archive
        from quakelake.archive.waveforms import archive_stations

        check_covers_archive(
            stations,
            cfg.station_file,
            archive_stations(cfg.directory, cfg.selection),
            f"archive {cfg.directory}",
        )
    check_reference(cfg)
    check_token_file(cfg)
    velocity = getattr(args, "velocity_model", None)
    if velocity is not None and not Path(velocity).is_file():
        raise CliError(
            f"--velocity-model: {velocity} does not exist; pass a TauP .nd, VELEST .mod or CSV file"
        )
    check_models(cfg)
    return []


def check_token_file(cfg: RunConfig) -> None:
    """Refuse a download whose EIDA token file (-K/--key) does not exist."""
    token = cfg.download.token_file if cfg.download is not None else None
    if token is not None and not Path(token).expanduser().is_file():
        raise CliError(
            f"-K/--key: EIDA token file {token} does not exist; pass the file "
            "downloaded from the EIDA authentication service"
        )
