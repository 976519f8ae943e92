"""Typed parameter models shared by the science layer, the flows and the command line.

The composite run configuration that also holds each stage's parameters lives in
:mod:`quakelake.config`; this module has no imports from the rest of QuakeLake so that every
science module can use it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from quakelake.errors import BadInput
from quakelake.params.base import ParamModel


class ConfigError(BadInput, ValueError):
    """A configuration value is invalid; the message names the parameter and what is allowed."""


class TimeWindow(ParamModel):
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


class StationSelection(ParamModel):
    """Network/station/location/channel selection with FDSN wildcards (``*`` and ``?``)."""

    networks: list[str] = Field(["*"], description="network codes, FDSN wildcards allowed")
    stations: list[str] = Field(["*"], description="station codes, FDSN wildcards allowed")
    locations: list[str] = Field(["*"], description="location codes, FDSN wildcards allowed")
    channels: list[str] = Field(
        ["*"], description="channel codes, FDSN wildcards allowed (e.g. HH? EH?)"
    )

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


class PickParams(ParamModel):
    """How phases are picked: models, weights, thresholds, batches, device."""

    models: list[str] = Field(
        ["PhaseNet"],
        description="SeisBench model classes, e.g. PhaseNet EQTransformer PhaseNetLight",
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
    denoiser: str | None = Field(
        None,
        description="denoiser Class/weights (DeepDenoiser/original, SeisDAE/<trained>) run before picking; "
        "its picks are extra grid members (weights '<weights>+Class:weights') beside the raw-data picks",
    )
    engine: Literal["auto", "openvino", "onnx", "torch", "seisbench"] = Field(
        "auto",
        description="what runs the model: auto = QuakeLake's batched engine (on CPU the runtime measured "
        "fastest for the model: OpenVINO, ONNX Runtime when it is absent; torch on CUDA) "
        "for the models it accelerates, SeisBench classify for the others; seisbench = always classify",
    )
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="network precision on CUDA (the CPU always runs fp32)"
    )

    @field_validator("models", "weights", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _legacy_denoise(cls, data: Any) -> Any:
        # configuration files of the original tool say `denoise: true` (DeepDenoiser, original weights)
        if isinstance(data, dict) and "denoise" in data:
            data = dict(data)
            if data.pop("denoise") and not data.get("denoiser"):
                data["denoiser"] = "DeepDenoiser/original"
        return data

    def grid_weights(self) -> list[str]:
        """Return the weights labels of every grid member: each weights, then each on denoised data."""
        denoised = (
            [denoised_weights(w, self.denoiser) for w in self.weights] if self.denoiser else []
        )
        return [*self.weights, *denoised]


def denoised_weights(weights: str, denoiser: str | None) -> str:
    """Return the weights label of the grid member ``weights`` picking on data denoised by ``denoiser``."""
    return f"{weights}+{denoiser.replace('/', ':')}" if denoiser else weights


def _century(two_or_four: str) -> int:
    year = int(two_or_four)
    if len(two_or_four) == 2:
        year += 1900 if year >= 70 else 2000  # POSIX %y pivot: 70-99 -> 19xx, 00-69 -> 20xx
    return year


def parse_gregorian(text: str) -> dt.date:
    """Return the day written as ``YYMMDD`` (``980101``), ``YYYYMMDD`` or ``YYYY-MM-DD``.

    Raises:
        ValueError: naming the text and the accepted forms.
    """
    t = text.strip()
    try:
        if re.fullmatch(r"\d{6}", t):
            return dt.date(_century(t[:2]), int(t[2:4]), int(t[4:]))
        if re.fullmatch(r"\d{8}", t):
            return dt.date(int(t[:4]), int(t[4:6]), int(t[6:]))
        return dt.date.fromisoformat(t)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a day; write YYMMDD (e.g. 980101), YYYYMMDD or YYYY-MM-DD")


def parse_julian(text: str) -> dt.date:
    """Return the day written as year + day-of-year: ``YYDDD`` (``98001``), ``YYYYDDD``, ``YYYY-DDD``.

    Raises:
        ValueError: naming the text and the accepted forms, or the day-of-year out of range.
    """
    m = re.fullmatch(r"(\d{2}|\d{4})[-.]?(\d{3})", text.strip())
    if not m:
        raise ValueError(
            f"{text!r} is not year + day-of-year; write YYDDD (e.g. 98001), YYYYDDD or YYYY-DDD"
        )
    year, doy = _century(m.group(1)), int(m.group(2))
    start = dt.date(year, 1, 1)
    days_in_year = (dt.date(year + 1, 1, 1) - start).days
    if not 1 <= doy <= days_in_year:
        raise ValueError(f"{text!r}: day of year {doy} is outside 1..{days_in_year} of {year}")
    return start + dt.timedelta(days=doy - 1)
