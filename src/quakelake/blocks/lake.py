"""The lakehouse location as a Prefect block."""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field


class LakeBlock(Block):
    """Where a QuakeLake lakehouse lives: its root folder (local or a shared filesystem).

    Example:
        ``LakeBlock(root="/leonardo_work/IscrC_QUAKE/lake").save("leonardo")`` then
        ``LakeBlock.load("leonardo").path()``.
    """

    _block_type_name = "QuakeLake Lake"
    _block_type_slug = "quakelake-lake"
    _description = "Root folder of a QuakeLake lakehouse (Parquet files under a DuckLake catalog)."
    _code_example = """
from quakelake.blocks import LakeBlock

lake = LakeBlock.load("BLOCK_NAME")
root = lake.path()
"""

    root: str = Field(
        ..., min_length=1, description="lake root folder, e.g. ./lake or $WORK/quakelake/lake."
    )
    catalog: str | None = Field(
        None,
        description="PostgreSQL catalog URL for many writers, postgresql://USER@HOST/DB (no "
        "password: PGPASSWORD or ~/.pgpass); empty: catalog.sqlite in the lake folder.",
    )

    def path(self) -> Path:
        """Return the lake root as a Path, with ``~`` and environment variables expanded."""
        import os

        return Path(os.path.expandvars(self.root)).expanduser()
