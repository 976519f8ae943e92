"""The compute cluster (task runner settings) as a Prefect block."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from quakelake.params.compute import ComputeSettings, RunnerKind, SlurmSettings


class ComputeClusterBlock(Block):
    """Where a flow's tasks run: threads, a local Dask cluster, SLURM jobs or a Dask scheduler.

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

    runner: RunnerKind = Field(
        "threads", description="task runner: threads, dask-local, slurm or address."
    )
    workers: int = Field(
        2, ge=1, le=4096, description="threads (threads) or worker processes (dask-local)."
    )
    threads_per_worker: int = Field(1, ge=1, le=256, description="dask-local: threads per worker.")
    address: str | None = Field(
        None, description="runner=address: Dask scheduler address, e.g. tcp://10.0.0.5:8786."
    )
    allowed_failures: int = Field(
        1, ge=0, le=100, description="times a task may lose its worker before it fails."
    )
    slurm: SlurmSettings | None = Field(
        None,
        description="runner=slurm: account, partition, GPUs, cores, memory, walltime, prologue.",
    )

    def settings(self) -> ComputeSettings:
        """Return the validated ComputeSettings these fields describe."""
        return ComputeSettings.model_validate(
            self.model_dump(
                include=set(ComputeSettings.model_fields) & set(type(self).model_fields)
            )
        )
