"""The one base of every parameter model: unknown fields are refused, assignments validated.

``extra="forbid"`` makes a misspelt key in a config file, a block or a flow's parameters an
error that names it instead of a silently ignored value; ``validate_assignment`` keeps a model
valid when code sets a field after construction. Models that must not change once built (the
magnitude stage's, shared as a flow's default value) add ``frozen=True`` on top.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from quakelake.errors import name_problem

__all__ = ["ParamModel"]


class ParamModel(BaseModel):
    """Base of QuakeLake's parameter models (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _plain(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A name that becomes a file name (weights, training sets): see quakelake.errors.name_problem.
PlainName = Annotated[str, AfterValidator(_plain)]
