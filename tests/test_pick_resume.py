"""A pick run killed mid-way and restarted finishes the rest and equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quakelake.config import PickParams, StationSelection
from quakelake.lakehouse import Lake, stem_of

PHASENET = PickParams(models=["PhaseNet"], weights=["original"])


def _pick_files(lake: Path) -> list[Path]:
    return sorted((lake / "picks").rglob("*.parquet")) if (lake / "picks").exists() else []


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_lake(shared_data, weights_cache, prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from quakelake.flows.pick import pick_phases

    archive = shared_data / "seismonitor_mesetas_2019" / "mseed"
    stations = ["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cmd = [
        sys.executable,
        "-m",
        "quakelake.cli",
        "pick",
        "-d",
        str(archive),
        "--lake",
        str(killed),
        "-S",
        *stations,
        "-M",
        "PhaseNet",
        "-W",
        "original",
        "--silent",
        "--workers",
        "1",
    ]
    # kill 1: the moment a unit's first data file is on disk (written, its commit pending or
    # under way): nothing of that unit may be visible, and nothing half-written
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while not _pick_files(killed) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    staged = _pick_files(killed)
    assert staged, "the run should be killed once its first file is written"
    committed = Lake(killed).files("picks")
    assert set(committed) <= set(staged) and len(committed) <= 1
    ledger = Lake(killed).read("units")
    assert sorted(ledger["output"]) == sorted(stem_of(p) for p in committed)  # files <=> rows

    # kill 2: after two units are committed, during the next ones
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while (
        len(Lake(killed).files("picks")) < 2 and time.monotonic() < deadline and proc.poll() is None
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = Lake(killed).files("picks")  # committed: each with its ledger row
    assert 2 <= len(done_before) < 14, "the run should be killed part-way"
    # Nothing half-written is visible: every committed file reads.
    Lake(killed).read("picks")

    sel = StationSelection(stations=stations)
    resumed = pick_phases(archive, killed, selection=sel, pick=PHASENET)
    assert resumed["skipped"] == len(done_before) and resumed["done"] == 14 - len(done_before)

    clean = tmp_path / "clean"
    pick_phases(archive, clean, selection=sel, pick=PHASENET)
    cols = ["pick_id", "station_id", "phase", "time", "probability"]
    a = Lake(killed).read("picks")[cols].sort_values("pick_id").reset_index(drop=True)
    b = Lake(clean).read("picks")[cols].sort_values("pick_id").reset_index(drop=True)
    assert len(a) > 1000
    assert a.equals(b)
    stems = [stem_of(p) for p in Lake(killed).files("picks")]
    assert stems == [stem_of(p) for p in Lake(clean).files("picks")]
    # the killed runs' uncommitted files are orphans: vacuum removes exactly those
    from quakelake.lakehouse.maintenance import vacuum

    removed = vacuum(Lake(killed), grace_s=0)["orphans"]
    assert all(Path(p) not in Lake(killed).files("picks") for p in removed)
    assert _pick_files(killed) == Lake(killed).files("picks")
    ledger = Lake(killed).query("SELECT unit, status FROM units WHERE stage = 'pick'")
    assert sorted(ledger.loc[ledger["status"] == "done", "unit"]) == sorted(set(ledger["unit"]))
