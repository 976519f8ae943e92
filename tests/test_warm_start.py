"""Warm start (``quakelake.cli.warm_start``): commands run in forks of the process that
``quakelake server start`` keeps with their modules loaded, with the results, output, exit
status and signals of a command run on its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import quakelake

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.usefixtures("weights_cache")]

NOTE = re.compile(r"note: running in pid (\d+), a fork of the warm process \(pid (\d+)\)")
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    from quakelake.service.server import _alive as alive

    return alive(pid)


@pytest.fixture
def warm_server(tmp_path):
    """A local server started as a user does, with its warm process; yield (environment, record)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    env.pop("QUAKELAKE_COLD_START", None)
    started = _quakelake(env, "server", "start", "--port", str(_free_port()))
    assert started.returncode == 0, started.stderr[-2000:]
    record = json.loads((tmp_path / "prefect" / "quakelake-server.json").read_text())
    try:
        yield env, record, started.stdout
    finally:
        stopped = _quakelake(env, "server", "stop")
        assert stopped.returncode == 0, stopped.stderr[-2000:]


def _quakelake(env: dict, *args: str) -> subprocess.CompletedProcess:
    return quakelake(*args, env=env)


def _pids(lake: Path) -> dict[str, int]:
    """Return each run's id -> the process that ran it (from its ``running`` row)."""
    from quakelake.lakehouse import Lake

    rows = Lake(lake).query("SELECT run_id, config_json FROM lake.runs WHERE status = 'running'")
    return {
        run: json.loads(c)["_process"]["pid"]
        for run, c in zip(rows["run_id"], rows["config_json"], strict=True)
    }


def _status(lake: Path, run_id: str) -> str:
    from quakelake.lakehouse import Lake

    runs = Lake(lake).query("SELECT run_id, status FROM runs")
    return dict(zip(runs["run_id"], runs["status"], strict=True))[run_id]


