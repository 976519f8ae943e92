"""QuakeML reference catalogues, read with ObsPy.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quakelake.catalogs.model import (
    EVENT_COLUMNS,
    PICK_COLUMNS,
    Catalog,
    CatalogError,
    lake_frame,
)
from quakelake.ids import station_id


def read_quakeml(path: str | Path) -> Catalog:
    """Read a QuakeML file with ObsPy: preferred origins and magnitudes, and every pick.

    Event ids and pick ids are the QuakeML resource ids; the pick ``weight`` is the
    ``time_weight`` of the preferred origin's arrival that uses the pick (NaN otherwise).
    """
    from obspy import read_events

    path = Path(path)
    try:
        cat = read_events(str(path))
    except Exception as exc:
        raise CatalogError(f"ObsPy cannot read QuakeML file {path}: {exc}") from exc
    ev_rows, pk_rows = [], []
    for event in cat:
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        mag = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
        event_id = str(event.resource_id)
        weights = {}
        if origin is not None:
            for arrival in origin.arrivals:
                if arrival.pick_id is not None and arrival.time_weight is not None:
                    weights[str(arrival.pick_id)] = float(arrival.time_weight)
        ev_rows.append(
            {
                "event_id": event_id,
                "time": origin.time.datetime if origin and origin.time else None,
                "latitude": origin.latitude if origin else None,
                "longitude": origin.longitude if origin else None,
                "depth_km": origin.depth / 1000.0 if origin and origin.depth is not None else None,
                "magnitude": mag.mag if mag else None,
                "magnitude_type": mag.magnitude_type if mag else None,
                "n_picks": len(event.picks),
                "source_file": str(path),
                "event_type": str(event.event_type) if event.event_type else None,
            }
        )
        for pick in event.picks:
            wid = pick.waveform_id
            net = (wid.network_code or "") if wid else ""
            sta = (wid.station_code or "") if wid else ""
            loc = (wid.location_code or "") if wid else ""
            pk_rows.append(
                {
                    "pick_id": str(pick.resource_id),
                    "event_id": event_id,
                    "network": net,
                    "station": sta,
                    "location": loc,
                    "channel": (wid.channel_code or "") if wid else "",
                    "station_id": station_id(net, sta, loc),
                    "phase": pick.phase_hint or "",
                    "time": pick.time.datetime,
                    "weight": weights.get(str(pick.resource_id), np.nan),
                    "source_file": str(path),
                }
            )
    return Catalog(lake_frame(ev_rows, EVENT_COLUMNS), lake_frame(pk_rows, PICK_COLUMNS))
