"""FDSN web-service access (data centres and token) as a Prefect block."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from quakelake.blocks.fields import settings_fields
from quakelake.params.download import DownloadParams, FdsnClientSpec

#: The DownloadParams an access block holds: the data centres and the limits of talking to them.
ACCESS_FIELDS = ("clients", "timeout", "retries", "max_concurrent")


def client_text(spec: FdsnClientSpec) -> str:
    """Return what a user types for ``spec``: its short name (``INGV``) or its base URL.

    >>> [client_text(FdsnClientSpec.parse(text)) for text in ("ingv", "http://h:8080/")]
    ['INGV', 'http://h:8080']
    """
    return spec.name if FdsnClientSpec.parse(spec.name) == spec else spec.url


def default_clients() -> list[str]:
    """Return the data centres DownloadParams uses by default, as the texts a user types."""
    factory = DownloadParams.model_fields["clients"].default_factory
    return [client_text(spec) for spec in factory()]  # type: ignore[call-arg,misc]


_Fields = settings_fields(
    DownloadParams, ACCESS_FIELDS, stored_as={"clients": (list[str], default_clients)}
)


class FdsnAccessBlock(Block, _Fields):  # type: ignore[misc,valid-type]
    """How waveforms and station metadata are downloaded: FDSN clients, token, limits.

    Its fields are those of :class:`~quakelake.params.download.DownloadParams` named in
    :data:`ACCESS_FIELDS` (the clients as the names or URLs a user types), and the token. The
    EIDA token is stored encrypted by the Prefect server (``SecretStr``) and never printed;
    ``token.get_secret_value()`` reads it.
    """

    _block_type_name = "QuakeLake FDSN Access"
    _block_type_slug = "quakelake-fdsn-access"
    _description = "FDSN data centres (ObsPy client names or URLs) and an optional EIDA token."
    _code_example = """
from quakelake.blocks import FdsnAccessBlock

access = FdsnAccessBlock.load("BLOCK_NAME")
clients = access.clients
"""

    settings_model: ClassVar[type[DownloadParams]] = DownloadParams
    held: ClassVar[tuple[str, ...]] = ACCESS_FIELDS

    token: SecretStr | None = Field(
        None, description="EIDA authentication token (restricted data); stored encrypted."
    )

    def download_params(self, params: DownloadParams) -> DownloadParams:
        """Return ``params`` with the clients and limits this block holds, validated."""
        return DownloadParams.model_validate(
            {**params.model_dump(), **self.model_dump(include=set(self.held))}
        )
