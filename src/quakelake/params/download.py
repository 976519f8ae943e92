"""Parameters of the FDSN download stage: data centres, domains, retries, deadlines.

Plain pydantic: the run configuration imports this without ObsPy's FDSN client; the download
itself lives in :mod:`quakelake.archive.download`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from quakelake.params.base import ParamModel

__all__ = [
    "EXTRA_SHORT_NAMES",
    "TOKEN_ENV",
    "CircDomain",
    "DownloadParams",
    "FdsnClientSpec",
    "RectDomain",
]

#: Environment variable holding an EIDA token (the PGP message itself) when no file is given.
TOKEN_ENV = "QUAKELAKE_EIDA_TOKEN"

#: Short names that ObsPy does not know, resolved to their FDSN base URL.
EXTRA_SHORT_NAMES = {"OGS": "http://158.110.30.217:8080"}


class FdsnClientSpec(ParamModel):
    """One FDSN data centre: an ObsPy short name or a base URL, optionally per-service URLs."""

    name: str = Field(..., description="label in the ledger, e.g. INGV or 127.0.0.1:8080")
    url: str = Field(..., description="ObsPy short name (INGV, GFZ, IRIS ...) or base URL")
    dataselect: str | None = Field(
        None, description="full fdsnws-dataselect URL (…/fdsnws/dataselect/1) when not under url"
    )
    station: str | None = Field(
        None, description="full fdsnws-station URL (…/fdsnws/station/1) when not under url"
    )

    @classmethod
    def parse(cls, text: str) -> FdsnClientSpec:
        """Return the spec of ``text``: a short name (``INGV``) or a base URL (``http://host:8080``)."""
        text = text.strip()
        if "://" in text:
            return cls(name=re.sub(r"^\w+://", "", text).rstrip("/"), url=text.rstrip("/"))
        name = text.upper()
        return cls(name=name, url=EXTRA_SHORT_NAMES.get(name, name))

    def service_mappings(self) -> dict[str, str | None] | None:
        """Return ObsPy's ``service_mappings`` for this spec (None: discover under ``url``)."""
        if not (self.dataselect or self.station):
            return None
        mappings: dict[str, str | None] = {"event": None}
        if self.dataselect:
            mappings["dataselect"] = self.dataselect.rstrip("/")
        if self.station:
            mappings["station"] = self.station.rstrip("/")
        return mappings


class RectDomain(ParamModel):
    """Rectangular geographic domain in degrees (``--rectdomain minlat maxlat minlon maxlon``)."""

    minlatitude: float = Field(..., ge=-90, le=90, description="southern edge, degrees")
    maxlatitude: float = Field(..., ge=-90, le=90, description="northern edge, degrees")
    minlongitude: float = Field(..., ge=-180, le=180, description="western edge, degrees")
    maxlongitude: float = Field(..., ge=-180, le=180, description="eastern edge, degrees")

    @model_validator(mode="after")
    def _ordered(self) -> RectDomain:
        if self.maxlatitude < self.minlatitude:
            raise ValueError(
                f"rectangular domain: maxlat {self.maxlatitude} is below minlat {self.minlatitude}"
            )
        if self.maxlongitude < self.minlongitude:
            raise ValueError(
                f"rectangular domain: maxlon {self.maxlongitude} is west of minlon "
                f"{self.minlongitude}; give --rectdomain MINLAT MAXLAT MINLON MAXLON with "
                "MINLON <= MAXLON (a domain across the antimeridian: download each side apart)"
            )
        return self


class CircDomain(ParamModel):
    """Circular domain around a point (``--circdomain lat lon minradius maxradius``, degrees)."""

    latitude: float = Field(..., ge=-90, le=90, description="centre latitude, degrees")
    longitude: float = Field(..., ge=-180, le=180, description="centre longitude, degrees")
    minradius: float = Field(0.0, ge=0, le=180, description="inner radius, degrees")
    maxradius: float = Field(..., gt=0, le=180, description="outer radius, degrees")

    @model_validator(mode="after")
    def _ordered(self) -> CircDomain:
        if self.maxradius <= self.minradius:
            raise ValueError(
                f"circular domain: maxradius {self.maxradius} must exceed minradius {self.minradius}"
            )
        return self


class DownloadParams(ParamModel):
    """How waveforms and station metadata are fetched from FDSN data centres."""

    clients: list[FdsnClientSpec] = Field(
        default_factory=lambda: [
            FdsnClientSpec.parse(n) for n in ("INGV", "GFZ", "ORFEUS", "ETH", "IRIS")
        ],
        description="FDSN data centres in order of preference: short names (OGS INGV GFZ ORFEUS "
        "ETH IRIS …) or base URLs; a unit falls through to the next one when a centre fails",
    )
    token_file: Path | None = Field(
        None,
        description=f"EIDA token file (-K) for restricted data; else the {TOKEN_ENV} variable",
    )
    rectdomain: RectDomain | None = Field(None, description="rectangular domain of the stations")
    circdomain: CircDomain | None = Field(None, description="circular domain of the stations")
    channel_priorities: list[str] = Field(
        ["HH?", "EH?", "HN?"],
        description="per station and day, the first channel pattern with channels is downloaded; "
        "empty: every channel of the selection",
    )
    station_level: Literal["channel", "response"] = Field(
        "response", description="StationXML detail kept in the archive"
    )
    timeout: float = Field(120.0, gt=0, description="seconds to wait for a server answer")
    retries: int = Field(
        3, ge=0, le=20, description="retries of a request after a 5xx or a timeout"
    )
    max_concurrent: int = Field(
        4, ge=1, le=64, description="requests in flight at once per data centre and process"
    )
    backoff: float = Field(
        2.0, ge=0, description="seconds before the first retry; doubles each time"
    )
    request_deadline: float = Field(
        600.0,
        gt=0,
        description="most seconds one waveform request may take, its body included: a server "
        "that trickles bytes is cut off (timeout only bounds each wait for a packet)",
    )
    max_retry_after: float = Field(
        300.0,
        ge=0,
        description="longest Retry-After (seconds) honoured by waiting; a centre asking for "
        "more is left for the next client",
    )
    follow_ups: int = Field(
        3,
        ge=0,
        le=20,
        description="requests per unit for the part of a day a response did not bring (a short "
        "or cut body), before the unit is recorded partial",
    )

    @field_validator("clients", mode="before")
    @classmethod
    def _parse_clients(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if isinstance(value, list):
            return [FdsnClientSpec.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("channel_priorities", mode="before")
    @classmethod
    def _split_priorities(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        return value

    @model_validator(mode="after")
    def _check(self) -> DownloadParams:
        if not self.clients:
            raise ValueError("clients: give at least one FDSN data centre (short name or URL)")
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"clients: names must be unique, got {names}")
        if self.rectdomain and self.circdomain:
            raise ValueError(
                "give either a rectangular (rectdomain) or a circular domain, not both"
            )
        return self

    def client(self, name: str) -> FdsnClientSpec:
        """Return the client spec called ``name``."""
        for spec in self.clients:
            if spec.name == name:
                return spec
        raise KeyError(f"no FDSN client named {name!r}; clients: {[c.name for c in self.clients]}")
