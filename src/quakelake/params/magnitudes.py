"""Parameters of the local-magnitude stage: amplitude window, attenuation law, event ML.

Plain pydantic (NumPy is imported when a law is evaluated): the run configuration imports this
without ObsPy; the amplitude measurement lives in :mod:`quakelake.association.magnitudes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from quakelake.errors import BadInput
from quakelake.params.base import ParamModel

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AmplitudeParams",
    "AttenuationLaw",
    "MagnitudeError",
    "MagnitudeParams",
    "parse_table",
]


class MagnitudeError(BadInput, ValueError):
    """Magnitude parameters that cannot work (bad law, bad window): bad input, exit status 2."""


def parse_table(text: str) -> list[tuple[float, float]]:
    """Return the ``(distance km, -log A0)`` points of a SeisComP-style table string.

    Two forms are read:

    * ``"0 1.3; 60 2.8; 400 4.5; 1000 5.85"``: ``distance -logA0`` pairs separated by ``;`` (the
      values as a regional ``-log A0`` table prints them, positive);
    * ``"0:-1.3,60:-2.8,400:-4.5,1000:-5.85"``: SeisComP's own ``logA0`` parameter
      (``magnitudes.MLv.logA0``, ``distance:logA0`` pairs separated by ``,``), whose values are
      ``log A0`` (negative): they are negated here.

    Raises:
        MagnitudeError: naming the part that is not a pair of numbers.
    """
    seiscomp = ":" in text
    parts = [p.strip() for p in text.replace("\n", ";").split("," if seiscomp else ";")]
    points = []
    for part in filter(None, parts):
        pair = part.split(":") if seiscomp else part.split()
        try:
            distance, value = (float(x) for x in pair)
        except ValueError:
            raise MagnitudeError(
                f"magnitude.law.table / --ml-law: {part!r} is not 'distance value' "
                '(give e.g. "0 1.3; 60 2.8; 400 4.5" or SeisComP\'s "0:-1.3,60:-2.8,400:-4.5")'
            ) from None
        points.append((distance, -value if seiscomp else value))
    return points


class AttenuationLaw(ParamModel):
    """A local-magnitude attenuation law: ``ML = log10(A_mm) + -log A0(R) + station correction``.

    ``A_mm`` is the zero-to-peak amplitude of a Wood-Anderson (magnification 2080) trace in mm.
    Default: Hutton & Boore (1987), ``-log A0 = 1.110 log10(R/100) + 0.00189 (R - 100) + 3.0``
    with hypocentral distance R in km.
    """

    model_config = ConfigDict(frozen=True)  # immutable: see quakelake.params.base

    name: str = Field("HB87", description="name of the law, recorded with the magnitudes")
    a: float = Field(1.110, description="coefficient of log10(R / ref_km)")
    b: float = Field(0.00189, description="coefficient of (R - ref_km), per km")
    c: float = Field(3.0, description="-log A0 at the reference distance")
    ref_km: float = Field(100.0, gt=0, description="reference distance, km")
    distance: Literal["hypocentral", "epicentral"] = Field(
        "hypocentral", description="distance the law takes"
    )
    table: list[tuple[float, float]] | None = Field(
        None,
        description="(distance km, -log A0) points, linear in distance; replaces a/b/c when given; "
        'also a SeisComP-style string "0 1.3; 60 2.8; 400 4.5" (or SeisComP\'s logA0 '
        '"0:-1.3,60:-2.8,400:-4.5")',
    )
    station_corrections: dict[str, float] = Field(
        {}, description="additive station corrections by NET.STA or NET.STA.LOC"
    )
    min_km: float = Field(0.0, ge=0, description="stations nearer than this are not used")
    max_km: float = Field(600.0, gt=0, description="stations farther than this are not used")

    @field_validator("table", mode="before")
    @classmethod
    def _table_text(cls, value: Any) -> Any:
        return parse_table(value) if isinstance(value, str) else value

    @classmethod
    def from_text(cls, text: str, **fields: Any) -> AttenuationLaw:
        """Return the law a command line names: ``HB87`` (the default) or a ``-log A0`` table string.

        See :func:`parse_table` for the table forms; ``name`` defaults to ``table``.
        """
        if text.strip().upper() in ("", "HB87"):
            return cls(**fields)
        return cls(table=parse_table(text), **{"name": "table", **fields})

    @model_validator(mode="after")
    def _check_table(self) -> AttenuationLaw:
        if self.table is not None:
            if len(self.table) < 2:
                raise MagnitudeError(
                    "magnitude.law.table: give at least two (distance_km, -logA0) points"
                )
            distances = [d for d, _ in self.table]
            if any(b <= a for a, b in zip(distances, distances[1:], strict=False)):
                raise MagnitudeError("magnitude.law.table: distances must increase strictly")
        return self

    def minus_log_a0(self, distance_km: np.ndarray | float) -> np.ndarray:
        """Return -log A0 at ``distance_km`` (NaN outside ``min_km``..``max_km`` or the table)."""
        import numpy as np

        r = np.asarray(distance_km, dtype=float)
        if self.table is not None:
            d, v = np.array(self.table, dtype=float).T
            out = np.interp(r, d, v, left=np.nan, right=np.nan)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = self.a * np.log10(r / self.ref_km) + self.b * (r - self.ref_km) + self.c
        return np.where((r >= self.min_km) & (r <= self.max_km) & (r > 0), out, np.nan)

    def correction(self, station_id: str) -> float:
        """Return the station correction of ``NET.STA[.LOC]`` (0 when none is set)."""
        if station_id in self.station_corrections:
            return self.station_corrections[station_id]
        return self.station_corrections.get(".".join(station_id.split(".")[:2]), 0.0)

    def magnitude(
        self,
        amplitude_m: np.ndarray | float,
        distance_km: np.ndarray | float,
        station_ids: Iterable[str] | None = None,
    ) -> np.ndarray:
        """Return ML from Wood-Anderson amplitudes in metres and distances in km."""
        import numpy as np

        amp = np.asarray(amplitude_m, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ml = np.log10(amp * 1000.0) + self.minus_log_a0(distance_km)
        ml = np.where(amp > 0, ml, np.nan)
        if station_ids is not None:
            ml = ml + np.array([self.correction(s) for s in station_ids], dtype=float)
        return ml


class AmplitudeParams(ParamModel):
    """Where and how the Wood-Anderson amplitude is read."""

    model_config = ConfigDict(frozen=True)  # immutable: see quakelake.params.base

    pre_s: float = Field(
        1.0, ge=0, description="window opens this many seconds before the S (or P) pick"
    )
    window_s: float = Field(10.0, gt=0, description="window length after the S pick, seconds")
    vp_vs: float = Field(
        1.73, gt=1, description="Vp/Vs used to place the S window when a station has no S pick"
    )
    pad_s: float = Field(
        30.0, ge=0, description="data read on both sides of the window for the response removal"
    )
    pre_filt_hz: tuple[float, float] = Field(
        (0.2, 0.5),
        description="low corners of the cosine pre-filter (high corners: 0.8 and 0.9 x Nyquist)",
    )
    water_level_db: float = Field(60.0, description="water level of the spectral division, dB")


class MagnitudeParams(ParamModel):
    """Local magnitude stage: amplitudes, law, event ML."""

    model_config = ConfigDict(frozen=True)  # immutable: see quakelake.params.base

    amplitude: AmplitudeParams = Field(
        default_factory=AmplitudeParams, description="amplitude measurement"
    )
    law: AttenuationLaw = Field(
        default_factory=AttenuationLaw, description="attenuation law (HB87 default)"
    )
    magnitude_type: str = Field("ML", description="magnitude type written with the values")
    min_stations: int = Field(1, ge=1, description="fewest stations with an ML for an event ML")
