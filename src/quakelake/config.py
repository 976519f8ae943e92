"""One typed model of every run parameter, shared by the command line, flows and blocks.

Precedence: built-in defaults < configuration file (JSON or YAML, ``-c``) < command line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the parameter and what is allowed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TimeWindow(_Model):
    """Inclusive range of UTC days to process; ``None`` on both ends means every day found."""

    start: dt.date | None = Field(None, description="first UTC day to process (inclusive)")
    end: dt.date | None = Field(None, description="last UTC day to process (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end day {self.end} is before start day {self.start}")
        return self

    def days(self) -> list[dt.date]:
        """Return every day of the window (requires both ends)."""
        if self.start is None or self.end is None:
            raise ConfigError("the time window needs both a start and an end day")
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]

    def contains(self, day: dt.date) -> bool:
        """Return True when ``day`` lies in the window (open ends allow anything)."""
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


class StationSelection(_Model):
    """Network/station/location/channel selection with FDSN wildcards (``*`` and ``?``)."""

    networks: list[str] = Field(["*"], description="network codes, FDSN wildcards allowed")
    stations: list[str] = Field(["*"], description="station codes, FDSN wildcards allowed")
    locations: list[str] = Field(["*"], description="location codes, FDSN wildcards allowed")
    channels: list[str] = Field(["*"], description="channel codes, FDSN wildcards allowed (e.g. HH? EH?)")

    @field_validator("networks", "stations", "locations", "channels", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            out: list[str] = []
            for item in value:
                out.extend(part for part in str(item).split(",") if part != "")
            return out or ["*"]
        return value

    def matches(self, network: str, station: str, location: str, channel: str) -> bool:
        """Return True when the channel id matches the selection."""
        from fnmatch import fnmatchcase

        def any_match(value: str, patterns: list[str]) -> bool:
            return any(fnmatchcase(value, p.replace("--", "")) for p in patterns)

        return (
            any_match(network, self.networks)
            and any_match(station, self.stations)
            and any_match(location, self.locations)
            and any_match(channel, self.channels)
        )


class PickParams(_Model):
    """How phases are picked: models, weights, thresholds, batches, device."""

    models: list[str] = Field(
        ["PhaseNet"], description="SeisBench model classes, e.g. PhaseNet EQTransformer PhaseNetLight"
    )
    weights: list[str] = Field(
        ["original"], description="pretrained weights; every model x weights combination is run"
    )
    p_threshold: float = Field(0.3, ge=0.0, le=1.0, description="P probability threshold")
    s_threshold: float = Field(0.3, ge=0.0, le=1.0, description="S probability threshold")
    batch_size: int = Field(256, ge=1, le=65536, description="windows per model batch")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="torch device; auto picks CUDA when available"
    )
    denoise: bool = Field(False, description="run SeisBench DeepDenoiser before picking")

    @field_validator("models", "weights", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExecutionParams(_Model):
    """Where the tasks run."""

    runner: Literal["threads", "dask-local", "slurm", "address"] = Field(
        "threads", description="task runner: threads, dask-local, slurm or address"
    )
    workers: int = Field(2, ge=1, le=4096, description="worker processes (dask-local) or threads")
    address: str | None = Field(None, description="existing Dask scheduler address (runner=address)")


class RunConfig(_Model):
    """Every parameter of a QuakeLake run."""

    lake: Path = Field(Path("lake"), description="lake root folder")
    directory: Path | None = Field(None, description="waveform archive (SDS tree or any folder)")
    station_file: Path | None = Field(None, description="station metadata (StationXML or CSV)")
    window: TimeWindow = Field(default_factory=TimeWindow, description="days to process")
    selection: StationSelection = Field(default_factory=StationSelection, description="channels")
    pick: PickParams = Field(default_factory=PickParams, description="picking parameters")
    execution: ExecutionParams = Field(default_factory=ExecutionParams, description="task runner")
    force: bool = Field(False, description="recompute units whose results already exist")
    timing: bool = Field(False, description="print how long each stage took")
    verbosity: int = Field(1, ge=0, le=2, description="0 silent, 1 normal, 2 verbose")


def format_validation_error(exc: ValidationError, source: str = "") -> str:
    """Return one line per invalid parameter: its dotted name, the value and what is allowed."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(config)"
        value = err.get("input")
        where = f" in {source}" if source else ""
        lines.append(f"invalid parameter '{name}'{where}: {err['msg']} (got {value!r})")
    return "\n".join(lines)


def read_config_file(path: Path) -> dict[str, Any]:
    """Return the mapping stored in a JSON or YAML configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist; pass an existing -c/--config FILE")
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
    file: Path | None = None, overrides: dict[str, Any] | None = None, model: type[_Model] = RunConfig
) -> Any:
    """Return the validated configuration: defaults < ``file`` < ``overrides``.

    Raises:
        ConfigError: naming every invalid parameter.
    """
    data: dict[str, Any] = read_config_file(file) if file else {}
    data = deep_merge(data, overrides or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(file) if file else "")) from None
