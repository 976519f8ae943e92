"""Parameters of the local-magnitude stage: amplitude window, attenuation law, event ML.

Plain pydantic (NumPy is imported when a law is evaluated): the run configuration imports this
without ObsPy; the amplitude measurement lives in :mod:`quakelake.association.magnitudes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field, model_validator

from quakelake.params.base import ParamModel

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AmplitudeParams", "AttenuationLaw", "MagnitudeError", "MagnitudeParams"]


class MagnitudeError(ValueError):
    """Magnitude parameters that cannot work (bad law, bad window)."""


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
        description="(distance km, -log A0) points, linear in distance; replaces a/b/c when given",
    )
    station_corrections: dict[str, float] = Field(
        {}, description="additive station corrections by NET.STA or NET.STA.LOC"
    )
    min_km: float = Field(0.0, ge=0, description="stations nearer than this are not used")
    max_km: float = Field(600.0, gt=0, description="stations farther than this are not used")

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
