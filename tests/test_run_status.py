"""Status that tells the truth: exit codes, killed runs, what the lake holds.

- ``quakelake`` killed with SIGKILL mid-run leaves no child behind (its temporary Prefect server
  included); the next run marks the killed run ``crashed``, gives its committed units their
  ledger rows, and finishes to the same picks as an uninterrupted run.
- ``download`` with failed units and ``run`` with failed units exit 1 (bad input is 2).
- A skipped association prints the events the lake holds, not ``0 events``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fdsn_servers import DataselectServer, FdsnServer

from quakelake.cli import exit_status, main
from quakelake.lakehouse import Lake, stem_of
from quakelake.service.lifeline import descendants

ROOT = Path(__file__).resolve().parents[1]
MESETAS_STATIONS = ["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"]


def pick_args(archive: Path, lake: Path) -> list[str]:
    return [
        "pick",
        "-d",
        str(archive),
        "--lake",
        str(lake),
        "-J",
        "2019359",
        "2019359",
        "-S",
        *MESETAS_STATIONS,
        "-M",
        "PhaseNet",
        "-W",
        "original",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--silent",
    ]


def command_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # a loaded CI machine
    return env


def alive(pids: dict[int, int]) -> list[int]:
    out = []
    for pid, start in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[19]) == start and fields[0] != "Z":
            out.append(pid)
    return out


def picks(lake: Path) -> pd.DataFrame:
    df = Lake(lake).read("picks").drop(columns=["run_id"])
    return df.sort_values(["station", "phase", "time"]).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_leaves_no_child_and_the_next_run_marks_it_crashed_with_its_units(
    shared_data, weights_cache, prefect_server, tmp_path
):
    from quakelake.config import PickParams, StationSelection, TimeWindow
    from quakelake.flows.pick import pick_phases

    if not Path("/proc/self/stat").exists():
        pytest.skip("the watchdog reads /proc (Linux only)")
    archive = shared_data / "seismonitor_mesetas_2019" / "mseed"
    lake = tmp_path / "lake"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quakelake.cli", *pick_args(archive, lake)],
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    children: dict[int, int] = {}
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        children.update(descendants(proc.pid))
        if Lake(lake).files("picks"):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    children.update(descendants(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = Lake(lake).files("picks")  # each unit committed with its ledger row
    # killed before the run ended (its record below still says running); on a fast machine the
    # seven units (~0.3 s each) can all be committed within one poll of the lake (~1 s)
    assert 1 <= len(committed) <= 7
    assert len(children) >= 2  # the watchdog and at least the temporary Prefect server
    deadline = time.monotonic() + 30
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(children) == [], "children outlived the SIGKILLed command"

    runs = Lake(lake).read("runs")
    assert runs["status"].tolist() == ["running"]  # what the kill left: nobody could say more
    killed = runs["run_id"][0]

    done = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *pick_args(archive, lake)],
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"skipped {len(committed)}" in done.stdout
    runs = Lake(lake).read("runs").set_index("run_id")
    assert runs.loc[killed, "status"] == "crashed"
    assert runs.drop(index=killed)["status"].tolist() == ["completed"]
    units = Lake(lake).query("SELECT * FROM units WHERE run_id = ?", [killed])
    assert sorted(units["output"]) == sorted(stem_of(p) for p in committed)
    assert set(units["status"]) == {"done"}
    held = Lake(lake).query("SELECT count(*) AS n FROM picks WHERE run_id = ?", [killed])["n"][0]
    assert units["rows"].sum() == held  # every pick of the killed run is accounted for

    reference = tmp_path / "reference"
    day = dt.date(2019, 12, 25)
    pick_phases(
        archive,
        reference,
        TimeWindow(start=day, end=day),
        StationSelection(stations=MESETAS_STATIONS),
        PickParams(models=["PhaseNet"], weights=["original"], device="cpu"),
    )
    pd.testing.assert_frame_equal(picks(lake), picks(reference))


def test_exit_status_is_one_when_any_unit_failed():
    assert exit_status({"failed": 0}, None, []) == 0
    assert exit_status({"failed": 0}, {"done": 3, "failed": 1}) == 1
    assert exit_status(None, {"failed": 0}, [{"failed": 0}, {"failed": 2}]) == 1


@pytest.mark.integration
def test_download_and_run_with_failed_units_exit_one(
    shared_data, weights_cache, prefect_server, tmp_path, capsys
):
    salton = shared_data / "phasenet_saltonsea_20201001"
    config = tmp_path / "config.yaml"
    config.write_text("download:\n  retries: 0\n  timeout: 5\nassociate: null\n")
    archive, lake = tmp_path / "archive", tmp_path / "lake"
    common = [
        "-c",
        str(config),
        "-d",
        str(archive),
        "--lake",
        str(lake),
        "-D",
        "20201001",
        "20201001",
    ]
    with DataselectServer(salton / "mseed", tmp_path / "ds") as ds:
        with FdsnServer(salton / "stations.xml", ds.service_url) as good:
            assert main(["download", *common, "-S", "BOM", "--client", good.url]) == 0
        capsys.readouterr()
        with FdsnServer(salton / "stations.xml", ds.service_url, fail_first=10_000) as broken:
            assert main(["download", *common, "-S", "COA", "SLV", "--client", broken.url]) == 1
            out = capsys.readouterr()
            assert "failed 2)" in out.out
            assert "error: 2 of 2 station-days failed to download" in out.err
            # BOM is in the archive already and is picked; COA fails to download: exit 1, not 0.
            run = [
                "run",
                "--download",
                *common,
                "-S",
                "BOM",
                "COA",
                "--client",
                broken.url,
                "-M",
                "PhaseNet",
                "-W",
                "original",
                "--device",
                "cpu",
            ]
            assert main(run) == 1
            out = capsys.readouterr()
    assert "skipped 1, partial 0, no data 0, failed 1)" in out.out and "1 units (done 1" in out.out
    assert out.err.count("error:") == 1
    statuses = Lake(lake).query("SELECT station, status FROM downloads ORDER BY ALL")
    assert ("COA", "failed") in set(statuses.itertuples(index=False, name=None))


@pytest.mark.integration
def test_a_skipped_association_prints_the_events_the_lake_holds(
    shared_data, prefect_server, tmp_path, capsys
):
    salton = shared_data / "phasenet_saltonsea_20201001"
    args = [
        "associate",
        "--lake",
        str(tmp_path / "lake"),
        "--picks",
        str(salton / "DERIVED_phasenet_ref_picks_first180s.csv"),
        "-F",
        str(salton / "stations.xml"),
        "--pyocto",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    events = Lake(tmp_path / "lake").query(
        "SELECT count(*) AS n FROM events WHERE evaluation_status <> 'rejected'"
    )["n"][0]
    assert events >= 1
    assert f"{events} events written, lake holds {events} events" in first
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "skipped 1" in second
    assert f"0 events written, lake holds {events} events for these days" in second
