"""Task runners from configuration, on a real flow over real miniSEED files.

The flow maps one task per file: read it with ObsPy, write its trace segments to the lake as
one immutable file. Threads and a real 2-process ``distributed.LocalCluster`` must give the
same lake; a worker killed mid-run fails the flow, keeps finished units, and a rerun completes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from quakelake.flows.compute import ComputeSettings
from quakelake.flows.runners import make_task_runner
from quakelake.lakehouse import Lake, safe_name, write_table

ARCHIVE = "saltonsea"


@task(cache_policy=NONE)
def index_file(path: Path, lake: Path, kill_marker: Path | None = None) -> dict:
    """Index one miniSEED file into `waveform_index`; return the unit's outcome and process id."""
    from obspy import read

    if safe_name(path.stem) in set(Lake(lake).stems("waveform_index")["stem"]):
        return {"unit": path.name, "status": "skipped", "pid": os.getpid()}
    if kill_marker is not None and kill_marker.exists():
        os.kill(os.getpid(), signal.SIGKILL)  # a worker dying mid-task (OOM, walltime, node loss)
    stream = read(str(path))
    rows = [
        {
            "path": str(path),
            "format": "MSEED",
            "network": tr.stats.network,
            "station": tr.stats.station,
            "location": tr.stats.location,
            "channel": tr.stats.channel,
            "start": tr.stats.starttime.datetime,
            "end": tr.stats.endtime.datetime,
            "sampling_rate": float(tr.stats.sampling_rate),
            "npts": int(tr.stats.npts),
            "file_size": path.stat().st_size,
            "file_mtime": float(abs(tr.data).max()),  # a computed value from the samples
        }
        for tr in stream
    ]
    write_table(lake, "waveform_index", pd.DataFrame(rows), path.stem, {"archive": ARCHIVE})
    return {"unit": path.name, "status": "done", "pid": os.getpid()}


@flow
def index_files(
    files: list[Path], lake: Path, kill: str = "", kill_marker: Path | None = None
) -> list[dict]:
    """Index every file; the file named ``kill`` gets the kill marker."""
    futures = [index_file.submit(f, lake, kill_marker if f.name == kill else None) for f in files]
    return [f.result() for f in futures]


@pytest.fixture(scope="module")
def mseed_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "phasenet_saltonsea_20201001" / "mseed").glob("*.mseed"))


def lake_rows(lake: Path) -> pd.DataFrame:
    df = Lake(lake).query("SELECT * FROM waveform_index ORDER BY network, station, channel")
    return df.reset_index(drop=True)


def test_factory_kinds():
    assert isinstance(make_task_runner(None), ThreadPoolTaskRunner)
    assert isinstance(
        make_task_runner(ComputeSettings(runner="threads", workers=3)), ThreadPoolTaskRunner
    )
    local = make_task_runner({"runner": "dask-local", "workers": 2})
    assert isinstance(local, DaskTaskRunner)
    assert local.cluster_kwargs["n_workers"] == 2 and local.cluster_kwargs["processes"] is True
    assert local.cluster_kwargs["env"]["OMP_NUM_THREADS"] == "1"
    remote = make_task_runner(ComputeSettings(runner="address", address="tcp://10.0.0.5:8786"))
    assert remote.address == "tcp://10.0.0.5:8786"
    slurm = make_task_runner(
        {
            "runner": "slurm",
            "slurm": {"account": "IscrC_TEST", "gpus_per_job": 4, "cores": 32, "max_jobs": 3},
        }
    )
    assert slurm.cluster_class == "dask_jobqueue.SLURMCluster"
    assert slurm.cluster_kwargs["queue"] == "boost_usr_prod"
    assert "--gres=gpu:4" in slurm.cluster_kwargs["job_extra_directives"]
    assert slurm.adapt_kwargs == {"minimum_jobs": 0, "maximum_jobs": 3}


@flow
def runner_slots() -> int | None:
    """Return what the pick flow sizes its batches by (quakelake.flows.common.task_slots)."""
    from quakelake.flows.common import task_slots

    return task_slots()


def test_task_slots_are_the_runners_threads(prefect_server):
    assert runner_slots.with_options(task_runner=ThreadPoolTaskRunner(max_workers=3))() == 3
    assert runner_slots.with_options(task_runner=ThreadPoolTaskRunner())() is None  # unbounded


