"""More of a new user's mistakes (issue 26): one ``error:`` line, the exit status, nothing written.

Each case runs the real ``quakelake`` command in its own process on the real Salton Sea sample,
with the SeisBench cache copy of the test session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quakelake.errors import EXIT_BAD_INPUT

pytestmark = pytest.mark.usefixtures("weights_cache")

SALTON = "phasenet_saltonsea_20201001"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quakelake(args: list[str], env: dict[str, str] | None = None, timeout: float = 300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def _one_error_line(proc, option: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert option in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_api() -> dict[str, str]:
    """A Prefect API address nobody answers: a command that reaches Prefect fails there."""
    return {"PREFECT_API_URL": f"http://127.0.0.1:{_closed_port()}/api"}


@pytest.fixture
def archive(shared_data) -> str:
    return str(shared_data / SALTON / "mseed")


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.slow
def test_device_cuda_without_a_gpu_is_refused_before_any_work(archive, tmp_path, no_api):
    if _has_cuda():
        pytest.skip("this machine has a CUDA device: --device cuda is valid here")
    lake = tmp_path / "lake"
    for command in ("pick", "run"):
        proc = _quakelake(
            [command, "-d", archive, "--lake", str(lake), "-S", "BOM", "--device", "cuda"],
            env=no_api,
        )
        assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
        line = _one_error_line(proc, "--device")
        assert "no CUDA device" in line and "--device auto or cpu" in line
        assert "unexpected" not in line
    assert not lake.exists()  # refused before Prefect, an index or a run row


@pytest.mark.slow
def test_a_weights_typo_is_refused_offline_at_once(archive, tmp_path, no_api):
    """-W orignal: refused from the cache listing, without SeisBench's network, nothing written."""
    lake = tmp_path / "lake"
    t0 = time.perf_counter()
    proc = _quakelake(["pick", "-d", archive, "--lake", str(lake), "-W", "orignal"], env=no_api)
    seconds = time.perf_counter() - t0
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    line = _one_error_line(proc, "-W/--weights")
    assert "'orignal'" in line and "did you mean 'original'?" in line
    assert "available offline: original, volpick" in line
    assert "precheck" not in proc.stderr  # SeisBench never asked its server
    assert not lake.exists()
    assert seconds < 20, seconds  # no torch, no network: the start of a Python process


@pytest.mark.slow
def test_weights_not_fetchable_leave_no_run_and_no_index(archive, weights_cache, tmp_path, no_api):
    """-W instance with SeisBench's server refusing: exit 2 before a run row or an index."""
    import json
    import shutil

    cache = tmp_path / "seisbench"
    shutil.copytree(weights_cache, cache)
    config = cache / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    config.write_text(
        json.dumps({**settings, "remote_root": f"http://127.0.0.1:{_closed_port()}/"})
    )
    lake = tmp_path / "lake"
    proc = _quakelake(
        ["pick", "-d", archive, "--lake", str(lake), "-W", "instance"],
        env={**no_api, "SEISBENCH_CACHE_ROOT": str(cache)},
    )
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    line = _one_error_line(proc, "-W/--weights")
    assert "'instance'" in line and "available offline: original, volpick" in line
    assert "PREFECT_API_URL" not in line  # refused before Prefect was asked
    assert not lake.exists()


def test_a_lake_path_under_a_file_is_refused_at_once(archive, tmp_path, no_api):
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder\n")
    for args in (
        ["pick", "-d", archive, "-S", "BOM"],
        [
            "import-catalog",
            str(Path(archive).parent / "DERIVED_scsn_events_first10min.csv"),
            "--name",
            "scsn",
        ],
    ):
        t0 = time.perf_counter()
        proc = _quakelake([*args, "--lake", str(afile / "lake")], env=no_api)
        assert proc.returncode == EXIT_BAD_INPUT, (args[0], proc.stderr[-2000:])
        line = _one_error_line(proc, "--lake")
        assert f"under {afile}, which is a file" in line
        assert time.perf_counter() - t0 < 60
    assert afile.read_text() == "not a folder\n"
