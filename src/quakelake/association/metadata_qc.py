"""Metadata QC: per channel, what the station metadata gave a run and what the run used it for.

The first thing a seismologist checks when an ML looks wrong, or when events are missing, is
the station metadata: did the channel have coordinates and an elevation, a response valid at
the time of the data, and was it used for picking, location and magnitude? Each association
run writes one row per channel into the lake's ``metadata_qc`` table
(:data:`quakelake.lakehouse.schema.METADATA_QC`), with ``reason`` saying why a channel was not
used for what it could have been:

* channels of the station file: the epoch valid for the data (the latest when none is),
  whether it has coordinates, elevation and a usable response (stages, or an overall
  velocity/acceleration sensitivity) for the data's time;
* sites with picks that the station file does not list (``in_metadata`` false): their picks
  could not be located.

A channel without a usable response gets no amplitude (the magnitude stage says why in its
messages; the QC row says it per channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from quakelake.archive.stations import read_inventory, read_stations

QC_COLUMNS = [
    "run_id",
    "pick_source",
    "network",
    "station",
    "location",
    "channel",
    "in_metadata",
    "epoch_start",
    "epoch_end",
    "epoch_covers_data",
    "has_coordinates",
    "has_elevation",
    "has_response",
    "response_stages",
    "response_valid",
    "data_start",
    "data_end",
    "used_picking",
    "used_location",
    "used_magnitude",
    "reason",
]


def channel_epochs(station_file: str | Path) -> pd.DataFrame:
    """Return the channel epochs of ``station_file`` with their response: stages and usability.

    Adds ``response_stages`` (number of stages, -1 without a response) and ``response_usable``
    (stages, or an overall sensitivity in M/S or M/S**2) to :func:`read_stations`' columns. A
    station table (CSV, lists) has no responses.
    """
    stations = read_stations(station_file)
    stations["response_stages"] = -1
    stations["response_usable"] = False
    head = Path(station_file).read_bytes()[:2000].lstrip()
    if not head.startswith(b"<"):
        return stations
    inventory = read_inventory(station_file)
    info: dict[tuple, tuple[int, bool]] = {}
    for net in inventory:
        for sta in net:
            for cha in sta:
                loc = "" if cha.location_code in ("--", None) else cha.location_code.strip()
                start = _ns(cha.start_date.datetime if cha.start_date else None)
                info[(net.code, sta.code, loc, cha.code, start)] = _response(cha.response)
    keys = zip(
        stations["network"],
        stations["station"],
        stations["location"],
        stations["channel"],
        stations["start"],
        strict=True,
    )
    found = [info.get((n, s, lo, c, _ns(t)), (-1, False)) for n, s, lo, c, t in keys]
    stations["response_stages"] = [f[0] for f in found]
    stations["response_usable"] = [f[1] for f in found]
    return stations


def _ns(value) -> int | None:
    """Return a time as integer nanoseconds (a dictionary key whatever its resolution)."""
    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).value)


def _response(response) -> tuple[int, bool]:
    if response is None:
        return -1, False
    stages = len(response.response_stages or [])
    sensitivity = response.instrument_sensitivity
    units = (sensitivity.input_units or "").upper() if sensitivity is not None else ""
    flat = (
        sensitivity is not None and bool(sensitivity.value) and units in ("M/S", "M/S**2", "M/S2")
    )
    return stages, bool(stages) or flat


def _pick(epochs: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return one epoch per channel: the one valid for the data, else the latest."""
    begins = pd.to_datetime(epochs["start"], utc=True)
    ends = pd.to_datetime(epochs["end"], utc=True)
    out = epochs.copy()
    out["epoch_covers_data"] = (begins.isna() | (begins <= end)) & (ends.isna() | (ends >= start))
    out["_order"] = begins.fillna(pd.Timestamp.min.tz_localize("UTC"))
    out = out.sort_values(["epoch_covers_data", "_order"], kind="stable")
    keys = ["network", "station", "location", "channel"]
    return out.drop_duplicates(keys, keep="last").drop(columns="_order").reset_index(drop=True)