@pytest.mark.slow
def test_dask_local_matches_threads(prefect_server, mseed_files, tmp_path):
    threads = index_files.with_options(task_runner=make_task_runner(ComputeSettings(workers=2)))
    threads(mseed_files, tmp_path / "threads")
    runner = make_task_runner(ComputeSettings(runner="dask-local", workers=2))
    results = index_files.with_options(task_runner=runner)(mseed_files, tmp_path / "dask")

    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids and len(pids) == 2  # two worker processes did the work
    a, b = lake_rows(tmp_path / "threads"), lake_rows(tmp_path / "dask")
    assert len(a) == 48 and a["station"].nunique() == 16
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_killed_worker_fails_run_keeps_done_units_and_rerun_finishes(
    prefect_server, mseed_files, tmp_path
):
    lake = tmp_path / "lake"
    marker = tmp_path / "kill-me"
    marker.touch()
    victim = mseed_files[-1].name
    settings = ComputeSettings(runner="dask-local", workers=2, allowed_failures=1)
    run = index_files.with_options(task_runner=make_task_runner(settings))

    state = run(mseed_files, lake, kill=victim, kill_marker=marker, return_state=True)
    assert state.is_failed()
    assert "KilledWorker" in str(state.message) or "KilledWorker" in repr(state.data)
    kept = lake_rows(lake)
    assert 0 < kept["station"].nunique() < 16  # finished units stay in the lake
    assert victim.split(".")[1] not in set(kept["station"])
    assert not list(lake.rglob("*.tmp*"))  # no half-written files

    marker.unlink()
    results = run(mseed_files, lake)
    assert {r["status"] for r in results} == {"done", "skipped"}
    assert sum(r["status"] == "skipped" for r in results) == kept["station"].nunique()
    reference = tmp_path / "reference"
    index_files.with_options(task_runner=make_task_runner(None))(mseed_files, reference)
    pd.testing.assert_frame_equal(lake_rows(lake), lake_rows(reference))


@pytest.mark.slow
def test_pick_flow_on_two_dask_workers_matches_threads(
    prefect_server, shared_data, weights_cache, tmp_path
):
    """The real pick flow: same picks on 2 worker processes as on threads; 1 model load per worker."""
    from distributed import Client, LocalCluster

    from quakelake.config import PickParams
    from quakelake.flows.compute import local_cluster_kwargs
    from quakelake.flows.pick import pick_phases
    from quakelake.picking import models as picking

    archive = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    params = PickParams(models=["PhaseNet"], weights=["original"], device="cpu")
    threads = make_task_runner(ComputeSettings(runner="threads", workers=2))
    a = pick_phases.with_options(task_runner=threads)(archive, tmp_path / "threads", pick=params)

    # The dask-local cluster exactly as make_task_runner builds it, kept open so the model
    # loads of each worker process can be read after the run.
    settings = ComputeSettings(runner="dask-local", workers=2)
    with LocalCluster(**local_cluster_kwargs(settings)) as cluster, Client(cluster) as client:
        runner = make_task_runner(
            ComputeSettings(runner="address", address=cluster.scheduler_address)
        )
        b = pick_phases.with_options(task_runner=runner)(archive, tmp_path / "dask", pick=params)
        loads = client.run(picking.model_loads)
        slots = runner_slots.with_options(task_runner=runner)()
    assert slots == 2  # two worker processes of one thread: the pick flow sent 4 batches of 4
    assert a["done"] == b["done"] == 16 and b["failed"] == 0
    assert len(loads) == 2 and sum(loads.values()) <= 2  # per worker process, not per unit

    def picks(lake: Path) -> pd.DataFrame:
        df = Lake(lake).read("picks").drop(columns=["run_id"])
        return df.sort_values(["station", "phase", "time"]).reset_index(drop=True)

    pa_, pb = picks(tmp_path / "threads"), picks(tmp_path / "dask")
    assert len(pa_) > 100
    pd.testing.assert_frame_equal(pa_, pb)


@pytest.mark.slow
def test_pick_flow_fails_when_a_worker_dies_and_a_rerun_finishes(
    prefect_server, shared_data, weights_cache, tmp_path
):
    """A Dask worker killed mid-run: the pick flow ends Failed, keeps its units, a rerun finishes."""
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    from quakelake.config import PickParams, StationSelection
    from quakelake.flows.compute import local_cluster_kwargs
    from quakelake.flows.pick import pick_phases

    archive = shared_data / "seismonitor_mesetas_2019" / "mseed"
    sel = StationSelection(stations=["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"])
    params = PickParams(models=["PhaseNet"], weights=["original"], device="cpu")
    lake = tmp_path / "lake"
    settings = ComputeSettings(runner="dask-local", workers=2, allowed_failures=0)
    with LocalCluster(**local_cluster_kwargs(settings)) as cluster, Client(cluster) as client:
        runner = make_task_runner(
            ComputeSettings(runner="address", address=cluster.scheduler_address)
        )
        pids = list(client.run(os.getpid).values())

        def kill_one_worker_when_picking() -> None:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and len(Lake(lake).files("picks")) < 2:
                time.sleep(0.1)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one_worker_when_picking, daemon=True)
        killer.start()
        state = pick_phases.with_options(task_runner=runner)(
            archive, lake, selection=sel, pick=params, return_state=True
        )
        killer.join()
    assert state.is_failed() and "lost their worker" in str(state.message) + repr(state.data)
    kept = len(Lake(lake).files("picks"))
    assert 2 <= kept < 14
    runs = Lake(lake).read("runs")
    assert runs["status"].tolist() == ["failed"]

    again = pick_phases(archive, lake, selection=sel, pick=params)
    assert again["skipped"] == kept and again["done"] == 14 - kept and again["failed"] == 0
