"""A real Prefect server and process worker as subprocesses on 127.0.0.1 (integration tests).

Unlike ``prefect_test_harness`` this is the server a user starts (``prefect server start``),
UI included, with its own PREFECT_HOME and SQLite database in a temporary folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Return the environment of a subprocess talking to the live server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        DO_NOT_TRACK="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def prefect_server(home: Path, timeout: float = 120.0) -> Iterator[str]:
    """Run ``prefect server start`` on a free port; yield its API URL (…/api)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = server_env(home)
    env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
    env["PREFECT_SERVER_API_PORT"] = str(port)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prefect server did not start on port {port}:\n{(home / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield api
    finally:
        _stop(proc)
        log.close()


def run_cli(
    args: list[str], home: Path, api_url: str, cwd: Path = ROOT, timeout: float = 300.0
) -> str:
    """Run a ``prefect`` command against the live server; return its output or raise with it."""
    proc = subprocess.run(
        [*PREFECT, *args],
        env=server_env(home, api_url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"prefect {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


@contextmanager
def process_worker(
    pool: str, home: Path, api_url: str, extra_env: dict[str, str] | None = None
) -> Iterator[Path]:
    """Run ``prefect worker start`` on the process pool ``pool``; yield its log file."""
    env = server_env(home, api_url)
    env.update(extra_env or {})
    log_path = home / f"worker-{pool}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [*PREFECT, "worker", "start", "--pool", pool, "--type", "process"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield log_path
    finally:
        _stop(proc)
        log.close()


@contextmanager
def deployed(
    home: Path, prefect_yaml: Path, pool: str, deploy_env: dict[str, str]
) -> Iterator[str]:
    """A live server with ``prefect_yaml`` deployed and a process worker on ``pool``; yield the API URL.

    ``deploy_env`` fills the ``{{ $VAR }}`` placeholders of the prefect.yaml.
    """
    with prefect_server(home) as api:
        run_cli(["work-pool", "create", pool, "--type", "process"], home, api)
        saved = {k: os.environ.get(k) for k in deploy_env}
        os.environ.update(deploy_env)
        try:
            run_cli(
                ["--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_yaml)], home, api
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        with process_worker(pool, home, api, {"PREFECT_WORKER_QUERY_SECONDS": "1"}):
            yield api


def wait_final(client, flow_run_id, timeout: float, log: Path):
    """Return the flow run once its state is final; raise with the worker log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(
        f"flow run {flow_run_id} not finished in {timeout} s; worker log:\n{log.read_text()[-4000:]}"
    )
