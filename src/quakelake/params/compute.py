"""Compute settings: which task runner a flow uses, and the SLURM jobs of a cluster.

Plain pydantic: the run configuration and the blocks import this without Dask. What these
settings imply for Dask and dask-jobqueue (cluster arguments, job scripts, the worker GPU pin)
lives in :mod:`quakelake.flows.compute`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, model_validator

from quakelake.params.base import ParamModel

__all__ = [
    "ComputeSettings",
    "RunnerKind",
    "SlurmSettings",
    "StagePlace",
    "parse_walltime",
]

RunnerKind = Literal["threads", "dask-local", "slurm", "address"]

#: Where a stage other than picking runs: ``flow`` = threads in the flow process, ``runner`` = the
#: configured task runner (the Dask or SLURM cluster that picks).
StagePlace = Literal["flow", "runner"]

_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+(?::\d{1,2}){0,2})$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|[KMGT])?$", re.IGNORECASE)


def parse_walltime(text: str) -> dt.timedelta:
    """Return a SLURM time limit as a timedelta.

    SLURM forms: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``.

    Raises:
        ValueError: naming the value and the accepted forms.
    """
    m = _WALLTIME.match(text.strip())
    if not m:
        raise ValueError(
            f"walltime {text!r} is not a SLURM time; use HH:MM:SS, MM:SS or D-HH:MM:SS (e.g. 08:00:00)"
        )
    days, clock = m.group(1), [int(p) for p in m.group(2).split(":")]
    if days is None:
        units = {1: ("minutes",), 2: ("minutes", "seconds"), 3: ("hours", "minutes", "seconds")}
    else:
        units = {1: ("hours",), 2: ("hours", "minutes"), 3: ("hours", "minutes", "seconds")}
    parts = dict(zip(units[len(clock)], clock, strict=True))
    return dt.timedelta(days=int(days or 0), **parts)


class SlurmSettings(ParamModel):
    """A Dask cluster of SLURM jobs (dask-jobqueue): what each job asks for and how many run.

    One job = one node share with ``gpus_per_job`` GPUs and ``workers_per_job`` Dask worker
    processes (default: one per GPU, each pinned to its own device).
    """

    account: str = Field(..., min_length=1, description="project account charged (sbatch -A)")
    partition: str = Field(
        "boost_usr_prod", min_length=1, description="SLURM partition / queue (sbatch -p)"
    )
    qos: str | None = Field(None, description="quality of service (sbatch --qos), if any")
    gpus_per_job: int = Field(
        0, ge=0, le=16, description="GPUs per job (sbatch --gres=gpu:N); 0 for CPU-only jobs"
    )
    workers_per_job: int | None = Field(
        None, ge=1, le=256, description="Dask worker processes per job; default one per GPU (or 1)"
    )
    threads_per_worker: int = Field(
        1, ge=1, le=256, description="tasks each worker runs at once (Dask threads)"
    )
    cores: int = Field(8, ge=1, le=1024, description="CPU cores per job (sbatch --cpus-per-task)")
    memory: str = Field("64GB", description="memory per job, e.g. 480GB (sbatch --mem)")
    walltime: str = Field("04:00:00", description="job time limit HH:MM:SS (sbatch -t)")
    lifetime_margin_minutes: int = Field(
        10,
        ge=0,
        description="workers retire this long before the walltime so adaptive scaling replaces "
        "them instead of the job being killed mid-task; 0 disables",
    )
    prologue: list[str] = Field(
        default_factory=list,
        description="shell lines run before the worker starts (module load, venv activation)",
    )
    interface: str | None = Field(
        None, description="network interface workers listen on, e.g. ib0 (InfiniBand)"
    )
    scheduler_interface: str | None = Field(
        None, description="interface of the scheduler (flow process), default: same as interface"
    )
    python: str | None = Field(
        None, description="python executable on the compute nodes (default: the flow's)"
    )
    local_directory: str | None = Field(
        "$TMPDIR", description="worker scratch folder on the node (spilling), e.g. $TMPDIR"
    )
    log_directory: str | None = Field(None, description="folder for the jobs' stdout/stderr")
    extra_directives: list[str] = Field(
        default_factory=list, description="further sbatch options, e.g. --exclusive"
    )
    nanny: bool = Field(
        True,
        description="run workers under a nanny (restarts them); several workers per job need it",
    )
    min_jobs: int = Field(0, ge=0, description="adaptive scaling: fewest jobs kept running")
    max_jobs: int = Field(1, ge=1, description="adaptive scaling: most jobs at once")

    @model_validator(mode="after")
    def _consistent(self) -> SlurmSettings:
        parse_walltime(self.walltime)
        if not _MEMORY.match(self.memory.strip()):
            raise ValueError(f"memory {self.memory!r} is not a size; use e.g. 64GB or 480GB")
        if self.min_jobs > self.max_jobs:
            raise ValueError(f"min_jobs {self.min_jobs} is more than max_jobs {self.max_jobs}")
        if self.processes > 1 and not self.nanny:
            raise ValueError(
                f"{self.processes} workers per job need nanny=True (dask worker --nworkers)"
            )
        if self.processes * self.threads_per_worker > self.cores:
            raise ValueError(
                f"{self.processes} workers x {self.threads_per_worker} threads exceed cores={self.cores}"
            )
        return self

    @property
    def processes(self) -> int:
        """Dask worker processes per job."""
        return self.workers_per_job or max(1, self.gpus_per_job)

    @property
    def cores_per_worker(self) -> int:
        """CPU cores each worker may use for BLAS/torch threads."""
        return max(1, self.cores // self.processes)

    def worker_lifetime(self) -> str | None:
        """Return the ``--lifetime`` given to workers, or None when no margin is set."""
        if self.lifetime_margin_minutes <= 0:
            return None
        total = parse_walltime(self.walltime) - dt.timedelta(minutes=self.lifetime_margin_minutes)
        minutes = int(total.total_seconds() // 60)
        if minutes < 1:
            raise ValueError(
                f"walltime {self.walltime} is not longer than lifetime_margin_minutes="
                f"{self.lifetime_margin_minutes}; raise the walltime or lower the margin"
            )
        return f"{minutes}m"


class ComputeSettings(ParamModel):
    """Which task runner a flow uses and its size (``threads``, ``dask-local``, ``slurm``, ``address``)."""

    runner: RunnerKind = Field(
        "threads", description="task runner: threads, dask-local, slurm or address"
    )
    workers: int = Field(
        2, ge=1, le=4096, description="threads (threads) or worker processes (dask-local)"
    )
    threads_per_worker: int = Field(1, ge=1, le=256, description="dask-local: threads per worker")
    memory_per_worker: str = Field(
        "auto", description="dask-local: memory limit per worker, e.g. 4GB"
    )
    address: str | None = Field(
        None, description="runner=address: scheduler address, e.g. tcp://10.0.0.5:8786"
    )
    allowed_failures: int = Field(
        1,
        ge=0,
        le=100,
        description="times a task may lose its worker (killed, out of memory, walltime) before "
        "it fails instead of being retried on another worker",
    )
    dashboard_address: str | None = Field(
        None, description="Dask dashboard address of a new cluster, e.g. :8787 (None: off)"
    )
    slurm: SlurmSettings | None = Field(None, description="runner=slurm: the SLURM job settings")
    associate_on: StagePlace = Field(
        "flow",
        description="where association tasks run: flow (threads in the flow process) or runner "
        "(the configured cluster); downloads always run in the flow process (compute nodes have "
        "no internet), picking always on the runner",
    )
    analyze_on: StagePlace = Field(
        "flow", description="where analysis tasks run: flow (threads) or runner (the cluster)"
    )

    @model_validator(mode="after")
    def _complete(self) -> ComputeSettings:
        if self.runner == "address" and not self.address:
            raise ValueError("runner 'address' needs address, e.g. tcp://scheduler-host:8786")
        if self.runner == "slurm" and self.slurm is None:
            raise ValueError("runner 'slurm' needs slurm settings (at least slurm.account)")
        return self
