"""Run lineage: run ids, configuration fingerprints, package versions, the runs and units ledgers.

Plain Python: flows call these to record what ran; no Prefect import here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from quakelake.lakehouse import write_table

PACKAGES = ("quakelake", "seisbench", "torch", "obspy", "numpy", "pyarrow", "duckdb", "prefect",
            "gmma", "pyocto")


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def new_run_id() -> str:
    """Return a new, sortable run id: UTC timestamp plus a random suffix."""
    return utcnow().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def fingerprint(*parts: Any, length: int = 12) -> str:
    """Return a short stable hash of JSON-serialisable ``parts`` (used in file names)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape results."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def where_label() -> str:
    """Return where this process runs: ``host pid N`` plus ``slurm job J`` inside a SLURM job.

    Recorded per unit (``UnitResult.extra["where"]``) so a run shows which units ran on the
    cluster and which in the flow process.
    """
    label = f"{socket.gethostname()} pid {os.getpid()}"
    job = os.environ.get("SLURM_JOB_ID")
    return f"{label} slurm job {job}" if job else label


def where_counts(results: Iterable[UnitResult]) -> dict[str, int]:
    """Return how many of ``results`` ran at each place (see :func:`where_label`)."""
    out: dict[str, int] = {}
    for r in results:
        place = r.extra.get("where", "")
        if place:
            out[place] = out.get(place, 0) + 1
    return out


@dataclass
class UnitResult:
    """What one unit of work did: the row the ledger (`units` table) keeps for it."""

    stage: str
    unit: str
    status: str  # done | skipped | failed | no_data
    rows: int = 0
    error: str = ""
    seconds: float = 0.0
    output: str = ""
    finished: dt.datetime = field(default_factory=utcnow)
    extra: dict[str, Any] = field(default_factory=dict)


class Stopwatch:
    """Context manager measuring wall seconds: ``with Stopwatch() as sw: ...; sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def record_run(
    lake: Path,
    run_id: str,
    command: str,
    config: dict[str, Any],
    status: str,
    started: dt.datetime,
    finished: dt.datetime | None = None,
    flow_run_id: str = "",
    weights: dict[str, str] | None = None,
) -> Path:
    """Write one `runs` row (a run's state at one moment); the view keeps the latest per run."""
    row = {
        "run_id": run_id,
        "flow_run_id": flow_run_id,
        "command": command,
        "started": started,
        "finished": finished,
        "status": status,
        "config_json": json.dumps(config, sort_keys=True, default=str),
        "versions_json": json.dumps(package_versions(), sort_keys=True),
        "weights_json": json.dumps(weights or {}, sort_keys=True),
        "host": socket.gethostname(),
    }
    return write_table(lake, "runs", pd.DataFrame([row]), name=f"{run_id}__{status}")


def record_units(lake: Path, run_id: str, stage: str, results: Iterable[UnitResult]) -> Path | None:
    """Write the ledger rows of ``results`` for one run and stage as one file."""
    rows = []
    for r in results:
        d = asdict(r)
        d.pop("extra")
        d.pop("stage")
        rows.append({"run_id": run_id, **d})
    if not rows:
        return None
    return write_table(lake, "units", pd.DataFrame(rows), name=run_id, partition={"stage": stage})
