"""``quakelake server start|status|stop``: a local Prefect server that outlives one command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from cli_run import quakelake

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.usefixtures("weights_cache")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command_line(home):
    """Return a function running ``quakelake ARGS`` in a new process with ``home`` as PREFECT_HOME."""
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)

    def command(*args: str, cwd=None) -> subprocess.CompletedProcess:
        return quakelake(*args, env=env, cwd=cwd)

    return command


def test_commands_use_the_local_server_until_it_is_stopped(shared_data, tmp_path):
    quakelake = _command_line(tmp_path / "prefect")

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    started = quakelake("server", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        assert started.stdout.startswith(f"Prefect server: {api} ")
        record = json.loads((tmp_path / "prefect" / "quakelake-server.json").read_text())
        assert record["api_url"] == api
        again = quakelake("server", "start", "--port", str(_free_port()))
        assert again.returncode == 0 and f"pid {record['pid']}" in again.stdout  # the same server
        status = quakelake("server", "status")
        assert (
            status.returncode == 0
            and status.stdout.splitlines()[0]
            == f"Prefect server: {api} (pid {record['pid']}) answers"
        )

        lake = tmp_path / "lake"
        pick = quakelake(
            "pick",
            "-d",
            str(shared_data / "phasenet_saltonsea_20201001" / "mseed"),
            "--lake",
            str(lake),
            "-S",
            "BOM",
            "-M",
            "PhaseNet",
            "-W",
            "original",
            "--silent",
        )
        assert pick.returncode == 0, pick.stderr[-2000:]
        request = urllib.request.Request(
            f"{api}/flow_runs/filter",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            runs = json.load(resp)
        assert [(r["name"] != "", r["state_type"]) for r in runs] == [(True, "COMPLETED")]
        from quakelake.lakehouse import Lake

        flow_run_id = Lake(lake).query("SELECT flow_run_id FROM runs")["flow_run_id"].tolist()
        assert flow_run_id == [runs[0]["id"]]  # the run in the lake is the one in the server's UI
    finally:
        stopped = quakelake("server", "stop")
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"Prefect server at {api} stopped"
    from quakelake.service.server import _alive

    assert not _alive(record["pid"])
    status = quakelake("server", "status")
    assert status.returncode == 1 and status.stdout.startswith("no local Prefect server runs")


def test_warm_workers_pick_every_command_in_one_process_with_the_same_picks(shared_data, tmp_path):
    """``server start --workers 1``: pick units of later commands run on its resident worker."""
    quakelake = _command_line(tmp_path / "prefect")
    archive = shared_data / "phasenet_saltonsea_20201001" / "mseed"

    def ran_on(lake) -> dict:
        from quakelake.lakehouse import Lake

        (config,) = Lake(lake).query("SELECT config_json FROM runs")["config_json"]
        return json.loads(config)["ran_on"]

    started = quakelake("server", "start", "--port", str(_free_port()), "--workers", "1")
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        record = json.loads((tmp_path / "prefect" / "quakelake-server.json").read_text())
        assert started.stdout.splitlines()[1] == (
            f"warm workers: 1 x 1 thread(s) at {record['dask_address']}; pick units go there "
            "when no --runner is given"
        )  # the default weights were found and loaded: nothing is listed as not preloaded
        # relative paths from another folder than the workers': they get absolute ones
        (tmp_path / "here").mkdir()
        pick = ("pick", "-d", str(archive), "-S", "BOM", "COA", "-M", "PhaseNet", "-W", "original")
        for lake in ("warm1", "warm2"):
            done = quakelake(*pick, "--lake", lake, "--silent", cwd=tmp_path / "here")
            assert done.returncode == 0, done.stderr[-2000:]
        alone = quakelake(*pick, "--lake", "alone", "--runner", "threads", "--silent", cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr[-2000:]

        first, second = ran_on(tmp_path / "here" / "warm1"), ran_on(tmp_path / "here" / "warm2")
        assert list(first.values()) == [2] and first == second  # both commands: one worker process
        (place,) = first
        assert f"pid {record['dask_pid']}" != place.split(" ", 1)[1]  # a worker, not its parent
        (threads_place,) = ran_on(tmp_path / "alone")
        assert threads_place != place  # --runner threads: picked in the command's own process

        from quakelake.lakehouse import Lake

        columns = ["station", "phase", "time", "probability"]
        warm = Lake(tmp_path / "here" / "warm1").read("picks")[columns]
        plain = Lake(tmp_path / "alone").read("picks")[columns]
        warm, plain = (f.sort_values(columns[:3]).reset_index(drop=True) for f in (warm, plain))
        assert len(plain) > 0 and warm.equals(plain)  # the same picks wherever they were made

        # workers started by other code (an upgrade since server start) are not sent units
        state = tmp_path / "prefect" / "quakelake-server.json"
        state.write_text(json.dumps({**json.loads(state.read_text()), "code": "0" * 16}))
        stale = quakelake(*pick, "--lake", "stale", cwd=tmp_path)
        assert stale.returncode == 0, stale.stderr[-2000:]
        (warning,) = [ln for ln in stale.stderr.splitlines() if ln.startswith("warning:")]
        assert "older than this command's" in warning and "--workers 1" in warning
        (stale_place,) = ran_on(tmp_path / "stale")
        assert stale_place != place  # picked in the command's own process
    finally:
        stopped = quakelake("server", "stop")
        assert stopped.returncode == 0
    assert not (tmp_path / "prefect" / "quakelake-workers.json").exists()
    from quakelake.service.server import _alive

    deadline = time.monotonic() + 30
    while _alive(record["dask_pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(record["dask_pid"])  # stop ended the warm workers too
