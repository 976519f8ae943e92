"""Parameters of the ensemble stage: how model x weights members are combined into consensus picks.

Plain pydantic; the consensus itself lives in :mod:`quakelake.picking.ensemble`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quakelake.params import ConfigError
from quakelake.params.base import ParamModel

__all__ = ["EnsembleError", "EnsembleParams"]


class EnsembleError(ConfigError):
    """An ensemble cannot be formed (e.g. fewer than two members)."""


class EnsembleParams(ParamModel):
    """How the grid's members are combined into consensus picks (stored as model ``ensemble``)."""

    method: Literal["mean", "median", "semblance"] = Field(
        "mean",
        description="aggregate of the members' probability curves: mean, median, or semblance "
        "(mean weighted by the members' coherence over a sliding window, as ELEP does)",
    )
    agreement_s: float = Field(
        0.5,
        gt=0,
        description="a member agrees with a consensus pick when its own pick lies this close (s)",
    )
    semblance_window_s: float = Field(
        0.5, gt=0, description="sliding window of the semblance weight (s)"
    )
    p_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="P threshold on the aggregate (default: the pick P threshold)",
    )
    s_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="S threshold on the aggregate (default: the pick S threshold)",
    )
