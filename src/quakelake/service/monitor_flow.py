"""The monitor deployment and the Prefect side of monitoring: an event per catalogue change and
a live artifact of the latest events.

``quakelake monitor`` runs :class:`quakelake.service.monitor.Monitor` in its own process (no flow run:
the Prefect database does not grow with every cycle) and, when a Prefect API answers, emits
one Prefect event per new, updated or deleted earthquake:

- ``quakelake.earthquake.new`` / ``.updated`` / ``.deleted``
- resource ``quakelake.earthquake.<event_id>`` with ``quakelake.service.monitor`` and the origin's time,
  latitude, longitude, depth, magnitude and status as labels; the payload holds them typed.

An automation that matches these events notifies people (``deployments/automation-new-earthquake.yaml``).
The deployment ``monitor`` runs the same loop as one long flow run; its artifact
``quakelake-live-events`` is updated in place every ``artifact_every`` cycles.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from prefect import flow, get_run_logger

from quakelake.association.live import Revision
from quakelake.service.monitor import Monitor, MonitorSpec, build_monitor

log = logging.getLogger(__name__)

ARTIFACT_KEY = "quakelake-live-events"


def _value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def event_payload(change: Revision, monitor: str) -> dict[str, Any]:
    """Return what a Prefect event says of one catalogue change."""
    o = change.origin
    return {
        "event_id": change.event_id,
        "origin_id": change.origin_id,
        "revision": change.revision,
        "status": change.kind,
        "monitor": monitor,
        "time": _value(o.get("time")),
        "latitude": _value(o.get("latitude")),
        "longitude": _value(o.get("longitude")),
        "depth_km": _value(o.get("depth_km")),
        "magnitude": _value(o.get("magnitude")),
        "magnitude_type": _value(o.get("magnitude_type")),
        "magnitude_station_count": _value(o.get("magnitude_station_count")),
        "n_picks": _value(o.get("n_picks")),
        "n_stations": _value(o.get("n_stations")),
    }


def prefect_notifier(monitor: str):
    """Return a ``notify`` that emits one Prefect event per catalogue change."""
    from prefect.events import emit_event

    def notify(change: Revision) -> None:
        payload = event_payload(change, monitor)
        labels = {f"quakelake.{k}": str(v) for k, v in payload.items() if v is not None}
        emit_event(
            event=f"quakelake.earthquake.{change.kind}",
            resource={
                "prefect.resource.id": f"quakelake.earthquake.{change.event_id}",
                "prefect.resource.name": f"earthquake {change.event_id}",
                **labels,
            },
            payload=payload,
        )

    return notify


def events_markdown(mon: Monitor, limit: int = 20) -> str:
    """Return the latest events of the monitor as a markdown table (newest first)."""
    if mon.catalog is None:
        return "no association (no station file)"
    table = mon.catalog.preferred()
    if not len(table):
        return "no event yet"
    table = table.sort_values("time", ascending=False).head(limit)
    lines = [
        "| event | origin time (UTC) | lat | lon | depth km | ML | picks | revision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        ml = "" if r.magnitude is None or r.magnitude != r.magnitude else f"{r.magnitude:.1f}"
        lines.append(
            f"| {r.event_id} | {r.time:%Y-%m-%d %H:%M:%S.%f}"[:-3]
            + f" | {r.latitude:.4f} | {r.longitude:.4f} | {r.depth_km:.1f} | {ml} | "
            f"{r.n_picks} | {r.revision} |"
        )
    return "\n".join(lines)


@flow(name="monitor", log_prints=True)
def monitor_flow(spec: MonitorSpec, artifact_every: int = 5) -> dict[str, Any]:
    """Follow live data into the lake until cancelled or ``spec.duration_s`` (the monitor deployment)."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    logger = get_run_logger()
    mon = build_monitor(spec, notify=prefect_notifier(spec.name))
    artifact_id = create_markdown_artifact(
        events_markdown(mon), key=ARTIFACT_KEY, description="latest events of the monitor"
    )
    original_cycle = mon.cycle

    def cycle(finish: bool = False):
        summary = original_cycle(finish)
        if mon.cycles % artifact_every == 0 or summary.changes:
            with get_client(sync_client=True) as client:
                client.update_artifact(artifact_id, ArtifactUpdate(data=events_markdown(mon)))
        return summary

    mon.cycle = cycle  # type: ignore[method-assign]
    logger.info("monitor %s follows %s into %s", spec.name, spec.source_label, spec.lake)
    mon.run()
    return {
        "cycles": mon.cycles,
        "events": 0 if mon.catalog is None else len(mon.catalog.preferred()),
    }
