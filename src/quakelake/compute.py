"""Where QuakeLake tasks run: typed cluster settings and the Dask/SLURM arguments they imply.

Plain Python (pydantic, Dask and dask-jobqueue only, imported lazily): the Prefect task runner
built from these settings lives in :mod:`quakelake.flows.runners`.

Four kinds of runner:

* ``threads``: Prefect's thread pool in the flow process (laptops, small runs).
* ``dask-local``: a ``distributed.LocalCluster`` of worker *processes* on this machine,
  one thread each, BLAS threads capped so processes do not oversubscribe the cores.
* ``slurm``: ``dask_jobqueue.SLURMCluster``; each SLURM job runs one Dask worker per GPU and
  every worker sees exactly one device (see :func:`dask_setup`).
* ``address``: an existing Dask scheduler (workers started elsewhere, e.g. on Ada Cloud VMs).

Example, the Leonardo Booster (4 x A100 per node) picking cluster::

    >>> s = ComputeSettings(runner="slurm", slurm=SlurmSettings(
    ...     account="IscrC_MYPROJ", partition="boost_usr_prod", gpus_per_job=4, cores=32,
    ...     memory="480GB", walltime="08:00:00", interface="ib0",
    ...     prologue=["module load python/3.11.6--gcc--8.5.0",
    ...               "source $WORK/quakelake/.venv/bin/activate"]))
    >>> print(render_slurm_job_script(s.slurm, "tcp://login01:8786"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RunnerKind = Literal["threads", "dask-local", "slurm", "address"]

#: Where a stage other than picking runs: ``flow`` = threads in the flow process, ``runner`` = the
#: configured task runner (the Dask or SLURM cluster that picks).
StagePlace = Literal["flow", "runner"]

#: Environment variable that tells :func:`dask_setup` to give each worker of a job one GPU.
PIN_GPU_ENV = "QUAKELAKE_PIN_GPU"

_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+(?::\d{1,2}){0,2})$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|[KMGT])?$", re.IGNORECASE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


def blas_env(threads: int) -> dict[str, str]:
    """Return the environment that caps OpenMP/BLAS/torch threads of one worker at ``threads``."""
    n = str(max(1, int(threads)))
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


class SlurmSettings(_Model):
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


class ComputeSettings(_Model):
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


def local_cluster_kwargs(settings: ComputeSettings) -> dict[str, Any]:
    """Return the ``distributed.LocalCluster`` arguments for ``runner="dask-local"``.

    Worker processes (not threads), ``settings.threads_per_worker`` threads each, BLAS
    threads capped to match, loopback only.
    """
    return {
        "n_workers": settings.workers,
        "threads_per_worker": settings.threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "memory_limit": settings.memory_per_worker,
        "dashboard_address": settings.dashboard_address,
        "env": blas_env(settings.threads_per_worker),
        "scheduler_kwargs": {"allowed_failures": settings.allowed_failures},
    }


def _job_kwargs(s: SlurmSettings) -> dict[str, Any]:
    """Return the keyword arguments shared by ``SLURMCluster`` and ``SLURMJob``."""
    prologue = [f"export {k}={v}" for k, v in blas_env(s.cores_per_worker).items()]
    worker_args: list[str] = []
    if s.gpus_per_job:
        worker_args += ["--resources", "GPU=1"]
        if s.processes > 1:
            # Each worker of the job narrows CUDA_VISIBLE_DEVICES to its own device.
            prologue.append(f"export {PIN_GPU_ENV}=1")
            worker_args += ["--preload", "quakelake.compute"]
    lifetime = s.worker_lifetime()
    if lifetime:
        worker_args += ["--lifetime", lifetime, "--lifetime-stagger", "2m"]
    directives = list(s.extra_directives)
    if s.gpus_per_job:
        directives.insert(0, f"--gres=gpu:{s.gpus_per_job}")
    if s.qos:
        directives.insert(0, f"--qos={s.qos}")
    kwargs: dict[str, Any] = {
        "job_name": "quakelake-dask",
        "account": s.account,
        "queue": s.partition,
        "cores": s.processes * s.threads_per_worker,
        "job_cpu": s.cores,
        "processes": s.processes,
        "memory": s.memory,
        "job_mem": s.memory.replace(" ", "").upper().replace("IB", "").replace("B", ""),
        "walltime": s.walltime,
        "job_script_prologue": prologue + list(s.prologue),
        "job_extra_directives": directives,
        "worker_extra_args": worker_args,
        "interface": s.interface,
        "nanny": s.nanny,
        "local_directory": s.local_directory,
        "log_directory": s.log_directory,
    }
    if s.python:
        kwargs["python"] = s.python
    return kwargs


def slurm_cluster_kwargs(
    s: SlurmSettings, allowed_failures: int = 1, dashboard_address: str | None = None
) -> dict[str, Any]:
    """Return the ``dask_jobqueue.SLURMCluster`` arguments for these job settings.

    The scheduler's dashboard is served only when ``dashboard_address`` is given (e.g. ``:8787``).
    """
    kwargs = _job_kwargs(s)
    scheduler: dict[str, Any] = {"allowed_failures": allowed_failures}
    if dashboard_address:
        scheduler["dashboard_address"] = dashboard_address
    else:
        scheduler["dashboard"] = False
    if s.scheduler_interface:
        scheduler["interface"] = s.scheduler_interface
    kwargs["scheduler_options"] = scheduler
    return kwargs


def slurm_adapt_kwargs(s: SlurmSettings) -> dict[str, Any]:
    """Return the adaptive-scaling arguments (``cluster.adapt``) counted in jobs."""
    return {"minimum_jobs": s.min_jobs, "maximum_jobs": s.max_jobs}


def render_slurm_job_script(
    s: SlurmSettings, scheduler_address: str = "tcp://scheduler:8786"
) -> str:
    """Return the sbatch script dask-jobqueue submits for one job of these settings.

    No SLURM and no scheduler are needed: use it to review a configuration before running it
    on the cluster (``sbatch --test-only`` on a login node checks it against the real limits).
    """
    from dask_jobqueue.slurm import SLURMJob

    kwargs = _job_kwargs(s)
    job = SLURMJob(scheduler=scheduler_address, name="quakelake-worker", **kwargs)
    return job.job_script()


def worker_index(name: object) -> int:
    """Return the position of a worker inside its job from its Dask name.

    ``dask worker --nworkers N --name X`` names its workers ``X-0 … X-(N-1)``; LocalCluster
    names them ``0 … N-1``.
    """
    if isinstance(name, int):
        return name
    tail = str(name).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def dask_setup(worker: Any) -> None:
    """Dask preload hook (``--preload quakelake.compute``): give this worker one GPU.

    When ``QUAKELAKE_PIN_GPU=1`` and the job sees several devices (``CUDA_VISIBLE_DEVICES``
    set by SLURM from ``--gres=gpu:N``), the worker keeps only the device at its index, so
    the picking model of each worker process lands on its own GPU. Runs before any task, so
    before torch initialises CUDA.
    """
    if os.environ.get(PIN_GPU_ENV) != "1":
        return
    devices = [
        d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()
    ]
    if len(devices) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[worker_index(worker.name) % len(devices)]