def metadata_qc(
    epochs: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    picked: set[tuple[str, str, str, str]],
    located: set[str],
    measured: set[tuple[str, str]],
    rejected_only: set[str] = frozenset(),  # type: ignore[assignment]
) -> pd.DataFrame:
    """Return the QC rows (:data:`QC_COLUMNS` but ``run_id``/``pick_source``) of one run.

    Args:
        epochs: :func:`channel_epochs` of the station file (empty: none given).
        start, end: the time span of the run's data.
        picked: (network, station, location, band) with picks in the run ('' band: unknown).
        located: ``NET.STA.LOC`` whose picks located a reported origin.
        measured: (``NET.STA.LOC``, channel) with a Wood-Anderson amplitude.
        rejected_only: ``NET.STA.LOC`` whose picks are only in origins the gate rejected.
    """
    chosen = _pick(epochs, start, end) if len(epochs) else epochs.assign(epoch_covers_data=[])
    # picks that name a site less precisely (CI.IMP. for CI.IMP.00) are placed as the
    # associator places them (quakelake.association_input.resolve_stations): by NET.STA
    sites = {
        (str(n), str(s), str(lo))
        for n, s, lo in zip(chosen["network"], chosen["station"], chosen["location"], strict=True)
    }
    by_code: dict[tuple[str, str], list[str]] = {}
    for n, s, lo in sorted(sites):
        by_code.setdefault((n, s), []).append(lo)

    def site_of(net: str, sta: str, loc: str) -> tuple[str, str, str]:
        if (net, sta, loc) in sites or (net, sta) not in by_code:
            return net, sta, loc
        return net, sta, by_code[(net, sta)][0]

    picked = {(*site_of(n, s, lo), b) for n, s, lo, b in picked}

    def resolve(ids: set[str]) -> set[str]:
        return {".".join(site_of(*(i.split(".") + ["", ""])[:3])) for i in ids}

    located, rejected_only = resolve(located), resolve(rejected_only)
    measured = {(next(iter(resolve({sid}))), cha) for sid, cha in measured}
    rows = []
    listed: set[tuple[str, str, str]] = set()
    for ch in chosen.itertuples(index=False):
        net, sta, loc, cha = str(ch.network), str(ch.station), str(ch.location), str(ch.channel)
        sid = f"{net}.{sta}.{loc}"
        listed.add((net, sta, loc))
        band = cha[:2]
        has_xy = bool(np.isfinite(ch.latitude) and np.isfinite(ch.longitude))
        has_z = bool(np.isfinite(ch.elevation_m)) if ch.elevation_m is not None else False
        covers = bool(ch.epoch_covers_data)
        stages = int(ch.response_stages)
        usable = bool(ch.response_usable)
        valid = usable and covers
        pick = (net, sta, loc, band) in picked or (net, sta, loc, "") in picked
        located_ = sid in located
        magnitude = (sid, cha) in measured
        why = []
        if not covers:
            why.append(
                f"no epoch covers the data ({_day(ch.start)}..{_day(ch.end)}): its latest epoch used"
            )
        if not has_z:
            why.append("no elevation: placed at sea level")
        if not pick:
            why.append("no picks")
        elif not located_:
            why.append(
                "its picks are only in origins the quality gate rejected"
                if sid in rejected_only
                else "its picks located no reported origin"
            )
        if not magnitude:
            if stages < 0:
                why.append("no response: no amplitude")
            elif not usable:
                why.append(
                    "response without stages or velocity/acceleration sensitivity: no amplitude"
                )
            elif not covers:
                why.append("response not valid for the data's time: no amplitude")
            elif len(cha) == 3 and cha[2] not in "NE12":
                why.append("not horizontal: ML uses horizontal channels")
            elif located_:
                why.append("no amplitude measured (see the magnitude stage's messages)")
        rows.append(
            {
                "network": net,
                "station": sta,
                "location": loc,
                "channel": cha,
                "in_metadata": True,
                "epoch_start": ch.start,
                "epoch_end": ch.end,
                "epoch_covers_data": covers,
                "has_coordinates": has_xy,
                "has_elevation": has_z,
                "has_response": stages >= 0,
                "response_stages": stages,
                "response_valid": valid,
                "used_picking": pick,
                "used_location": located_,
                "used_magnitude": magnitude,
                "reason": "; ".join(why),
            }
        )
    for net, sta, loc, band in sorted(picked):
        if (net, sta, loc) in listed:
            continue
        rows.append(
            {
                "network": net,
                "station": sta,
                "location": loc,
                "channel": f"{band}?" if band else "",
                "in_metadata": False,
                "epoch_covers_data": False,
                "has_coordinates": False,
                "has_elevation": False,
                "has_response": False,
                "response_stages": -1,
                "response_valid": False,
                "used_picking": True,
                "used_location": False,
                "used_magnitude": False,
                "reason": "not in the station file: its picks were not located, no amplitude",
            }
        )
    out = pd.DataFrame(rows, columns=[c for c in QC_COLUMNS if c not in ("run_id", "pick_source")])
    out["data_start"] = start
    out["data_end"] = end
    return out.drop_duplicates(["network", "station", "location", "channel"]).reset_index(drop=True)


def _day(value) -> str:
    return "open" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def run_qc(
    epochs: pd.DataFrame,
    picks: pd.DataFrame,
    events: pd.DataFrame,
    assignments: pd.DataFrame,
    amplitudes: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Return the QC rows of one association run from what it read and wrote.

    Args:
        epochs: :func:`channel_epochs` of the station file, or the lake's station rows.
        picks: ``network, station, location, band`` of the picks the run associated (``band``
            may be missing: external pick files name stations only).
        events: the run's origins (``event_id``, ``evaluation_status``).
        assignments: their picks (``event_id``, ``station_id``).
        amplitudes: their amplitudes (``station_id``, ``channel``).
    """
    from quakelake.association.quality import is_rejected

    epochs = epochs.copy()
    for col, default in (("response_stages", -1), ("response_usable", False)):
        if col not in epochs:
            epochs[col] = default
    picked = {
        (str(n), str(s), str(lo or ""), str(b or ""))
        for n, s, lo, b in zip(
            picks["network"],
            picks["station"],
            picks["location"],
            picks["band"] if "band" in picks else [""] * len(picks),
            strict=True,
        )
    }
    rejected = set(events.loc[is_rejected(events), "event_id"].astype(str))
    a = assignments.assign(rejected=assignments["event_id"].astype(str).isin(rejected))
    located = set(a.loc[~a["rejected"], "station_id"].astype(str))
    rejected_only = set(a.loc[a["rejected"], "station_id"].astype(str)) - located
    measured = set(
        zip(amplitudes["station_id"].astype(str), amplitudes["channel"].astype(str), strict=True)
    )
    return metadata_qc(epochs, start, end, picked, located, measured, rejected_only)
