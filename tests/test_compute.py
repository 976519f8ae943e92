"""Cluster settings, the SLURM job script of the Leonardo example, GPU pinning per worker."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from pydantic import ValidationError

from quakelake.flows.compute import (
    local_cluster_kwargs,
    render_slurm_job_script,
    slurm_cluster_kwargs,
    worker_index,
)
from quakelake.params.compute import ComputeSettings, SlurmSettings, parse_walltime

LEONARDO = SlurmSettings(
    account="IscrC_QUAKE",
    partition="boost_usr_prod",
    gpus_per_job=4,
    cores=32,
    memory="480GB",
    walltime="08:00:00",
    interface="ib0",
    prologue=["module load python/3.11.6--gcc--8.5.0", "source $WORK/quakelake/.venv/bin/activate"],
    max_jobs=4,
)


def test_leonardo_job_script_has_account_partition_gpus_walltime_prologue():
    script = render_slurm_job_script(LEONARDO, "tcp://10.10.0.1:8786")
    lines = script.splitlines()
    assert "#SBATCH -A IscrC_QUAKE" in lines
    assert "#SBATCH -p boost_usr_prod" in lines
    assert "#SBATCH --gres=gpu:4" in lines
    assert "#SBATCH -t 08:00:00" in lines
    assert "#SBATCH --cpus-per-task=32" in lines
    assert "#SBATCH --mem=480G" in lines
    assert "module load python/3.11.6--gcc--8.5.0" in lines
    assert "source $WORK/quakelake/.venv/bin/activate" in lines
    assert "export OMP_NUM_THREADS=8" in lines  # 32 cores / 4 workers
    worker = next(line for line in lines if "dask_worker" in line or "dask-worker" in line)
    assert "tcp://10.10.0.1:8786" in worker
    assert "--nworkers 4" in worker and "--nthreads 1" in worker  # one worker per GPU
    assert "--resources GPU=1" in worker and "--preload quakelake.flows.compute" in worker
    assert "--interface ib0" in worker
    assert "--lifetime 470m" in worker  # retire 10 min before the walltime
    # the prologue runs before the worker starts
    assert lines.index("module load python/3.11.6--gcc--8.5.0") < lines.index(worker)


def test_real_slurmcluster_renders_the_same_directives():
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    kwargs = slurm_cluster_kwargs(LEONARDO.model_copy(update={"interface": None}))
    with dask_jobqueue.SLURMCluster(**kwargs) as cluster:  # starts a real local scheduler
        script = cluster.job_script()
        assert cluster.scheduler.allowed_failures == 1
    for directive in ("-A IscrC_QUAKE", "-p boost_usr_prod", "--gres=gpu:4", "-t 08:00:00"):
        assert f"#SBATCH {directive}" in script


def test_cpu_job_has_no_gpu_directives():
    script = render_slurm_job_script(
        SlurmSettings(
            account="A", partition="dcgp_usr_prod", cores=112, workers_per_job=8, memory="480GB"
        )
    )
    assert "--gres" not in script and "GPU=1" not in script
    assert "--nworkers 8" in script and "export OMP_NUM_THREADS=14" in script


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00:00", dt.timedelta(hours=8)),
        ("1-00:00:00", dt.timedelta(days=1)),
        ("30:00", dt.timedelta(minutes=30)),
        ("90", dt.timedelta(minutes=90)),
        ("2-12", dt.timedelta(days=2, hours=12)),
        ("1-02:30", dt.timedelta(days=1, hours=2, minutes=30)),
    ],
)
def test_parse_walltime(text, expected):
    assert parse_walltime(text) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"account": "A", "walltime": "8h"}, "walltime '8h'"),
        ({"account": "A", "memory": "lots"}, "memory 'lots'"),
        ({"account": "A", "min_jobs": 3, "max_jobs": 1}, "min_jobs 3"),
        ({"account": "A", "gpus_per_job": 4, "cores": 2}, "exceed cores=2"),
        ({"account": "A", "walltime": "00:05:00"}, "lifetime_margin_minutes"),
    ],
)
def test_invalid_slurm_settings_name_the_parameter(fields, message):
    with pytest.raises((ValidationError, ValueError), match=message):
        s = SlurmSettings(**fields)
        s.worker_lifetime()


def test_runner_needs_its_settings():
    with pytest.raises(ValidationError, match="needs address"):
        ComputeSettings(runner="address")
    with pytest.raises(ValidationError, match="needs slurm settings"):
        ComputeSettings(runner="slurm")
    with pytest.raises(ValidationError, match="runner"):
        ComputeSettings(runner="kubernetes")


def test_worker_index():
    assert worker_index(1) == 1
    assert worker_index("quakelake-dask-3-2") == 2
    assert worker_index("tcp://weird") == 0


def test_each_worker_process_sees_one_device():
    """Real worker processes with the preload hook: a job seeing GPUs 0,1 gives one to each."""
    from distributed import Client, LocalCluster

    kwargs = local_cluster_kwargs(ComputeSettings(runner="dask-local", workers=2))
    kwargs["env"].update({"CUDA_VISIBLE_DEVICES": "0,1", "QUAKELAKE_PIN_GPU": "1"})
    with (
        LocalCluster(**kwargs, preload=["quakelake.flows.compute"]) as cluster,
        Client(cluster) as client,
    ):
        seen = client.run(
            lambda: (os.environ["CUDA_VISIBLE_DEVICES"], os.environ["OMP_NUM_THREADS"])
        )
    assert sorted(v[0] for v in seen.values()) == ["0", "1"]
    assert {v[1] for v in seen.values()} == {"1"}
