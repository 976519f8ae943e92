"""Typed parameter models shared by the science layer, the flows and the command line.

The composite run configuration that also holds each stage's parameters lives in
:mod:`quakelake.config`; this module has no imports from the rest of QuakeLake so that every
science module can use it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
