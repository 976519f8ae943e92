"""Named station groups (sub-networks): definitions and membership (metrics: :mod:`quakelake.analysis.groups`).

A group is a name and a list of ``NET.STA`` patterns with FDSN wildcards (``OX.*``, ``IV.TRI?``,
``*.ACOM``; a bare ``STA`` means ``*.STA``). Groups are defined under ``groups:`` in the
configuration file or in a groups file (YAML/JSON mapping ``name: [NET.STA, NET.*, ...]``) and
chosen with ``-G NAME ...``: picking covers the stations of the chosen groups, association runs
once per group (pick source ``lake-<model>-<weights>@<group>-<fingerprint of its patterns>``) and the analyzer adds metrics per
group (``group_by`` ``group,model,weights`` / ``group,model,weights,phase`` / ``group,associator``,
``group_value`` = the group name).

Plain Python: no Prefect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd
import yaml

from quakelake.params import ConfigError

GROUP_SEPARATOR = "@"


class GroupError(ConfigError):
    """A station group is unknown, malformed, or matches no station."""


def read_groups_file(path: Path) -> dict[str, list[str]]:
    """Return the groups of a YAML/JSON file holding ``name: [NET.STA, NET.*, ...]``.

    Raises:
        GroupError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise GroupError(
            f"--groups-file: {path} does not exist; give a YAML/JSON file of name: [NET.STA, ...]"
        )
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise GroupError(f"--groups-file: {path} is not valid YAML/JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("groups"), dict):
        data = data["groups"]  # a whole configuration file is accepted too
    return validate_definitions(data, f"--groups-file {path}")


def validate_definitions(data: object, where: str = "groups") -> dict[str, list[str]]:
    """Return ``data`` as ``{name: [pattern, ...]}`` or raise :class:`GroupError` naming ``where``."""
    if not isinstance(data, Mapping) or not data:
        raise GroupError(f"{where}: expected a mapping of group name -> list of NET.STA patterns")
    out: dict[str, list[str]] = {}
    for name, patterns in data.items():
        if isinstance(patterns, str):
            patterns = [p for p in patterns.replace(",", " ").split() if p]
        if (
            not isinstance(patterns, list)
            or not patterns
            or not all(isinstance(p, str) and p for p in patterns)
        ):
            raise GroupError(
                f"{where}: group {name!r} must list NET.STA patterns, e.g. {name}: [OX.*, IV.TRI]"
            )
        if GROUP_SEPARATOR in str(name):
            raise GroupError(f"{where}: group name {name!r} must not contain {GROUP_SEPARATOR!r}")
        out[str(name)] = [p.strip() for p in patterns]
    return out


def resolve(
    definitions: Mapping[str, Sequence[str]], groups_file: Path | None, selected: Sequence[str]
) -> dict[str, list[str]]:
    """Return the chosen groups ``{name: patterns}`` (empty when none is chosen).

    Definitions from ``groups_file`` override those of the same name in ``definitions``.

    Raises:
        GroupError: a chosen name is not defined (naming the defined ones).
    """
    if not selected:
        return {}
    known = dict(validate_definitions(definitions)) if definitions else {}
    if groups_file is not None:
        known.update(read_groups_file(groups_file))
    missing = [g for g in selected if g not in known]
    if missing:
        where = "defined: " + ", ".join(sorted(known)) if known else "none is defined"
        raise GroupError(
            f"-G/--groups: unknown group {', '.join(missing)} ({where}); define groups under 'groups:' in the "
            "-c config file or in --groups-file FILE as name: [NET.STA, NET.*, ...]"
        )
    return {g: list(known[g]) for g in dict.fromkeys(selected)}


def _split(pattern: str) -> tuple[str, str]:
    parts = pattern.split(".")
    if len(parts) == 1:
        return "*", parts[0]
    return parts[0], parts[1]


def in_group(network: str, station: str, patterns: Sequence[str]) -> bool:
    """Return True when ``NET.STA`` matches one of ``patterns``."""
    for pattern in patterns:
        net, sta = _split(pattern)
        if fnmatchcase(network, net) and fnmatchcase(station, sta):
            return True
    return False


def in_any(network: str, station: str, groups: Mapping[str, Sequence[str]]) -> bool:
    """Return True when ``NET.STA`` belongs to at least one of ``groups``."""
    return any(in_group(network, station, p) for p in groups.values())


def chosen_groups(
    definitions: Mapping[str, Sequence[str]],
    groups_file: Path | None,
    selected: Sequence[str],
    stations: Iterable[tuple[str, str]] | None,
    what: str,
) -> dict[str, list[str]]:
    """Return the chosen groups (:func:`resolve`), each checked to match one of ``stations``.

    Args:
        definitions: groups defined in the configuration.
        groups_file: a YAML/JSON file of more groups.
        selected: the names chosen (-G).
        stations: the (NET, STA) the run can use; None: not known yet (names checked only).
        what: where ``stations`` come from, for the message.

    Raises:
        GroupError: an unknown name, or a group that matches none of ``stations``.
    """
    chosen = resolve(definitions, groups_file, selected)
    if chosen and stations is not None:
        check_matches(chosen, stations, what)
    return chosen


def check_matches(
    groups: Mapping[str, Sequence[str]], stations: Iterable[tuple[str, str]], what: str
) -> None:
    """Raise :class:`GroupError` naming every group that matches none of ``stations`` (``(NET, STA)``).

    Args:
        groups: the chosen groups.
        stations: the stations available.
        what: where the stations come from, for the message (e.g. ``the archive data``).
    """
    stations = sorted(set(stations))
    empty = [g for g, p in groups.items() if not any(in_group(n, s, p) for n, s in stations)]
    if empty:
        shown = ", ".join(f"{n}.{s}" for n, s in stations[:12]) + (
            " ..." if len(stations) > 12 else ""
        )
        raise GroupError(
            "-G/--groups: group "
            + ", ".join(f"{g} {groups[g]}" for g in empty)
            + f" matches no station of {what} ({shown or 'none'}); fix its NET.STA patterns or choose other groups"
        )


def source_group(pick_source: str) -> str:
    """Return the group of an association pick source label (``lake-M-W@GROUP-<fp>``), '' when none."""
    if GROUP_SEPARATOR not in pick_source:
        return ""
    return pick_source.rsplit(GROUP_SEPARATOR, 1)[1].rsplit("-", 1)[0]


def _net_sta(keys: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = (
        keys.fillna("").astype(str).str.split(".", expand=True).reindex(columns=range(2)).fillna("")
    )
    bare = parts[1] == ""
    net = parts[0].where(~bare, "")
    sta = parts[1].where(~bare, parts[0])
    return net, sta


def members(keys: pd.Series, patterns: Sequence[str]) -> pd.Series:
    net, sta = _net_sta(keys)
    # Bulletins without network codes compare on the station code: any network pattern matches.
    return pd.Series(
        [
            in_group(n, s, patterns) if n else in_group_code(s, patterns)
            for n, s in zip(net, sta, strict=True)
        ],
        index=keys.index,
        dtype=bool,
    )


def in_group_code(station: str, patterns: Sequence[str]) -> bool:
    """Return True when the bare station code matches the station part of one of ``patterns``."""
    return any(fnmatchcase(station, _split(p)[1]) for p in patterns)
