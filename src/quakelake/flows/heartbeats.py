"""Prefect's flow-run heartbeats, stopped as soon as the run ends.

Prefect 3.9 sends a flow run's heartbeats from a thread that sleeps in one-second steps, and the
end of every flow run waits (``join``) until that thread notices: up to a second per flow run,
half a second on average, three times in ``run -F`` (the pipeline and its pick and associate
subflows; issue 26). The same heartbeats (the first at the run's start, then one every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds, none once the run is final) from a thread that
waits on the stop signal itself, so the run ends when its work does.

Installed by :mod:`quakelake.flows.common` (every QuakeLake flow imports it); a Prefect without
the same private parts keeps its own.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow_engine


@contextmanager
def prompt_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Prefect's ``_send_heartbeats`` whose thread stops when the run ends, not up to 1 s later."""
    seconds = engine.heartbeat_seconds
    if seconds is None:
        yield
        return
    seconds = max(seconds, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run and run.state and run.state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            if stop.wait(seconds):
                return

    # the caller's context, as Prefect's: the thread must see the same API settings
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


def install() -> bool:
    """Use :func:`prompt_heartbeats` for the flow runs of this process; False if Prefect differs."""
    engine = getattr(flow_engine, "BaseFlowRunEngine", None)
    if not (
        callable(getattr(flow_engine, "_send_heartbeats", None))
        and hasattr(flow_engine, "MINIMUM_HEARTBEAT_INTERVAL")
        and hasattr(engine, "_build_heartbeat_event_template")
        and hasattr(engine, "_emit_flow_run_heartbeat")
        and hasattr(engine, "heartbeat_seconds")
    ):
        return False
    # the same call as Prefect's (a later Prefect that calls it otherwise keeps its own)
    params = list(inspect.signature(flow_engine._send_heartbeats).parameters)
    if params != ["engine", "join_on_exit"]:
        return False
    flow_engine._send_heartbeats = prompt_heartbeats
    return True
