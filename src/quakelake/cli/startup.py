"""A command's start-up: the Prefect API it uses, warm workers, quiet logs, ``--timing``."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quakelake.cli.printing import print_timing, warn
from quakelake.errors import QuakeLakeError

if TYPE_CHECKING:
    from quakelake.config import RunConfig

_T0 = time.perf_counter()


def _startup_seconds() -> float:
    """Return the seconds since this process started (interpreter, imports, checks)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _T0


def quiet_prefect(cfg: RunConfig) -> str:
    """Settle the Prefect API and log levels before Prefect is imported; return which API is used."""
    from quakelake.service.server import reread_prefect_settings, resolve_api

    level = {0: "ERROR", 1: "WARNING", 2: "INFO"}[cfg.verbosity]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", level)
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_ROOT_LEVEL", level)
    # The runs' own logs reach the UI's Logs tab at INFO whatever the terminal shows: the
    # terminal's level is its handler's, not the run loggers' (which would drop them unsent).
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level)
    # SeisBench prints its records with a handler of its own: not again through Prefect's root one
    logging.getLogger("seisbench").propagate = False
    api = resolve_api()
    if api == "local":
        # Prefect retries a request whose server went away (after a first answer) five times,
        # 2 + 4 + ... + 32 s: with `quakelake server stop` during a command each of its next
        # requests waited a minute, and the command ended after 3-4 minutes. Three retries
        # (~14 s) still ride over a short hiccup of the local server; a user's setting wins.
        os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "3")
    if api == "temporary":
        # Prefect's 20 s are too short for its temporary server on a busy login node.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    reread_prefect_settings()
    if api == "temporary" and cfg.verbosity > 1:
        print(
            "note: no Prefect server configured: starting a temporary one for this command "
            "(quakelake server start keeps one running)",
            file=sys.stderr,
        )
    return api


def use_warm_workers(cfg: RunConfig) -> RunConfig:
    """Return ``cfg`` picking on the warm workers of ``quakelake server start --workers N``.

    Only when the user chose no runner (option, file or block) and the warm cluster answers and
    fits this command (:func:`quakelake.service.server.warm_fit`; when its code is older, a
    warning says so); the archive and lake paths are made
    absolute, as the workers run in another folder. Otherwise ``cfg`` unchanged.
    """
    from quakelake.service.server import warm_fit

    if "runner" in cfg.execution.model_fields_set or cfg.execution.runner != "threads":
        return cfg
    address, why_not = warm_fit()
    if why_not and cfg.verbosity > 0:
        warn(why_not)
    if not address:
        return cfg
    execution = cfg.execution.model_copy(update={"runner": "address", "address": address})
    update: dict[str, Any] = {"execution": execution, "lake": cfg.lake.resolve()}
    if cfg.directory is not None:
        update["directory"] = cfg.directory.resolve()
    if cfg.verbosity > 1:
        print(f"note: picking on the warm workers at {address}", file=sys.stderr)
    return cfg.model_copy(update=update)


def stage_modules(cfg: RunConfig) -> list[str]:
    """Return the modules the association and magnitude stages of ``cfg`` import in this process.

    Only for the in-process thread runner (a cluster's workers import their own); GaMMA's stack
    (scikit-learn, numba) for ``gamma``, ObsPy's response removal for magnitudes.
    """
    if cfg.associate is None or cfg.execution.runner != "threads":
        return []
    names = []
    if getattr(cfg.associate, "associator", "") == "gamma":
        names += [
            "threadpoolctl",
            "numba",
            "gamma.seismic_ops",
            "quakelake.association.gamma_location",
            "gamma.utils",
        ]
    if cfg.magnitude is not None:
        # the stage's module first: it defers obspy.signal's __init__ (PPSD, matplotlib)
        names += ["quakelake.association.magnitudes", "obspy.signal.invsim"]
    return names


def preload(names: list[str]) -> threading.Thread | None:
    """Import ``names`` in a background thread while the flow's runs start (Prefect's API waits).

    The stages import the same modules themselves when they come (waiting for this thread's
    import if it is under way); an import failing here is left for them to report.
    """
    if not names:
        return None

    def run() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the stage that needs it imports it again and says why
                return

    thread = threading.Thread(target=run, name="quakelake-preload", daemon=True)
    thread.start()
    return thread


class _DropExpectedErrors:
    """Console log filter: Prefect's failure logs of an expected error and the warnings the
    command prints again in its summary (:data:`quakelake.errors.SAID_AGAIN`): each said once."""

    def filter(self, record) -> bool:
        if getattr(record, "said_again", False):
            return False  # the command prints it in its summary
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, QuakeLakeError):
            return False
        text = record.getMessage() if record.levelno >= 40 else ""
        return not any(name in text for name in _expected_error_names())


def _expected_error_names() -> set[str]:
    names, todo = set(), [QuakeLakeError]
    while todo:
        cls = todo.pop()
        names.update((f"{cls.__name__}:", f"{cls.__name__}("))
        todo += cls.__subclasses__()
    return names


def install_log_filter(verbosity: int) -> None:
    """Keep tracebacks of expected errors off the console unless -v (the Prefect UI still has them)."""
    if verbosity > 1:
        return
    import logging

    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.addFilter(_DropExpectedErrors())


def report_timing(cfg: RunConfig, stages: dict[str, float], t0: float, flow: bool = True) -> None:
    """Print --timing: start-up, each stage, and what Prefect and the flow imports took besides.

    ``flow=False``: no flow ran (a rerun with nothing to do), so there is no Prefect line.
    """
    if not cfg.timing:
        return
    total = _startup_seconds()
    startup = total - (time.perf_counter() - t0)
    rest = total - startup - sum(stages.values())
    print_timing(
        {
            "start-up (Python, checks)": startup,
            **stages,
            **({"flow imports, Prefect runs": max(rest, 0.0)} if flow else {}),
        },
        total,
    )
