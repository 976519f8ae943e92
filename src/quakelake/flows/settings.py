"""The run's settings, resolved in one place for the command line and the flows alike.

Precedence, lowest first::

    built-in defaults < configuration file (-c) or a flow's ``config`` parameter
                      < blocks named (lake folder, compute cluster)
                      < command-line options (and the daily deployment's previous day)

``quakelake run`` and the ``quakelake-pipeline`` deployment both call :func:`resolve_settings`,
so a block named on the command line and the same block named in ``prefect.yaml`` mean the
same thing. No Prefect import unless a block is named (``--help`` and bad input stay fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quakelake.config import (
    ConfigError,
    RunConfig,
    deep_merge,
    read_config_file,
    validate_config,
)


def block_settings(lake_block: str | None, compute_block: str | None) -> dict[str, Any]:
    """Return the settings the named blocks hold (``lake``, ``execution``), as configuration values.

    Raises:
        ConfigError: a block of that name is not on the Prefect server.
    """
    values: dict[str, Any] = {}
    if not (lake_block or compute_block):
        return values
    from quakelake import blocks

    try:
        if lake_block:
            values["lake"] = blocks.load_lake(lake_block)
        if compute_block:
            # only what the block holds: the rest of ``execution`` keeps the file's values
            held = set(blocks.ComputeClusterBlock.model_fields)
            values["execution"] = blocks.load_compute(compute_block).model_dump(
                include=held, exclude_none=True
            )
    except ValueError as exc:
        option = "--lake-block" if "lake" not in values and lake_block else "--compute-block"
        raise ConfigError(f"{option}: {exc}") from None
    return values


def resolve_settings(
    config: RunConfig | Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    lake_block: str | None = None,
    compute_block: str | None = None,
    names: Mapping[str, str] | None = None,
) -> RunConfig:
    """Return the run's settings: defaults < ``config`` < blocks < ``overrides``.

    Args:
        config: a configuration file (JSON/YAML), a flow's RunConfig parameter, or None.
        overrides: nested parameter values given on the command line (``{"pick": {"p_threshold":
            0.3}}``); they win over everything else.
        lake_block: a QuakeLake Lake block whose folder is the lake.
        compute_block: a Compute Cluster block whose settings are the task runner.
        names: the option that set a dotted parameter name, for error messages.

    Raises:
        ConfigError: naming every invalid parameter (by its option when ``names`` has it).
    """
    source = ""
    if isinstance(config, RunConfig):
        data: dict[str, Any] = config.model_dump()
    elif config:
        data, source = read_config_file(Path(config)), str(config)
    else:
        data = {}
    data = deep_merge(data, block_settings(lake_block, compute_block))
    return validate_config(deep_merge(data, dict(overrides or {})), source, names)
