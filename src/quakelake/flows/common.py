"""What every flow does the same way: lineage ids, collecting task results, lost workers."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from prefect.context import get_run_context
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from quakelake.flows import heartbeats
from quakelake.lakehouse.lineage import UnitResult, mark_crashed_runs

log = logging.getLogger(__name__)
heartbeats.install()  # a flow run ends when its work does, not up to a second later

LOST_WORKER = "lost worker: "
_INFRASTRUCTURE_ERRORS = ("KilledWorker", "CancelledError")


@contextmanager
def one_try() -> Iterator[None]:
    """Send the Prefect API requests of this block once, without Prefect's retries.

    For the artifacts a flow publishes at its end (a courtesy: a failure is a warning). Prefect
    retries a refused request 5 times, 2 to 32 s apart: after ``quakelake server stop`` each
    artifact cost a minute before the command could say the API had gone.
    """
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        yield


def current_flow_run_id() -> str:
    """Return the Prefect flow run id of the running flow ("" outside one)."""
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:
        return ""


def task_slots() -> int | None:
    """Return how many tasks the running flow's task runner runs at once (None: not known).

    Threads: the pool's size. Dask: the threads of the workers connected now (None while an
    adaptive cluster has none yet).
    """
    try:
        runner = get_run_context().task_runner  # type: ignore[union-attr]
    except Exception:
        return None
    if isinstance(runner, ThreadPoolTaskRunner):
        threads = runner._max_workers  # no public accessor; sys.maxsize when unbounded
        return threads if 0 < threads <= 1024 else None
    client = getattr(runner, "client", None)  # prefect-dask's DaskTaskRunner
    try:
        total = sum(client.nthreads().values()) if client is not None else 0
    except Exception:  # no scheduler answer: the flow's first submission fails and says so
        return None
    return total or None


def tasks_run_here() -> bool:
    """Return whether the running flow's tasks run in this process (the thread runner).

    Then what a task would record (its place included) the flow can record itself.
    """
    try:
        return isinstance(get_run_context().task_runner, ThreadPoolTaskRunner)  # type: ignore[union-attr]
    except Exception:
        return False


def collect(key: str, future, stage: str) -> UnitResult:
    """Return a task's UnitResult, or a failed one carrying the error when the task raised.

    A unit that failed because its Dask worker died is marked with :data:`LOST_WORKER`, so the
    flow can end Failed (see :func:`raise_if_workers_lost`) instead of blaming the data.
    """
    return collect_all([key], future, stage)[0]


def collect_all(keys: list[str], future, stage: str) -> list[UnitResult]:
    """Return the UnitResults of a task of the units ``keys`` (one, or a batch returning a list).

    When the task raised, every unit of it is failed with the error (see :func:`collect`).
    """
    try:
        out = future.result()
    except Exception as exc:  # the task failed after its retries: record why, keep the run going
        prefix = LOST_WORKER if type(exc).__name__ in _INFRASTRUCTURE_ERRORS else ""
        return [UnitResult.failed(stage, key, exc, prefix) for key in keys]
    return list(out) if isinstance(out, list) else [out]


def finished_in_groups(futures: list) -> Iterator[list]:
    """Yield ``futures`` as they finish, in groups: every future that finished since the last group.

    The first group comes as soon as one future is done; while the caller works on a group (a
    commit), the futures finishing meanwhile gather into the next. Units of seconds are then
    committed a few at a time, units of minutes one by one as each is back.
    """
    finished: queue.SimpleQueue = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(finished.put)
    left = len(futures)
    while left:
        group = [finished.get()]
        while True:
            try:
                group.append(finished.get_nowait())
            except queue.Empty:
                break
        left -= len(group)
        yield group


def raise_if_workers_lost(results: list[UnitResult], what: str) -> None:
    """Raise when units lost their worker: the cluster failed, the units done are kept, rerun finishes."""
    lost = [r for r in results if r.error.startswith(LOST_WORKER)]
    if lost:
        kept = sum(r.status in ("done", "skipped") for r in results)
        raise RuntimeError(
            f"{len(lost)} {what} lost their worker (killed, out of memory or past walltime); "
            f"{kept} are in the lake; run again to finish"
        )


def recover_crashed_runs(lake: Path) -> list[dict]:
    """Mark killed runs of this host ``crashed`` in the lake and in Prefect; return them.

    Their committed units have their ledger rows already (see
    :func:`quakelake.lakehouse.lineage.mark_crashed_runs`); the
    Prefect flow run of each, left Running by the kill, is set Crashed when the API knows it.
    """
    try:
        marked = mark_crashed_runs(Path(lake))
    except Exception as exc:  # recovery is a courtesy to the ledger: never block a new run
        log.warning("could not check the lake for killed runs: %s", exc)
        return []
    for run in marked:
        log.warning(
            "run %s (%s) was killed: marked crashed, %d finished units accounted",
            run["run_id"],
            run["command"],
            run["units_accounted"],
        )
        if run["flow_run_id"]:
            _crash_flow_run(run["flow_run_id"])
    return marked


def _crash_flow_run(flow_run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
            if state is not None and not state.is_final():
                client.set_flow_run_state(
                    flow_run_id,
                    Crashed(message="its process was killed; found by a later run"),
                    force=True,
                )
    except Exception as exc:  # the flow run may live on another Prefect server
        log.info("could not mark flow run %s crashed: %s", flow_run_id, exc)
