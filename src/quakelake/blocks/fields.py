"""Block fields taken from the settings models, so that a block never drifts from them.

A block holds some of a settings model's fields (the compute cluster those of
:class:`~quakelake.params.compute.ComputeSettings`, the FDSN access the connection limits of
:class:`~quakelake.params.download.DownloadParams`). :func:`settings_fields` builds a pydantic
mixin with exactly those fields — type, default, constraints and description read from the
settings model — that the block class inherits next to :class:`prefect.blocks.core.Block`:
a default or a description changed in ``quakelake.params`` changes the block and the form the
Prefect UI shows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, create_model
from pydantic_core import PydanticUndefined


def sentence(text: str | None) -> str:
    """Return a settings description as a block description: one sentence ending with a period.

    Prefect's block standards ask for field descriptions that end with a period; the settings
    models' one-line descriptions have none.

    >>> sentence("dask-local: threads per worker")
    'dask-local: threads per worker.'
    """
    text = (text or "").strip()
    return text if text.endswith(".") else text + "."


def settings_fields(
    model: type[BaseModel],
    names: Sequence[str],
    *,
    stored_as: Mapping[str, tuple[Any, Callable[[], Any]]] | None = None,
) -> type[BaseModel]:
    """Return a pydantic model holding the fields ``names`` of ``model``, for a block to inherit.

    Each field keeps the settings field's type, default (or default factory), constraints and
    description (as a sentence).

    Args:
        model: the settings model (e.g. ``ComputeSettings``).
        names: its fields the block holds, in the order the UI shows them.
        stored_as: fields the block stores in another type than the settings model, as
            ``name -> (type, default factory)``: e.g. the FDSN clients as the texts a user
            types (``INGV``, ``http://host:8080``) rather than parsed client specs.

    Raises:
        KeyError: a name that is not a field of ``model``.
    """
    stored_as = stored_as or {}
    definitions: dict[str, Any] = {}
    for name in names:
        info = copy.deepcopy(model.model_fields[name])
        info.description = sentence(info.description)
        annotation = info.annotation
        if name in stored_as:
            annotation, factory = stored_as[name]
            info.annotation, info.default, info.default_factory = (
                annotation,
                PydanticUndefined,
                factory,
            )
        definitions[name] = (annotation, info)
    return create_model(f"{model.__name__}BlockFields", **definitions)
