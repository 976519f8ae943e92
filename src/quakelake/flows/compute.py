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

import os
from typing import Any

from quakelake.params.compute import (
    ComputeSettings,
    SlurmSettings,
)

#: Environment variable that tells :func:`dask_setup` to give each worker of a job one GPU.
PIN_GPU_ENV = "QUAKELAKE_PIN_GPU"


def blas_env(threads: int) -> dict[str, str]:
    """Return the environment that caps OpenMP/BLAS/torch threads of one worker at ``threads``."""
    n = str(max(1, int(threads)))
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


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
            worker_args += ["--preload", "quakelake.flows.compute"]
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
    """Dask preload hook (``--preload quakelake.flows.compute``): give this worker one GPU.

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
