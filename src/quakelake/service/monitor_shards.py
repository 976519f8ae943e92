"""The monitor's front sharded by station over Dask workers: beyond one process.

One process keeps up with a regional network (``benchmarks/monitor.py``); beyond it,
``quakelake monitor --shards K`` splits the heavy part of a cycle -- reading the source and
streaming picking -- into K shards by station (:class:`quakelake.archive.live.StationShard`:
the stations of the station file round robin, any other station by a stable hash). Each shard
is a Dask actor (:class:`PickShard`) on its own worker: it holds the source of its stations
(the same kind of source, its station subset) and its own :class:`StreamPicker` (the model
is loaded once, on the worker). Every cycle the coordinator (:class:`ShardedFront`) asks all
shards at once for what they read and picked, merges the answers and goes on as in one
process: association, the one lake writer, the state commit and the notifications stay in
the coordinator. The lanes' state and the source's state travel through the shards, so the
lake's ``monitor_state`` restarts a sharded monitor exactly like a single one (each lane
and each per-station source entry belongs to the shard of its station; K may change between
runs).

The workers come from the runners the pipeline uses (:mod:`quakelake.flows.compute`):
``dask-local`` (a LocalCluster of processes), ``slurm`` (dask-jobqueue, kept at the jobs the
shards need) or ``address`` (an existing scheduler).

A shard keeps its records' samples: the coordinator receives the delivery stamps (seed id,
end time) and, when it measures magnitudes, the horizontal channels' records (two of three
channels: ~0.8 kB/s of int32 samples per 100-Hz station), not the vertical ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from quakelake.archive.live import LiveSource, StationShard
from quakelake.association.magnitudes import is_horizontal
from quakelake.flows.compute import local_cluster_kwargs, slurm_cluster_kwargs
from quakelake.params.compute import ComputeSettings
from quakelake.picking.models import PICK_COLUMNS
from quakelake.picking.streaming import StepResult, StreamPicker
from quakelake.service.monitor_front import Delivery, LocalFront, PickFront

log = logging.getLogger(__name__)

__all__ = ["PickShard", "ShardedFront", "dask_client"]

#: Builds the source of one shard's stations (pickled to the worker: a module-level function
#: or a ``functools.partial`` of one).
SourceMaker = Callable[[StationShard], LiveSource]
#: Builds the streaming picker (its model loaded on the worker).
PickerMaker = Callable[[], StreamPicker]

SORT = ["time", "station_id", "band", "phase"]


class PickShard:
    """One shard on its Dask worker (an actor): the source of its stations and a streaming picker."""

    def __init__(
        self, make_source: SourceMaker, make_picker: PickerMaker, shard: StationShard
    ) -> None:
        self.shard = shard
        self.front = LocalFront(make_source(shard), make_picker())

    def poll_step(
        self, finish: bool = False, horizontals: bool = False
    ) -> tuple[list, StepResult, dict, dict, list | None]:
        """Read and pick; return the delivery stamps, the picks, the state after them and (with
        ``horizontals``) the horizontal channels' records, for the coordinator's magnitudes."""
        got = self.front.poll_step(finish)
        traces = None
        if horizontals and got.traces is not None:
            traces = [tr for tr in got.traces if is_horizontal(tr.stats.channel)]
        return got.ends, got.result, self.front.lane_states(), self.front.source_state(), traces

    def restore(self, lanes: dict[str, dict[str, Any]], source: dict[str, Any]) -> tuple:
        self.front.restore(lanes, source)
        return self.front.lane_states(), self.front.source_state()

    def close(self) -> None:
        self.front.close()

    def where(self) -> str:
        """Return the host and process the shard runs in (and its SLURM job, if any)."""
        job = os.environ.get("SLURM_JOB_ID")
        return f"{os.uname().nodename} pid {os.getpid()}" + (f" slurm job {job}" if job else "")


class ShardedFront(PickFront):
    """The monitor's front on K shards (see the module's text)."""

    def __init__(
        self,
        client: Any,
        make_source: SourceMaker,
        make_picker: PickerMaker,
        shards: list[StationShard],
        cluster: Any = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.make_source = make_source
        self.make_picker = make_picker
        self.shards = shards
        self.timeout_s = timeout_s
        self.actors: list[Any] = [None] * len(shards)
        self.placed: list[str] = [""] * len(shards)  # worker address of each shard
        self._futures: list[Any] = [None] * len(shards)  # keep the actors alive
        self._lanes: dict[str, dict[str, Any]] = {}
        self._source: dict[str, Any] = {}
        self.replaced = 0  # shards started again after their worker went away
        self.horizontals = False  # send the horizontal records to the coordinator (magnitudes)

    # ------------------------------------------------------------------ start
    @classmethod
    def start(
        cls,
        count: int,
        settings: ComputeSettings | None,
        make_source: SourceMaker,
        make_picker: PickerMaker,
        known: tuple[str, ...] = (),
    ) -> ShardedFront:
        """Start the workers ``settings`` name (None: a LocalCluster of ``count`` processes) and
        ``count`` shards on them (``known``: the stations shared round robin)."""
        settings = settings or ComputeSettings(runner="dask-local", workers=count)
        client, cluster, workers = dask_client(settings, count)
        try:
            return cls.on(client, count, make_source, make_picker, known, cluster, workers)
        except BaseException:
            client.close()
            if cluster is not None:
                cluster.close()
            raise

    @classmethod
    def on(
        cls,
        client: Any,
        count: int,
        make_source: SourceMaker,
        make_picker: PickerMaker,
        known: tuple[str, ...] = (),
        cluster: Any = None,
        workers: int = 1,
        timeout_s: float = 600.0,
    ) -> ShardedFront:
        """Place ``count`` shards on the workers of ``client`` (waiting for up to ``workers``
        of them), one per worker round robin (a worker runs its actors one call at a time:
        give at least as many workers)."""
        count = max(1, count)
        client.wait_for_workers(min(count, max(1, workers)), timeout=timeout_s)
        shards = [StationShard(i, count, known) for i in range(count)]
        front = cls(client, make_source, make_picker, shards, cluster, timeout_s)
        names = front._workers()
        if len(names) < count:
            log.warning(
                "%d shards on %d Dask workers: shards on one worker take turns", count, len(names)
            )
        futures = [front._submit(i, names[i % len(names)]) for i in range(count)]
        for i, actor in enumerate(client.gather(futures)):
            front.actors[i] = actor
        log.info("monitor shards on %s", ", ".join(a.where().result() for a in front.actors))
        return front

    def _workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def _submit(self, i: int, worker: str, anywhere: bool = False) -> Any:
        future = self.client.submit(
            PickShard,
            self.make_source,
            self.make_picker,
            self.shards[i],
            actor=True,
            workers=[worker],
            allow_other_workers=anywhere,
            pure=False,
        )
        self._futures[i], self.placed[i] = future, worker
        return future

    def _replace(self, i: int) -> None:
        """Start shard ``i`` again on a live worker from its state after the last step (the
        monitor has taken that step's picks; what the lost shard read since comes again)."""
        self.client.wait_for_workers(1, timeout=self.timeout_s)
        workers = self._workers()
        lost, others = self.placed[i], set(self.placed[:i] + self.placed[i + 1 :])
        alive = [w for w in workers if w != lost] or workers  # the scheduler may not know yet
        free = [w for w in alive if w not in others] or alive
        self.actors[i] = self._submit(i, free[0], anywhere=True).result()
        lanes, source = self._route(self._lanes, self._source)
        self.actors[i].restore(lanes[i], source[i]).result()
        self.replaced += 1

    # ------------------------------------------------------------------ the cycle
    def poll_step(self, finish: bool = False) -> Delivery:
        """Step every shard at once; a shard whose worker went away (killed, out of memory, end
        of a SLURM job) is started again from its last state on another worker, once."""
        calls = [a.poll_step(finish, self.horizontals) for a in self.actors]
        answers = []
        for i, call in enumerate(calls):
            try:
                answers.append(call.result())
            except Exception as exc:
                log.warning(
                    "monitor shard %d lost (%s: %s): starting it again", i, type(exc).__name__, exc
                )
                self._replace(i)
                answers.append(self.actors[i].poll_step(finish, self.horizontals).result())
        ends = [e for a in answers for e in a[0]]
        result = StepResult(
            _merge([a[1].final for a in answers]),
            _merge([a[1].provisional for a in answers]),
            sum(a[1].windows for a in answers),
        )
        self._keep([(a[2], a[3]) for a in answers])
        traces = [tr for a in answers for tr in a[4]] if self.horizontals else None
        return Delivery(ends, result, traces)

    def _keep(self, states: list[tuple[dict, dict]]) -> None:
        self._lanes = {k: v for lanes, _ in states for k, v in lanes.items()}
        self._source = {k: v for _, source in states for k, v in source.items()}

    def _route(
        self, lanes: dict[str, dict[str, Any]], source: dict[str, Any]
    ) -> tuple[list[dict[str, dict[str, Any]]], list[dict[str, Any]]]:
        """Split lane and source states by the shard of their station."""
        per_lanes: list[dict[str, dict[str, Any]]] = [{} for _ in self.shards]
        per_source: list[dict[str, Any]] = [{} for _ in self.shards]
        first = self.shards[0]
        for key, state in lanes.items():
            per_lanes[first.of(state["network"], state["station"])][key] = state
        for key, state in source.items():
            if "_" in key:  # NET_STA: the shard of the station
                net, sta = key.split("_", 1)
                per_source[first.of(net, sta)][key] = state
            else:  # not per station: every shard
                for part in per_source:
                    part[key] = state
        return per_lanes, per_source

    def restore(self, lanes: dict[str, dict[str, Any]], source: dict[str, Any]) -> None:
        per_lanes, per_source = self._route(lanes, source)
        calls = [a.restore(per_lanes[i], per_source[i]) for i, a in enumerate(self.actors)]
        self._keep([c.result() for c in calls])

    def lane_states(self) -> dict[str, dict[str, Any]]:
        return dict(self._lanes)

    def send_horizontals(self) -> None:
        self.horizontals = True

    def source_state(self) -> dict[str, Any]:
        return dict(self._source)

    def close(self) -> None:
        try:
            for call in [a.close() for a in self.actors]:
                call.result()
        except Exception as exc:  # a lost worker: its source went with it
            log.warning("closing the monitor shards: %s", exc)
        finally:
            self.actors, self._futures = [], []
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def _merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Return the shards' picks as one frame in the order one picker gives them."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=PICK_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(SORT, ignore_index=True)


def dask_client(settings: ComputeSettings, shards: int) -> tuple[Any, Any, int]:
    """Return a Dask client for ``shards``, the cluster it started (None for ``address``) and
    how many workers it will have (1 for ``address``: whatever the scheduler has).

    ``dask-local``: a LocalCluster of ``settings.workers`` processes; ``slurm``: a SLURMCluster
    kept at the jobs ``shards`` workers need (lost jobs are submitted again); ``address``: the
    scheduler at ``settings.address``.

    Raises:
        ValueError: for the ``threads`` runner (one process: no shards).
    """
    from distributed import Client

    if settings.runner == "dask-local":
        from distributed import LocalCluster

        local = LocalCluster(**local_cluster_kwargs(settings))
        return Client(local), local, settings.workers
    if settings.runner == "slurm":
        from dask_jobqueue import SLURMCluster

        s = settings.slurm
        assert s is not None  # checked by ComputeSettings
        jobs = min(s.max_jobs, -(-shards // s.processes))
        slurm = SLURMCluster(
            **slurm_cluster_kwargs(s, settings.allowed_failures, settings.dashboard_address)
        )
        slurm.adapt(minimum_jobs=jobs, maximum_jobs=jobs)  # a job that ends is submitted again
        return Client(slurm), slurm, jobs * s.processes
    if settings.runner == "address":
        return Client(settings.address), None, 1
    raise ValueError(
        "shards run on Dask workers: give --runner dask-local, slurm or address "
        "(threads runs the monitor in one process)"
    )
