"""When a Prefect task is worth retrying: transient failures yes, bad input never."""

from __future__ import annotations

from quakelake.errors import is_transient


def transient_only(task, task_run, state) -> bool:
    """Return True when the failed ``state`` may pass on a retry (Prefect's ``retry_condition_fn``).

    A :class:`~quakelake.errors.BadInput` (missing folder, unknown model, bad station file) fails
    the same way every time: it is not retried. I/O and network errors and lost workers are.
    """
    try:
        state.result()
    except BaseException as exc:  # the task's own exception, re-raised by the state
        return is_transient(exc)
    return True
