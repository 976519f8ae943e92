"""How parameters read in a message: ``P 90, S 85``, ``CI.*.*.HH?``, ``2020-10-01..2020-10-02``.

No dict, list or datetime reprs reach the user. Used by the command line's printing and by the
flows' error messages (which may not import :mod:`quakelake.cli`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["codes_text", "counts_text", "days_text", "selection_text"]


def counts_text(counts: Mapping[str, int] | None, empty: str = "none") -> str:
    """Return ``{"P": 90, "S": 85}`` as ``P 90, S 85`` (``empty`` when there is nothing).

    >>> counts_text({"P": 90, "S": 85})
    'P 90, S 85'
    >>> counts_text({})
    'none'
    """
    if not counts:
        return empty
    return ", ".join(f"{key} {value}" for key, value in counts.items())


def codes_text(codes: Iterable[str] | str) -> str:
    """Return a list of codes as ``A,B`` (one code as itself).

    >>> codes_text(["HH?", "EH?"])
    'HH?,EH?'
    """
    if isinstance(codes, str):
        return codes
    return ",".join(str(c) for c in codes) or "*"


def selection_text(selection: Any) -> str:
    """Return a :class:`~quakelake.params.StationSelection` as ``NET.STA.LOC.CHA`` patterns.

    >>> from quakelake.params import StationSelection
    >>> selection_text(StationSelection(networks=["CI"], channels=["HH?", "EH?"]))
    'CI.*.*.HH?,EH?'
    """
    return ".".join(
        codes_text(getattr(selection, part))
        for part in ("networks", "stations", "locations", "channels")
    )


def days_text(window: Any) -> str:
    """Return a :class:`~quakelake.params.TimeWindow` as ``2020-10-01..2020-10-02`` (``any`` for open ends).

    >>> from quakelake.params import TimeWindow
    >>> import datetime as dt
    >>> days_text(TimeWindow(start=dt.date(2020, 10, 1), end=dt.date(2020, 10, 1)))
    '2020-10-01'
    >>> days_text(TimeWindow())
    'every day found'
    """
    if window.start is None and window.end is None:
        return "every day found"
    if window.start == window.end:
        return str(window.start)
    return f"{window.start or 'any'}..{window.end or 'any'}"
