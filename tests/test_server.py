"""``quakelake server start|status|stop``: a local Prefect server that outlives one command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.usefixtures("weights_cache")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_commands_use_the_local_server_until_it_is_stopped(shared_data, tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)

    def quakelake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "quakelake.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

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
            and status.stdout.strip() == f"Prefect server: {api} (pid {record['pid']}) answers"
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
    from quakelake.server import _alive

    assert not _alive(record["pid"])
    status = quakelake("server", "status")
    assert status.returncode == 1 and status.stdout.startswith("no local Prefect server runs")
