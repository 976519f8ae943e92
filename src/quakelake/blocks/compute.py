"""The compute cluster (task runner settings) as a Prefect block."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from quakelake.blocks.fields import settings_fields
from quakelake.params.compute import ComputeSettings

#: The ComputeSettings a cluster block holds: what describes the cluster, not where each stage runs.
CLUSTER_FIELDS = ("runner", "workers", "threads_per_worker", "address", "allowed_failures", "slurm")


_Fields = settings_fields(ComputeSettings, CLUSTER_FIELDS)


class ComputeClusterBlock(Block, _Fields):  # type: ignore[misc,valid-type]
    """Where a flow's tasks run: threads, a local Dask cluster, SLURM jobs or a Dask scheduler.

    Its fields are those of :class:`~quakelake.params.compute.ComputeSettings` named in
    :data:`CLUSTER_FIELDS`, with their defaults, limits and descriptions.

    Example (Leonardo Booster, one worker per A100)::

        ComputeClusterBlock(runner="slurm", slurm=SlurmSettings(
            account="IscrC_QUAKE", gpus_per_job=4, cores=32, memory="480GB",
            walltime="08:00:00", interface="ib0", max_jobs=4)).save("leonardo-booster")
    """

    _block_type_name = "QuakeLake Compute Cluster"
    _block_type_slug = "quakelake-compute-cluster"
    _description = (
        "Task runner of QuakeLake flows: threads, dask-local, slurm or a scheduler address."
    )
    _code_example = """
from quakelake.blocks import ComputeClusterBlock

cluster = ComputeClusterBlock.load("BLOCK_NAME")
settings = cluster.settings()  # ComputeSettings: pass to run_pipeline via compute_block
"""

    settings_model: ClassVar[type[ComputeSettings]] = ComputeSettings
    held: ClassVar[tuple[str, ...]] = CLUSTER_FIELDS

    def settings(self) -> ComputeSettings:
        """Return the validated ComputeSettings these fields describe (the others: defaults)."""
        return ComputeSettings.model_validate(self.model_dump(include=set(self.held)))
