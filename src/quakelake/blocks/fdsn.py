"""FDSN web-service access (data centres and token) as a Prefect block."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class FdsnAccessBlock(Block):
    """How waveforms and station metadata are downloaded: FDSN clients, token, limits.

    The EIDA token is stored encrypted by the Prefect server (``SecretStr``) and never
    printed; ``token.get_secret_value()`` reads it.
    """

    _block_type_name = "QuakeLake FDSN Access"
    _block_type_slug = "quakelake-fdsn-access"
    _description = "FDSN data centres (ObsPy client names or URLs) and an optional EIDA token."
    _code_example = """
from quakelake.blocks import FdsnAccessBlock

access = FdsnAccessBlock.load("BLOCK_NAME")
clients = access.clients
"""

    clients: list[str] = Field(
        default_factory=lambda: ["INGV"],
        description="FDSN data centres tried in order: ObsPy names (INGV, GFZ, IRIS) or base URLs.",
    )
    token: SecretStr | None = Field(
        None, description="EIDA authentication token (restricted data); stored encrypted."
    )
    timeout_s: float = Field(120.0, gt=0, description="seconds before a request is abandoned.")
    retries: int = Field(3, ge=0, le=20, description="attempts per request after the first.")
    max_concurrent: int = Field(
        4, ge=1, le=64, description="requests in flight at once (respect the data centre)."
    )
