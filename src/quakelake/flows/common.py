"""What every flow does the same way: lineage ids, collecting task results, lost workers."""

from __future__ import annotations

from prefect.context import get_run_context

from quakelake.lineage import UnitResult

LOST_WORKER = "lost worker: "
_INFRASTRUCTURE_ERRORS = ("KilledWorker", "CancelledError")


def current_flow_run_id() -> str:
    """Return the Prefect flow run id of the running flow ("" outside one)."""
    try:
        return str(get_run_context().flow_run.id)
    except Exception:
        return ""


def collect(key: str, future, stage: str) -> UnitResult:
    """Return a task's UnitResult, or a failed one carrying the error when the task raised.

    A unit that failed because its Dask worker died is marked with :data:`LOST_WORKER`, so the
    flow can end Failed (see :func:`raise_if_workers_lost`) instead of blaming the data.
    """
    try:
        return future.result()
    except Exception as exc:  # the unit failed after its retries: record why, keep the run going
        prefix = LOST_WORKER if type(exc).__name__ in _INFRASTRUCTURE_ERRORS else ""
        return UnitResult(stage, key, "failed", error=f"{prefix}{type(exc).__name__}: {exc}"[:2000])


def raise_if_workers_lost(results: list[UnitResult], what: str) -> None:
    """Raise when units lost their worker: the cluster failed, the units done are kept, rerun finishes."""
    lost = [r for r in results if r.error.startswith(LOST_WORKER)]
    if lost:
        raise RuntimeError(f"{len(lost)} {what} lost their worker (killed, out of memory or past walltime); "
                           f"{len(results) - len(lost)} are in the lake; run again to finish")
