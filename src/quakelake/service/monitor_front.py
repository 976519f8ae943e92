"""The front of a monitor cycle: read the source and pick its records.

:class:`quakelake.service.monitor.Monitor` asks its front, every cycle, for the records that
arrived and the picks they completed, and keeps everything after that (association, the lake,
the state commit, notifications). :class:`LocalFront` reads and picks in this process;
:class:`quakelake.service.monitor_shards.ShardedFront` on Dask workers, sharded by station.

Plain Python: no Prefect, no lake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obspy import Trace, UTCDateTime

from quakelake.archive.live import LiveSource
from quakelake.picking.streaming import StepResult, StreamPicker

__all__ = ["Delivery", "LocalFront", "PickFront"]


@dataclass
class Delivery:
    """What the front read and picked in one cycle."""

    ends: list[tuple[str, UTCDateTime]]  # (seed id, end time) of every record delivered
    result: StepResult  # the picks that became final, the provisional ones, windows run
    traces: list[Trace] | None = None  # the records themselves (None: they stayed on the shards)


class PickFront:
    """The head of a monitor cycle: read the source and pick its records.

    :class:`LocalFront` does it in this process; a sharded front on Dask workers
    (:mod:`quakelake.service.monitor_shards`). The monitor keeps everything after it.
    """

    def poll_step(self, finish: bool = False) -> Delivery:  # pragma: no cover - interface
        """Take the records that arrived, run the windows they complete (``finish``: the
        stream ended, close every lane)."""
        raise NotImplementedError

    def restore(self, lanes: dict[str, dict[str, Any]], source: dict[str, Any]) -> None:
        """Set the lanes and the source back to a committed state and resume the source."""
        raise NotImplementedError  # pragma: no cover - interface

    def lane_states(self) -> dict[str, dict[str, Any]]:  # pragma: no cover - interface
        """Where every lane stands (see :meth:`StreamPicker.lane_states`)."""
        raise NotImplementedError

    def source_state(self) -> dict[str, Any]:  # pragma: no cover - interface
        """What the source needs after a restart (see :meth:`LiveSource.state`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (and the workers)."""

    def send_horizontals(self) -> None:
        """Deliver the horizontal channels' records with every :class:`Delivery` (the monitor
        measures magnitudes from them); an in-process front delivers every record anyway."""


class LocalFront(PickFront):
    """The front in this process: one source, one streaming picker."""

    def __init__(self, source: LiveSource, picker: StreamPicker) -> None:
        self.source = source
        self.picker = picker

    def poll_step(self, finish: bool = False) -> Delivery:
        records = self.source.poll()
        for tr in records:
            self.picker.add(tr)
        result = self.picker.close() if finish else self.picker.step()
        return Delivery([(tr.id, tr.stats.endtime) for tr in records], result, records)

    def restore(self, lanes: dict[str, dict[str, Any]], source: dict[str, Any]) -> None:
        since = self.picker.restore(lanes)
        self.source.restore_state(source)
        self.source.resume(since)

    def lane_states(self) -> dict[str, dict[str, Any]]:
        return self.picker.lane_states()

    def source_state(self) -> dict[str, Any]:
        return self.source.state()

    def close(self) -> None:
        self.source.close()
