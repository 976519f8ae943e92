"""Catalogues: one per pick set and associator, never pooled.

The lake keeps every association side by side: PhaseNet's and EQTransformer's events of the same
earthquakes, GaMMA's and PyOcto's, one per station group. A **catalogue** is the events of one
associator x configuration x pick source, the pick source being one model x weights (a denoiser
is part of the weights label, ``<W>+CLASS:WEIGHTS``) and optionally one station group
(``lake-MODEL-WEIGHTS@GROUP-<fp>``, :attr:`quakelake.associate_plan.PickSource.label`).

Everything that lists or scores events (``analyze``, ``export``, ``lake compare``, the reports)
keys them with :func:`with_catalogue` and checks the names a user typed with
:func:`check_names`: an unknown model, weights or associator is a :class:`CatalogueError`
(exit 2) listing the known ones, never a silently empty section.

Plain pandas: no Prefect, no lake import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from quakelake.errors import BadInput

__all__ = [
    "CATALOGUE_KEYS",
    "CatalogueError",
    "check_names",
    "filter_events",
    "parse_source",
    "with_catalogue",
]

CATALOGUE_KEYS = ("associator", "config_fingerprint", "pick_source")
GROUP_SEPARATOR = "@"  # as quakelake.groups.GROUP_SEPARATOR (no import: groups imports evaluation)


class CatalogueError(BadInput, ValueError):
    """A model, weights, associator or catalogue named on the command line is not in the lake."""


def parse_source(pick_source: str | None) -> tuple[str, str, str]:
    """Return ``(model, weights, group)`` of an association pick source label.

    >>> parse_source("lake-PhaseNet-stead")
    ('PhaseNet', 'stead', '')
    >>> parse_source("lake-EQTransformer-original+SeisDAE:base@WEST-1a2b3c")
    ('EQTransformer', 'original+SeisDAE:base', 'WEST')
    >>> parse_source("file-0123abcd")
    ('', '', '')
    """
    source = str(pick_source or "")
    group = ""
    if GROUP_SEPARATOR in source:
        source, tail = source.rsplit(GROUP_SEPARATOR, 1)
        group = tail.rsplit("-", 1)[0]
    if not source.startswith("lake-"):
        return "", "", group
    # SeisBench model classes (and "ensemble") hold no dash; weights may
    model, _, weights = source[len("lake-") :].partition("-")
    return (
        "" if model == "all" else model,
        "" if weights == "all" else weights,
        group,
    )


def with_catalogue(events: pd.DataFrame) -> pd.DataFrame:
    """Return ``events`` with ``model``, ``weights``, ``group`` and a ``catalogue`` label per row.

    The label reads ``ASSOCIATOR MODEL/WEIGHTS`` (``@GROUP`` for a group's events, the pick
    source for a pick file); two configurations of one associator on one pick source add
    ``config <fingerprint>``.
    """
    ev = events.copy()
    for col in CATALOGUE_KEYS:
        ev[col] = ev[col].fillna("").astype(str) if col in ev.columns else ""
    if len(ev) == 0:
        return ev.assign(model=[], weights=[], group=[], catalogue=[])
    parsed = {s: parse_source(s) for s in ev["pick_source"].unique()}
    ev["model"] = ev["pick_source"].map(lambda s: parsed[s][0])
    ev["weights"] = ev["pick_source"].map(lambda s: parsed[s][1])
    ev["group"] = ev["pick_source"].map(lambda s: parsed[s][2])

    def label(associator: str, source: str) -> str:
        model, weights, group = parsed[source]
        what = f"{model or 'all'}/{weights or 'all'}" if source.startswith("lake-") else source
        if not source.startswith("lake-") and GROUP_SEPARATOR in source:
            what = source.rsplit(GROUP_SEPARATOR, 1)[0]
        return f"{associator or '?'} {what}".strip() + (f" @{group}" if group else "")

    ev["catalogue"] = [
        label(a, s) for a, s in zip(ev["associator"], ev["pick_source"], strict=True)
    ]
    configs = ev.groupby("catalogue")["config_fingerprint"].nunique()
    several = set(configs[configs > 1].index)
    if several:
        mask = ev["catalogue"].isin(several)
        ev.loc[mask, "catalogue"] = (
            ev.loc[mask, "catalogue"] + " config " + ev.loc[mask, "config_fingerprint"].str[:8]
        )
    return ev


def check_names(
    option: str, asked: Iterable[str] | None, known: Iterable[str], what: str = "in the lake"
) -> None:
    """Raise :class:`CatalogueError` when a name of ``asked`` is not one of ``known``.

    Args:
        option: the option as typed, e.g. ``--associator``.
        asked: the names given (None or empty: nothing to check).
        known: the names available.
        what: where they were looked for, for the message.
    """
    names = sorted({str(k) for k in known if k is not None and str(k) != ""})
    unknown = [a for a in asked or [] if a not in names]
    if unknown:
        raise CatalogueError(
            f"{option} {' '.join(unknown)}: not {what}; known: {', '.join(names) or 'none'}"
        )


def filter_events(
    events: pd.DataFrame,
    models: Sequence[str] | None = None,
    weights: Sequence[str] | None = None,
    associators: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the events (keyed by :func:`with_catalogue`) of the models, weights and associators given."""
    ev = events if "catalogue" in events.columns else with_catalogue(events)
    keep = pd.Series(True, index=ev.index)
    for col, values in (("model", models), ("weights", weights), ("associator", associators)):
        if values:
            keep &= ev[col].isin(list(values))
    return ev[keep]
