"""Run lineage: run ids, configuration fingerprints, package versions, the runs and units ledgers.

Plain Python: flows call these to record what ran; no Prefect import here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from quakelake.lakehouse import Lake

PACKAGES = (
    "quakelake",
    "seisbench",
    "torch",
    "onnxruntime",
    "obspy",
    "numpy",
    "pyarrow",
    "duckdb",
    "prefect",
    "gmma",
    "pyocto",
)


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


def frame_digest(frame: pd.DataFrame, columns: list[str]) -> str:
    """Return a digest of the values of ``columns`` of ``frame``, independent of its row order."""
    present = [c for c in columns if c in frame.columns]
    data = frame[present].astype(str)
    if len(data):
        data = data.sort_values(present, ignore_index=True)
    hashes = pd.util.hash_pandas_object(data, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes() + ",".join(present).encode()).hexdigest()[:16]


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return tuple(out.items())


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape results.

    Read once per process (``importlib.metadata`` scans the installed distributions, ~25 ms a
    call, twice per run): the versions of the code this process has loaded.
    """
    return dict(_package_versions())


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
    status: str  # done | skipped | failed | no_data | partial (a file read in part)
    rows: int = 0
    error: str = ""
    seconds: float = 0.0
    output: str = ""
    finished: dt.datetime = field(default_factory=utcnow)
    extra: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""  # fingerprint of what the unit was computed from
    notes: str = ""  # JSON: data-quality findings (gaps, non-finite samples, overlaps, components)
    changes: list[Any] = field(default_factory=list)  # data files to commit (FileChange)

    @classmethod
    def failed(cls, stage: str, unit: str, exc: BaseException, prefix: str = "") -> UnitResult:
        """Return the failed result of a unit that raised ``exc`` (``Type: message``, 2000 chars)."""
        return cls(stage, unit, "failed", error=f"{prefix}{type(exc).__name__}: {exc}"[:2000])


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
    if status == "running":
        # Who runs it: a later run on this host tells a live run from one that was killed.
        process = {"pid": os.getpid(), "process_started": _process_started(os.getpid())}
        row["config_json"] = json.dumps(
            {**config, "_process": process}, sort_keys=True, default=str
        )
    Lake(lake).commit(rows={"runs": pd.DataFrame([row])}, run_id=run_id, message=f"run {status}")
    return Path(lake)


@dataclass
class RecordedRun:
    """The run a flow records: its id and start, and what its last `runs` row will say.

    A flow sets ``status`` when it finishes well (it stays ``failed`` when the body raises),
    may add to ``config`` while it runs (the last row carries the dict as it is then) and fills
    ``weights`` with the checksums of the weights it used.
    """

    lake: Path
    run_id: str
    command: str
    config: dict[str, Any]
    started: dt.datetime
    flow_run_id: str = ""
    status: str = "failed"
    weights: dict[str, str] = field(default_factory=dict)


@contextmanager
def recorded_run(
    lake: Path,
    command: str,
    config: dict[str, Any],
    run_id: str | None = None,
    flow_run_id: str = "",
    before_finish: Callable[[RecordedRun], object] | None = None,
) -> Iterator[RecordedRun]:
    """Record a run in the `runs` ledger around the ``with`` body: ``running``, then how it ended.

    On entry: a new run id when ``run_id`` is empty and a `runs` row with status ``running``
    started now. On exit, whether the body returned or raised: ``before_finish(run)`` when given
    (what the flow still records about the run), then a `runs` row with the run's ``status``
    (``failed`` unless the body set another), its ``config`` and ``weights`` and the finish
    time. An exception of the body is raised again after its row is written.
    """
    run = RecordedRun(Path(lake), run_id or new_run_id(), command, config, utcnow(), flow_run_id)
    record_run(
        run.lake, run.run_id, command, config, "running", run.started, flow_run_id=flow_run_id
    )
    try:
        yield run
    finally:
        if before_finish is not None:
            before_finish(run)
        record_run(
            run.lake,
            run.run_id,
            command,
            run.config,
            run.status,
            run.started,
            utcnow(),
            flow_run_id,
            run.weights,
        )


