"""A flow run ends when its work does: Prefect's heartbeat thread no longer holds it (issue 26).

Prefect 3.9's heartbeat thread sleeps in one-second steps and every flow run's end waited for
it: up to a second per flow run (``run -F`` has three).
"""

from __future__ import annotations

import statistics
import time

from prefect import flow

import quakelake.flows.common  # noqa: F401  (every QuakeLake flow imports it: the heartbeats)


@flow(name="short-work")
def _short_work() -> float:
    time.sleep(0.2)
    return time.perf_counter()


def test_a_flow_run_returns_as_soon_as_its_work_is_done(prefect_server):
    waits = []
    for _ in range(3):
        ended = _short_work()
        waits.append(time.perf_counter() - ended)
    # before: ~0.8 s each (the heartbeat's one-second step that began with the run)
    assert statistics.median(waits) < 0.4, waits
