"""One typed model of every run parameter, shared by the command line, flows and blocks.

Precedence: built-in defaults < configuration file (JSON or YAML, ``-c``) < command line.

Only parameter models here (each stage's live in :mod:`quakelake.params`): building a
configuration imports pydantic and YAML, not the science stack (ObsPy, SciPy, pyproj, torch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from quakelake.params import ConfigError, PickParams, StationSelection, TimeWindow
from quakelake.params.association import AssociatorConfig, GammaConfig
from quakelake.params.base import ParamModel
from quakelake.params.compute import ComputeSettings
from quakelake.params.download import DownloadParams
from quakelake.params.ensemble import EnsembleParams
from quakelake.params.evaluation import MatchParams
from quakelake.params.magnitudes import MagnitudeParams

__all__ = [
    "AnalyzeParams",
    "ConfigError",
    "ComputeSettings",
    "PickParams",
    "RunConfig",
    "StationSelection",
    "TimeWindow",
    "build_config",
    "deep_merge",
    "format_validation_error",
    "read_config_file",
    "validate_config",
]


class AnalyzeParams(ParamModel):
    """Comparison with a reference catalogue at the end of a run."""

    reference: str | None = Field(
        None,
        description="name of a reference catalogue in the lake (import-catalog --name); None: no analysis",
    )
    reference_paths: list[Path] = Field(
        [], description="catalogue files/folders imported under `reference` before comparing"
    )
    match: MatchParams = Field(default_factory=MatchParams, description="matching tolerances")
    report_dir: Path | None = Field(
        None, description="folder for the Markdown/HTML report and plots"
    )


class RunConfig(ParamModel):
    """Every parameter of a QuakeLake run."""

    lake: Path = Field(Path("lake"), description="lake root folder")
    directory: Path | None = Field(None, description="waveform archive (SDS tree or any folder)")
    station_file: Path | None = Field(None, description="station metadata (StationXML or CSV)")
    window: TimeWindow = Field(default_factory=TimeWindow, description="days to process")
    selection: StationSelection = Field(default_factory=StationSelection, description="channels")
    download: DownloadParams | None = Field(
        None, description="FDSN download before picking (None: use the archive as it is)"
    )
    pick: PickParams = Field(default_factory=PickParams, description="picking parameters")
    ensemble: EnsembleParams | None = Field(
        None,
        description="also store consensus picks of all model x weights members (model 'ensemble'); None: off",
    )
    groups: dict[str, list[str]] = Field(
        {},
        description="named station groups (sub-networks): name -> NET.STA patterns, e.g. FVG: [OX.*, IV.TRI]",
    )
    groups_file: Path | None = Field(
        None, description="YAML/JSON file of more groups (name: [NET.STA, ...])"
    )
    use_groups: list[str] = Field(
        [],
        description="groups to run per (-G): picking on their stations, association and metrics per group",
    )
    associate: AssociatorConfig | None = Field(
        default_factory=GammaConfig,
        description="associator (GaMMA by default, PyOcto with associator: pyocto); None: no association",
    )
    magnitude: MagnitudeParams | None = Field(
        default_factory=MagnitudeParams,
        description="local magnitudes after association (Wood-Anderson amplitudes, HB87 law); None: none",
    )
    analyze: AnalyzeParams = Field(
        default_factory=AnalyzeParams, description="comparison with a reference"
    )
    execution: ComputeSettings = Field(default_factory=ComputeSettings, description="task runner")
    force: bool = Field(False, description="recompute units whose results already exist")
    timing: bool = Field(False, description="print how long each stage took")
    verbosity: int = Field(1, ge=0, le=2, description="0 silent, 1 normal, 2 verbose")


def format_validation_error(
    exc: ValidationError, source: str = "", names: Mapping[str, str] | None = None
) -> str:
    """Return one line per invalid parameter: its name, the value and what is allowed.

    Args:
        exc: pydantic's error.
        source: the configuration file the values came from ("" for none).
        names: the option that set a dotted parameter name (``{"pick.p_threshold": "-p/--pwave"}``);
            such parameters are named by their option, the others by their dotted name.
    """
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(config)"
        value = err.get("input")
        msg = str(err["msg"]).removeprefix("Value error, ")
        shown = value.isoformat() if hasattr(value, "isoformat") else value
        got = "" if isinstance(value, dict) else f" (got {shown})"
        if names and name in names:
            lines.append(f"{names[name]}: {msg}{got}")
            continue
        where = f" in {source}" if source else ""
        lines.append(f"invalid parameter '{name}'{where}: {msg}{got}")
    return "\n".join(lines)


def read_config_file(path: Path) -> dict[str, Any]:
    """Return the mapping stored in a JSON or YAML configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"configuration file {path} does not exist; pass an existing -c/--config FILE"
        )
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"configuration file {path} is not valid JSON/YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of parameters")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, merging nested mappings."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(
    file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    model: type[ParamModel] = RunConfig,
    names: Mapping[str, str] | None = None,
) -> Any:
    """Return the validated configuration: defaults < ``file`` < ``overrides``.

    ``names`` maps dotted parameter names to the options that set them, for the error messages.

    Raises:
        ConfigError: naming every invalid parameter.
    """
    data: dict[str, Any] = read_config_file(file) if file else {}
    return validate_config(
        deep_merge(data, overrides or {}), str(file) if file else "", names, model
    )


def validate_config(
    data: Mapping[str, Any],
    source: str = "",
    names: Mapping[str, str] | None = None,
    model: type[ParamModel] = RunConfig,
) -> Any:
    """Return ``data`` validated as ``model``.

    Raises:
        ConfigError: naming every invalid parameter (by its option when ``names`` has it).
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, names)) from None
