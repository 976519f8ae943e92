"""The pipeline on a real SLURM scheduler (slurmctld + slurmd + munged on 127.0.0.1).

Downloads run in the flow process (compute nodes have no internet), pick units inside SLURM jobs
submitted by dask-jobqueue; a job cancelled mid-run fails the flow, keeps its finished units,
and a rerun completes to the same lake as an uninterrupted run.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from fdsn_servers import DataselectServer, FdsnServer
from slurm_local import LocalSlurm

from quakelake.config import PickParams, RunConfig, StationSelection, TimeWindow
from quakelake.flows.compute import ComputeSettings, SlurmSettings
from quakelake.lakehouse import Lake
from quakelake.params.download import DownloadParams, FdsnClientSpec

SALTON_DAY = dt.date(2020, 10, 1)
PICK = PickParams(models=["PhaseNet"], weights=["original"], device="cpu")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = LocalSlurm.unavailable()
    if reason:
        pytest.skip(reason)
    try:
        cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    except RuntimeError as exc:
        pytest.skip(f"could not start a local SLURM: {exc}")
    yield cluster
    cluster.stop()


def slurm_execution(tmp_path: Path, allowed_failures: int = 1) -> ComputeSettings:
    return ComputeSettings(
        runner="slurm",
        allowed_failures=allowed_failures,
        slurm=SlurmSettings(
            account="quakelake",
            partition="debug",
            cores=1,
            memory="3GB",
            walltime="00:20:00",
            lifetime_margin_minutes=0,
            max_jobs=1,
            interface="lo",  # scheduler and workers on 127.0.0.1 only
            local_directory=str(tmp_path / "worker-scratch"),
            log_directory=str(tmp_path / "slurm-logs"),
        ),
    )


def picks(lake: Path) -> pd.DataFrame:
    df = Lake(lake).read("picks").drop(columns=["run_id"])
    return df.sort_values(["station", "phase", "time"]).reset_index(drop=True)


def test_each_stage_gets_its_runner_explicitly(tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from quakelake.flows.runners import stage_place, stage_runner

    settings = slurm_execution(tmp_path)
    assert [stage_place(s, settings) for s in ("download", "pick", "associate", "analyze")] == [
        "flow",
        "runner",
        "flow",
        "flow",
    ]
    assert isinstance(stage_runner("download", settings), ThreadPoolTaskRunner)
    assert isinstance(stage_runner("associate", settings), ThreadPoolTaskRunner)
    assert isinstance(stage_runner("pick", settings), DaskTaskRunner)
    on_cluster = settings.model_copy(update={"associate_on": "runner", "analyze_on": "runner"})
    assert isinstance(stage_runner("associate", on_cluster), DaskTaskRunner)
    assert isinstance(stage_runner("analyze", on_cluster), DaskTaskRunner)
    assert isinstance(stage_runner("download", on_cluster), ThreadPoolTaskRunner)  # no internet
    with pytest.raises(ValueError, match="unknown stage"):
        stage_place("train", settings)


@pytest.mark.integration
@pytest.mark.slow
def test_downloads_stay_in_the_flow_process_and_picks_run_in_slurm_jobs(
    slurm, prefect_server, shared_data, weights_cache, tmp_path
):
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.pipeline import run_pipeline

    salton = shared_data / "phasenet_saltonsea_20201001"
    selection = StationSelection(stations=["BOM", "COA", "CRR"])
    with (
        DataselectServer(salton / "mseed", tmp_path / "dataselect") as ds,
        FdsnServer(salton / "stations.xml") as front,
    ):
        spec = FdsnClientSpec(
            name="loopback",
            url=ds.url,
            dataselect=ds.service_url,
            station=f"{front.url}/fdsnws/station/1",
        )
        config = RunConfig(
            lake=tmp_path / "lake",
            directory=tmp_path / "archive",
            window=TimeWindow(start=SALTON_DAY, end=SALTON_DAY),
            selection=selection,
            download=DownloadParams(clients=[spec], timeout=10, retries=1, backoff=0.05),
            pick=PICK,
            associate=None,
            execution=slurm_execution(tmp_path),
        )
        out = run_pipeline(config)

    assert out["stage_places"] == {
        "download": "flow",
        "pick": "runner",
        "associate": "flow",
        "analyze": "flow",
    }
    assert out["download"]["ok"] == 3 and out["download"]["failed"] == 0
    assert out["pick"]["done"] == 3 and out["pick"]["failed"] == 0
    download_places, pick_places = out["download"]["ran_on"], out["pick"]["ran_on"]
    assert sum(download_places.values()) == 3 and sum(pick_places.values()) == 3
    assert all(f"pid {os.getpid()}" in p and "slurm job" not in p for p in download_places)
    assert all("slurm job" in p and f"pid {os.getpid()} " not in p + " " for p in pick_places)
    assert slurm.jobs() == []  # the cluster closed with the flow: no job left behind

    reference = pick_phases(
        tmp_path / "archive", tmp_path / "reference", selection=selection, pick=PICK
    )
    assert reference["done"] == 3
    pd.testing.assert_frame_equal(picks(tmp_path / "lake"), picks(tmp_path / "reference"))


@pytest.mark.integration
@pytest.mark.slow
def test_cancelled_slurm_job_fails_the_flow_keeps_done_units_and_a_rerun_completes(
    slurm, prefect_server, shared_data, weights_cache, tmp_path
):
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.pipeline import run_pipeline

    archive = shared_data / "seismonitor_mesetas_2019" / "mseed"
    selection = StationSelection(stations=["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"])
    window = TimeWindow(start=dt.date(2019, 12, 25), end=dt.date(2019, 12, 25))  # 1 h per station
    lake = tmp_path / "lake"
    config = RunConfig(
        lake=lake,
        directory=archive,
        window=window,
        selection=selection,
        pick=PICK,
        associate=None,
        execution=slurm_execution(tmp_path, allowed_failures=0),
    )
    cancelled: list[str] = []

    def cancel_the_job_once_a_unit_is_done() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not Lake(lake).files("picks"):
            time.sleep(0.1)
        cancelled.extend(slurm.jobs())
        for job in cancelled:
            subprocess.run(["scancel", job], check=True)

    canceller = threading.Thread(target=cancel_the_job_once_a_unit_is_done, daemon=True)
    canceller.start()
    state = run_pipeline(config, return_state=True)
    canceller.join()
    assert cancelled, "no SLURM job was running while picking"
    assert state.is_failed()
    assert "lost their worker" in str(state.message) + repr(state.data)
    kept = len(Lake(lake).files("picks"))
    assert 1 <= kept < 7
    runs = Lake(lake).read("runs")
    assert runs["status"].tolist() == ["failed"]
    units = Lake(lake).read("units")
    assert (units["status"] == "done").sum() == kept  # finished units are in the ledger
    assert units["error"].str.startswith("lost worker").sum() >= 1

    again = run_pipeline(config)
    assert again["pick"]["skipped"] == kept and again["pick"]["done"] == 7 - kept
    assert again["pick"]["failed"] == 0
    assert all("slurm job" in p for p in again["pick"]["ran_on"])

    reference = pick_phases(archive, tmp_path / "reference", window, selection, PICK)
    assert reference["done"] == 7
    pd.testing.assert_frame_equal(picks(lake), picks(tmp_path / "reference"))