def test_a_command_runs_in_a_fork_with_the_results_and_output_of_one_run_on_its_own(
    shared_data, tmp_path, warm_server
):
    env, record, started = warm_server
    warm_pid = record["warm_pid"]
    log = Path(record["warm_log"])
    assert started.splitlines()[1] == (
        f"warm start: commands run in forks of pid {warm_pid}, their modules loaded (log {log}; "
        "QUAKELAKE_COLD_START=1 runs one on its own)"
    )
    status = _quakelake(env, "server", "status")
    assert status.returncode == 0 and status.stdout.splitlines()[1] == started.splitlines()[1]

    salton = shared_data / "phasenet_saltonsea_20201001"
    pick = ("pick", "-d", str(salton / "mseed"), "-M", "PhaseNet", "-W", "original", "--silent")
    picked = _quakelake(env, *pick, "--lake", str(tmp_path / "warm"))
    assert picked.returncode == 0, picked.stderr[-2000:]
    shutil.copytree(tmp_path / "warm", tmp_path / "cold", symlinks=True)

    run = ("run", "-d", str(salton / "mseed"), "-M", "PhaseNet", "-W", "original")
    run += ("-F", str(salton / "stations.xml"), "-v")
    warm = _quakelake(env, *run, "--lake", str(tmp_path / "warm"))
    assert warm.returncode == 0, warm.stderr[-3000:]
    (note,) = [NOTE.match(line) for line in warm.stderr.splitlines() if NOTE.match(line)]
    fork, parent = int(note.group(1)), int(note.group(2))
    assert parent == warm_pid and fork != warm_pid
    assert fork in _pids(tmp_path / "warm").values()  # the fork ran (and recorded) the run
    assert not _alive(fork)  # and ended with the command

    cold_env = {**env, "QUAKELAKE_COLD_START": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quakelake.cli", *run, "--lake", str(tmp_path / "cold")],
        env=cold_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cold_out, cold_err = proc.communicate(timeout=600)
    assert proc.returncode == 0, cold_err[-3000:]
    assert not NOTE.search(cold_err)
    assert proc.pid in _pids(tmp_path / "cold").values()  # run in the command's own process

    # the same lines (run ids aside), the same events and magnitudes
    def same(out: str, lake: str) -> str:
        return RUN_ID.sub("ID", out.replace(str(tmp_path / lake), "LAKE"))

    assert same(warm.stdout, "warm") == same(cold_out, "cold")
    from quakelake.lakehouse import Lake

    columns = ["time", "latitude", "longitude", "depth_km", "magnitude"]
    events = [
        Lake(tmp_path / name).read("events")[columns].sort_values("time").reset_index(drop=True)
        for name in ("warm", "cold")
    ]
    assert len(events[0]) >= 5 and events[0].equals(events[1])

    # bad input found by the fork: its one error line and exit status 2 reach the user
    bad_sql = _quakelake(env, "sql", "SELEC 1", "--lake", str(tmp_path / "warm"), "-v")
    assert bad_sql.returncode == 2 and NOTE.search(bad_sql.stderr)
    assert bad_sql.stderr.splitlines()[-1].startswith("error: ")


def test_ctrl_c_and_sigkill_of_the_command_reach_its_fork(shared_data, tmp_path, warm_server):
    env, _record, _ = warm_server
    archive = shared_data / "seismonitor_mesetas_2019" / "mseed"
    stations = ["CHI", "FLO2", "GARC", "ORTC", "PRA", "URMC", "YOT"]
    lake = tmp_path / "lake"
    cmd = [sys.executable, "-m", "quakelake.cli", "pick", "-d", str(archive), "--lake", str(lake)]
    cmd += ["-S", *stations, "-M", "PhaseNet", "-W", "original", "-v"]

    def started() -> tuple[subprocess.Popen, int]:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()
        note = NOTE.match(line)
        assert note, line
        from quakelake.lakehouse import Lake

        def files() -> int:
            return len(Lake(lake).files("picks")) if lake.exists() else 0

        before, fork = files(), int(note.group(1))
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:  # the fork's run commits
            if files() > before and fork in _pids(lake).values():
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the pick should still run"
        return proc, fork

    # Ctrl-C: the fork is interrupted as the command would be, and says so
    proc, fork = started()
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=120) == 130, err[-2000:]
    assert err.splitlines()[-1].startswith("error: interrupted; run the same command again")
    assert not _alive(fork)

    # SIGKILL (OOM killer, kill -9): the fork ends with it, and the rerun finds its run crashed
    proc, fork = started()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while _alive(fork) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(fork), "the fork outlived its SIGKILLed command"
    (killed,) = [run for run, pid in _pids(lake).items() if pid == fork]
    rerun = _quakelake(env, *cmd[3:-1], "--silent")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _status(lake, killed) == "crashed"


def test_a_command_with_another_environment_runs_on_its_own(tmp_path, warm_server):
    env, _record, _ = warm_server
    lake = tmp_path / "lake"
    same = _quakelake(env, "tables", "--lake", str(lake), "-v")
    other = _quakelake({**env, "QUAKELAKE_SOMETHING": "1"}, "tables", "--lake", str(lake), "-v")
    assert NOTE.search(same.stderr)
    assert not NOTE.search(other.stderr)
    assert (same.returncode, same.stdout) == (other.returncode, other.stdout)


def test_code_changed_since_server_start_runs_on_its_own_with_a_warning(tmp_path):
    """An upgrade or an edit after ``server start``: the warm process's modules are stale."""
    import quakelake

    src = tmp_path / "src"
    shutil.copytree(Path(quakelake.__file__).parent, src / "quakelake")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(src)}
    env.pop("PREFECT_API_URL", None)
    env.pop("QUAKELAKE_COLD_START", None)
    started = _quakelake(env, "server", "start", "--port", str(_free_port()))
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        lake = str(tmp_path / "lake")
        before = _quakelake(env, "tables", "--lake", lake, "-v")
        assert NOTE.search(before.stderr)
        edited = src / "quakelake" / "ids.py"
        edited.write_text(edited.read_text() + "\n# edited after server start\n")
        after = _quakelake(env, "tables", "--lake", lake, "-v")
        assert not NOTE.search(after.stderr)
        (warning,) = [ln for ln in after.stderr.splitlines() if ln.startswith("warning:")]
        assert "older than this command's" in warning and "quakelake server stop" in warning
        assert (after.returncode, after.stdout) == (before.returncode, before.stdout)
    finally:
        assert _quakelake(env, "server", "stop").returncode == 0
