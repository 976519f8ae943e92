"""What the web page of ``quakelake serve`` shows: events, stations, one event, its waveforms.

Plain Python over :class:`~quakelake.lakehouse.published.LakeReader` (read-only, one snapshot
per answer); :mod:`quakelake.service.webservice` serves these as JSON and PNG. The waveforms are read
from the archive files the lake's ``waveform_index`` points to (never from a path in a URL),
band-pass filtered and drawn with the event's picks.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

import pandas as pd

from quakelake.lakehouse.published import EventFilter, LakeReader, catalog_name

PAGE_COLUMNS = (
    "event_id",
    "time",
    "latitude",
    "longitude",
    "depth_km",
    "magnitude",
    "magnitude_type",
    "associator",
    "pick_source",
    "n_picks",
    "n_stations",
    "location_quality",
)
FILTER_HZ = (1.0, 20.0)
MAX_TRACES = 10


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
    if not isinstance(value, str) and pd.isna(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the rows of ``frame`` as JSON-ready dicts (times ISO UTC, NaN as null)."""
    cols = list(frame.columns)
    return [
        {c: _json_value(v) for c, v in zip(cols, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]


def state(reader: LakeReader) -> dict[str, int]:
    """Return the lake's latest snapshot and event count (the page polls it)."""
    snapshot = reader.snapshot()
    return {"snapshot": snapshot, "events": reader.count_events(snapshot)}


def events(reader: LakeReader, query: EventFilter) -> dict[str, Any]:
    """Return the events of ``query`` (the page's columns, each with its catalogue name)."""
    snapshot = reader.snapshot()
    frame = reader.events(EventFilter(**{**query.__dict__, "columns": PAGE_COLUMNS}), snapshot)
    rows = records(frame)
    for row in rows:
        row["catalog"] = catalog_name(row.pop("pick_source") or "", row["associator"] or "")
    return {"snapshot": snapshot, "events": rows}


def stations(reader: LakeReader) -> list[dict[str, Any]]:
    """Return the lake's stations (code, latitude, longitude, elevation)."""
    return records(reader.stations(reader.snapshot()))


def catalogs(reader: LakeReader) -> list[dict[str, Any]]:
    """Return the lake's catalogues (pick source x associator) with their event counts."""
    return records(reader.catalogs(reader.snapshot()))


def event(reader: LakeReader, event_id: str) -> dict[str, Any] | None:
    """Return one event: origin, magnitudes (preferred and per station) and picks; None if absent."""
    snapshot = reader.snapshot()
    found = reader.events(EventFilter(event_ids=(event_id,), limit=1), snapshot)
    if not len(found):
        return None
    origin = records(found)[0]
    origin["catalog"] = catalog_name(origin["pick_source"] or "", origin["associator"] or "")
    picks = reader.arrivals(found, snapshot)
    mags = reader.station_magnitudes(found, snapshot)
    return {
        "origin": origin,
        "picks": records(picks[["pick_id", "station_id", "phase", "time", "residual_s"]]),
        "station_magnitudes": records(
            mags[["station_id", "magnitude", "magnitude_type", "epicentral_km", "amplitude_m"]]
        )
        if len(mags)
        else [],
    }


def waveform_png(reader: LakeReader, event_id: str) -> bytes | None:
    """Return a PNG of the event's vertical traces around its picks, filtered, picks drawn.

    One panel per station with picks (nearest first by P time, at most :data:`MAX_TRACES`),
    the trace band-passed :data:`FILTER_HZ`, in counts (the archive's raw samples), time in
    seconds after the origin. None when the event is not in the lake.
    """
    import obspy
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    snapshot = reader.snapshot()
    found = reader.events(EventFilter(event_ids=(event_id,), limit=1), snapshot)
    if not len(found):
        return None
    origin = pd.Timestamp(found["time"].iloc[0]).tz_convert("UTC")
    picks = reader.arrivals(found, snapshot)
    picks["time"] = pd.to_datetime(picks["time"], utc=True)
    order = picks.groupby("station_id")["time"].min().sort_values().index[:MAX_TRACES]
    last = picks["time"].max() if len(picks) else origin
    start = origin - pd.Timedelta(seconds=5)
    end = min(last + pd.Timedelta(seconds=15), origin + pd.Timedelta(seconds=180))
    panels = []
    for sid in order:
        net, sta, loc = (str(sid).split(".") + ["", "", ""])[:3]
        segments = reader.waveform_segments(
            net, sta, loc, start.to_pydatetime(), end.to_pydatetime(), snapshot
        )
        mine = picks[picks["station_id"] == sid]
        bands = set(mine["band"].dropna().astype(str)) if "band" in mine else set()
        vertical = segments[segments["channel"].str.endswith(("Z", "U"))]
        if bands:
            preferred = vertical[vertical["channel"].str[:2].isin(bands)]
            vertical = preferred if len(preferred) else vertical
        if not len(vertical):
            panels.append((sid, None, mine))
            continue
        stream = obspy.Stream()
        t0, t1 = obspy.UTCDateTime(start.to_pydatetime()), obspy.UTCDateTime(end.to_pydatetime())
        channel = vertical["channel"].iloc[0]
        for path in vertical.loc[vertical["channel"] == channel, "path"].unique():
            try:
                part = obspy.read(str(path), starttime=t0 - 5, endtime=t1 + 5)
            except Exception:  # an unreadable file: the panel says so
                continue
            stream += part.select(network=net, station=sta, channel=channel)
        if not len(stream):
            panels.append((sid, None, mine))
            continue
        stream.merge(fill_value=0)
        trace = stream[0]
        trace.detrend("demean")
        trace.taper(0.05)
        trace.filter("bandpass", freqmin=FILTER_HZ[0], freqmax=FILTER_HZ[1], zerophase=True)
        trace.trim(t0, t1)
        panels.append((f"{sid}.{channel}", trace, mine))
    fig = Figure(figsize=(9, 1.3 + 1.25 * max(len(panels), 1)), dpi=90)
    FigureCanvasAgg(fig)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no picks with waveforms for this event", ha="center", va="center")
        ax.set_axis_off()
    axes: Any = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0] if panels else []
    for ax, (label, trace, mine) in zip(axes, panels, strict=False):
        if trace is None:
            ax.text(0.5, 0.5, f"{label}: no waveform in the archive", ha="center", va="center")
        else:
            offset = float(trace.stats.starttime - obspy.UTCDateTime(origin.to_pydatetime()))
            times = trace.times() + offset
            ax.plot(times, trace.data, color="0.2", lw=0.6)
            ax.set_ylabel(f"{label}\ncounts", fontsize=7)
        for p in mine.itertuples(index=False):
            x = (pd.Timestamp(p.time) - origin).total_seconds()
            colour = "tab:blue" if str(p.phase).upper().startswith("P") else "tab:red"
            ax.axvline(x, color=colour, lw=1.2)
            ax.text(
                x,
                1.0,
                f" {p.phase}",
                color=colour,
                fontsize=8,
                va="top",
                transform=ax.get_xaxis_transform(),
            )
        ax.tick_params(labelsize=7)
    if len(axes):
        axes[-1].set_xlabel("seconds after origin time", fontsize=8)
    fig.suptitle(
        f"{event_id}  {origin:%Y-%m-%d %H:%M:%S} UTC  vertical, {FILTER_HZ[0]:g}-{FILTER_HZ[1]:g} Hz "
        "band-pass, raw counts",
        fontsize=9,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
