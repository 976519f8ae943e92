"""Prefect blocks of QuakeLake: lake location, FDSN access, compute cluster.

Register the block types with the server: ``prefect block register -m quakelake.blocks``.
Flows take block *names*; the ``load_*`` helpers turn a name into what the flow needs.
"""

from __future__ import annotations

from pathlib import Path

from quakelake.blocks.compute import ComputeClusterBlock
from quakelake.blocks.fdsn import FdsnAccessBlock
from quakelake.blocks.lake import LakeBlock
from quakelake.params.compute import ComputeSettings

__all__ = [
    "ComputeClusterBlock",
    "FdsnAccessBlock",
    "LakeBlock",
    "load_compute",
    "load_fdsn_access",
    "load_lake",
]


def _load(cls, name: str):
    try:
        return cls.load(name)
    except ValueError as exc:
        raise ValueError(
            f"no {cls.get_block_type_name()} block named {name!r} on the Prefect server "
            f"({exc}); create it in the UI (Blocks) or with {cls.__name__}(...).save({name!r})"
        ) from None


def load_lake(name: str) -> Path:
    """Return the lake root folder stored in the LakeBlock ``name`` (its catalog recorded there)."""
    from quakelake.lakehouse import Lake

    block = _load(LakeBlock, name)
    if block.catalog:
        Lake(block.path(), catalog=block.catalog).adopt()
    return block.path()


def load_fdsn_access(name: str) -> FdsnAccessBlock:
    """Return the FdsnAccessBlock ``name`` (clients, token, limits)."""
    return _load(FdsnAccessBlock, name)


def load_compute(name: str) -> ComputeSettings:
    """Return the ComputeSettings stored in the ComputeClusterBlock ``name``."""
    return _load(ComputeClusterBlock, name).settings()
