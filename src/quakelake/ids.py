"""The one vocabulary of identities: how a station, a station-day and a trace are named.

Every stage names things the same way, so a pick, an assignment, a station row, a unit in the
ledger and a reference pick join on equal strings:

* ``station_id``: ``NET.STA.LOC`` (SeisBench's ``trace_id``; the band has its own column);
* ``station_code``: ``NET.STA`` (groups, station metadata, messages);
* ``unit_key``: ``NET.STA.YYYY-MM-DD``, one station-day (picking and download units).

Plain Python, no heavy imports: frames are handled by duck typing (pandas Series add).
"""

from __future__ import annotations

from typing import Any

__all__ = ["station_code", "station_id", "station_ids", "unit_key"]


def station_id(network: str, station: str, location: str) -> str:
    """Return the ``NET.STA.LOC`` station id used by SeisBench pick ``trace_id``.

    >>> station_id("CI", "BOM", "")
    'CI.BOM.'
    """
    return f"{network}.{station}.{location}"


def station_ids(frame: Any) -> Any:
    """Return the ``NET.STA.LOC`` ids of a frame's ``network``, ``station``, ``location`` columns.

    The columns must hold strings (no missing values): the result is their plain concatenation.

    >>> import pandas as pd
    >>> station_ids(pd.DataFrame({"network": ["CI"], "station": ["BOM"], "location": ["00"]})).tolist()
    ['CI.BOM.00']
    """
    return frame["network"] + "." + frame["station"] + "." + frame["location"]


def station_code(network: str, station: str) -> str:
    """Return the ``NET.STA`` code of a station (groups, metadata, messages).

    >>> station_code("CI", "BOM")
    'CI.BOM'
    """
    return f"{network}.{station}"


def unit_key(network: str, station: str, day: Any) -> str:
    """Return the ``NET.STA.YYYY-MM-DD`` key of one station-day (a date or its ISO text).

    >>> import datetime as dt
    >>> unit_key("CI", "BOM", dt.date(2020, 10, 1))
    'CI.BOM.2020-10-01'
    """
    return f"{network}.{station}.{day}"
