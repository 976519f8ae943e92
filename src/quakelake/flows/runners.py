"""Prefect task runners built from :class:`quakelake.flows.compute.ComputeSettings`.

Use with any flow::

    flow_fn.with_options(task_runner=make_task_runner(settings))(...)

Each stage gets its runner explicitly (:func:`stage_runner`): downloads run in threads of the flow
process (compute nodes have no internet), picking on the configured runner, association and
analysis where ``associate_on`` / ``analyze_on`` say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel

from quakelake.flows.compute import (
    local_cluster_kwargs,
    slurm_adapt_kwargs,
    slurm_cluster_kwargs,
)
from quakelake.params.compute import ComputeSettings, StagePlace


def compute_settings(
    settings: ComputeSettings | BaseModel | Mapping[str, Any] | None,
) -> ComputeSettings:
    """Return ``settings`` as ComputeSettings (accepts a mapping of its fields)."""
    if settings is None:
        return ComputeSettings()
    if isinstance(settings, ComputeSettings):
        return settings
    if isinstance(settings, BaseModel):
        settings = settings.model_dump(exclude_none=True)
    return ComputeSettings.model_validate(dict(settings))


def make_task_runner(
    settings: ComputeSettings | BaseModel | Mapping[str, Any] | None = None,
) -> TaskRunner[Any]:
    """Return the Prefect task runner that ``settings`` describe.

    Args:
        settings: ComputeSettings, the run configuration's ``execution`` part, or a mapping of
            the same fields; None means threads.

    Returns:
        ``ThreadPoolTaskRunner`` (threads) or ``prefect_dask.DaskTaskRunner`` (dask-local: a
        LocalCluster of processes; slurm: a ``dask_jobqueue.SLURMCluster`` scaled adaptively in
        jobs; address: the existing scheduler).
    """
    s = compute_settings(settings)
    if s.runner == "threads":
        return ThreadPoolTaskRunner(max_workers=s.workers)

    from prefect_dask import DaskTaskRunner

    if s.runner == "dask-local":
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(s)
        )
    if s.runner == "slurm":
        assert s.slurm is not None  # checked by ComputeSettings
        return DaskTaskRunner(
            cluster_class="dask_jobqueue.SLURMCluster",
            cluster_kwargs=slurm_cluster_kwargs(s.slurm, s.allowed_failures, s.dashboard_address),
            adapt_kwargs=slurm_adapt_kwargs(s.slurm),
        )
    return DaskTaskRunner(address=s.address)


#: Stages of the pipeline and where each may run.
STAGES = ("download", "pick", "associate", "analyze")


def flow_process_runner(workers: int = 4) -> TaskRunner[Any]:
    """Return a thread pool in the flow process (downloads; stages configured ``flow``)."""
    return ThreadPoolTaskRunner(max_workers=workers)


def stage_place(
    stage: str, settings: ComputeSettings | BaseModel | Mapping[str, Any] | None = None
) -> StagePlace:
    """Return where ``stage`` runs: ``flow`` (threads in the flow process) or ``runner``.

    Downloads always run in the flow process, picking always on the runner.

    Raises:
        ValueError: for an unknown stage.
    """
    s = compute_settings(settings)
    places: dict[str, StagePlace] = {
        "download": "flow",
        "pick": "runner",
        "associate": s.associate_on,
        "analyze": s.analyze_on,
    }
    if stage not in places:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return places[stage]


def stage_runner(
    stage: str, settings: ComputeSettings | BaseModel | Mapping[str, Any] | None = None
) -> TaskRunner[Any]:
    """Return the task runner of ``stage`` (see :func:`stage_place`); a new one per call."""
    s = compute_settings(settings)
    if stage_place(stage, s) == "flow":
        return flow_process_runner(max(s.workers, 4) if s.runner == "threads" else 4)
    return make_task_runner(s)