def _process_started(pid: int) -> float | None:
    """Return when process ``pid`` started (epoch seconds, Linux /proc), None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(pid: int, started: float | None) -> bool:
    """Return True when ``pid`` is alive and is the process that started (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _process_started(pid)
    return started is None or now is None or abs(now - started) < 2.0


def stale_runs(lake: Path) -> pd.DataFrame:
    """Return the runs still ``running`` whose process, on this host, is gone (killed runs).

    Runs of other hosts are left alone: nothing here can tell whether they still run.
    """
    db = Lake(lake)
    if not db.has_files("runs"):
        return pd.DataFrame()
    running = db.query(
        "SELECT * FROM runs WHERE status = 'running' AND host = ?", [socket.gethostname()]
    )
    stale = []
    for row in running.itertuples(index=False):
        process = json.loads(row.config_json or "{}").get("_process", {})
        pid = process.get("pid")
        if pid is None or not _alive(int(pid), process.get("process_started")):
            stale.append(row)
    return pd.DataFrame(stale, columns=running.columns)


def mark_crashed_runs(lake: Path) -> list[dict[str, Any]]:
    """Record every stale run (see :func:`stale_runs`) as ``crashed``; return what was marked.

    A killed run leaves nothing to account for: each unit's files and ledger row are committed
    together, so what it finished is in the lake with its ledger rows and what it did not is
    invisible (its data files, never committed, go with ``quakelake lake vacuum``). Returns one
    mapping per run marked: run_id, flow_run_id, command and the units it committed.
    """
    stale = stale_runs(lake)
    marked = []
    for row in stale.itertuples(index=False):
        units = (
            Lake(lake).query("SELECT count(*) AS n FROM units WHERE run_id = ?", [row.run_id])
            if Lake(lake).has_files("units")
            else pd.DataFrame({"n": [0]})
        )
        config = json.loads(row.config_json or "{}")
        config.pop("_process", None)
        record_run(
            lake,
            row.run_id,
            row.command,
            config,
            "crashed",
            row.started,
            utcnow(),
            row.flow_run_id or "",
        )
        marked.append(
            {
                "run_id": row.run_id,
                "flow_run_id": row.flow_run_id or "",
                "command": row.command,
                "units_accounted": int(units["n"].iloc[0]),
            }
        )
    return marked


def ledger_rows(run_id: str, stage: str, results: Iterable[UnitResult]) -> pd.DataFrame:
    """Return the `units` rows of ``results`` of one run and stage."""
    rows = []
    for r in results:
        d = asdict(r)
        for name in ("extra", "stage", "changes"):
            d.pop(name)
        rows.append({"run_id": run_id, **d, "stage": stage})
    return pd.DataFrame(rows)


def record_units(
    lake: Path, run_id: str, stage: str, results: Iterable[UnitResult], name: str | None = None
) -> Path | None:
    """Commit the ledger rows of ``results`` (units without data files of their own)."""
    frame = ledger_rows(run_id, stage, results)
    if frame.empty:
        return None
    Lake(lake).commit(rows={"units": frame}, run_id=run_id, message=f"{stage} ledger")
    return Path(lake)


def commit_units(
    lake: Path, run_id: str, results: list[UnitResult], replace: bool = False
) -> list[UnitResult]:
    """Commit several units' data files with their ledger rows in one transaction; return the rows.

    All or nothing: a commit costs about the same for one unit or many, so the flow commits
    together the units that finished while it was committing the previous ones. A unit whose
    files another run committed first (same inputs, no ``--force``) is recorded ``skipped``:
    its own files are deleted, the lake keeps the first ones.
    """
    changes = [c for r in results for c in r.changes]
    committed: list[UnitResult] = []

    def ledger(taken: list[Any]) -> dict[str, pd.DataFrame]:
        kept = {id(c) for c in taken}
        committed.clear()  # a retried commit asks again
        for r in results:
            if r.changes and not any(id(c) in kept for c in r.changes):
                r = dataclasses.replace(
                    r, status="skipped", rows=0, error="committed by another run", changes=[]
                )
            committed.append(dataclasses.replace(r, changes=[]))
        frames = [ledger_rows(run_id, r.stage, [r]) for r in committed]
        return {"units": pd.concat(frames, ignore_index=True)}

    first = results[0]
    Lake(lake).commit(
        changes,
        rows=ledger,
        run_id=run_id,
        replace=replace,
        message=f"{first.stage} {first.unit}"
        if len(results) == 1
        else f"{first.stage} {len(results)} units",
    )
    return committed


def commit_unit(lake: Path, run_id: str, result: UnitResult, replace: bool = False) -> UnitResult:
    """Commit one unit's data files together with its ledger row; return the row committed."""
    return commit_units(lake, run_id, [result], replace)[0]
