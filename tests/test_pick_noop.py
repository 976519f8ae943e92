"""An unchanged pick rerun is answered from the lake before Prefect starts; any change still runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import python_code

from quakelake.cli import main
from quakelake.lakehouse import Lake

pytestmark = pytest.mark.usefixtures("weights_cache")

STATIONS = ("BOM", "COA", "CRR")


def _archive(shared_data: Path, folder: Path, stations) -> Path:
    folder.mkdir(exist_ok=True)
    for sta in stations:
        name = f"CI.{sta}.2020-10-01T00:00.mseed"
        src = shared_data / "phasenet_saltonsea_20201001" / "mseed" / name
        shutil.copyfile(src, folder / name)  # writable copies (the shared files are read-only)
    return folder


def _pick_args(archive: Path, lake: Path) -> list[str]:
    return ["pick", "-d", str(archive), "--lake", str(lake), "-M", "PhaseNet", "-W", "original"]


def _rerun_in_a_fresh_process(args: list[str]) -> tuple[int, str, list[str]]:
    """Run ``quakelake ARGS`` in a new interpreter; return its status, stdout and Prefect modules."""
    code = (
        "import sys\n"
        "from quakelake.cli import main\n"
        f"rc = main({args!r})\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))[:3])\n"
        "sys.exit(rc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    *lines, modules = proc.stdout.strip().splitlines() or [""]
    return proc.returncode, "\n".join(lines), eval(modules or "None")  # noqa: S307 (our own list)


def _picked(
    shared_data: Path, tmp_path: Path, capsys, stations
) -> tuple[Path, Path, list[str], str]:
    """Pick ``stations`` of the Salton Sea day into a new lake; return archive, lake, args, output."""
    archive = _archive(shared_data, tmp_path / "archive", stations)
    lake = tmp_path / "lake"
    args = _pick_args(archive, lake)
    assert main([*args, "--silent"]) == 0
    return archive, lake, args, capsys.readouterr().out


@pytest.mark.slow
def test_unchanged_rerun_runs_no_flow_and_late_or_changed_files_are_still_picked(
    shared_data, prefect_server, tmp_path, capsys
):
    archive, lake, args, out = _picked(shared_data, tmp_path, capsys, STATIONS[:2])
    assert "2 units (done 2, skipped 0, failed 0)" in out
    picks = Lake(lake).read("picks")
    snapshots = len(Lake(lake).history())

    # the identical rerun: same summary counts, no flow run (Prefect is never imported),
    # nothing written to the lake
    rc, out, prefect_modules = _rerun_in_a_fresh_process([*args, "--silent"])
    assert rc == 0, out
    assert out == "nothing to do: 2 units (done 0, skipped 2, failed 0), picks none, " + (
        f"unreadable files 0 -> lake {lake}"
    )
    assert prefect_modules == []
    assert len(Lake(lake).history()) == snapshots

    # a late station and a rewritten file (new modification time) after the no-op: the flow
    # picks exactly those two station-days again, the unchanged one is skipped
    _archive(shared_data, archive, STATIONS[2:])
    rewritten = archive / f"CI.{STATIONS[0]}.2020-10-01T00:00.mseed"
    stat = rewritten.stat()
    os.utime(rewritten, (stat.st_atime, stat.st_mtime + 60))
    assert main([*args, "--silent"]) == 0
    assert "3 units (done 2, skipped 1, failed 0)" in capsys.readouterr().out
    after = Lake(lake).read("picks")
    assert sorted(set(after["station"])) == sorted(STATIONS)
    cols = ["station", "pick_id", "phase", "time"]
    again = after[after["station"].isin(STATIONS[:2])][cols].sort_values("pick_id")
    assert again.reset_index(drop=True).equals(
        picks[cols].sort_values("pick_id").reset_index(drop=True)
    )
    assert len(Lake(lake).files("picks")) == 3  # the rewritten file's picks replaced, not doubled

    # a second no-op after that, then --force still recomputes every unit through the flow
    rc, out, prefect_modules = _rerun_in_a_fresh_process([*args, "--silent"])
    assert (
        rc == 0
        and out.startswith("nothing to do: 3 units (done 0, skipped 3")
        and not (prefect_modules)
    )
    # ... as the command line does: the process ends without the interpreter's teardown, after
    # the flow run, its lake records and its output are complete
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *args, "--silent", "--force"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("run ") and "3 units (done 3, skipped 0, failed 0)" in proc.stdout
    run_id = proc.stdout.split(":", 1)[0].removeprefix("run ")
    run = Lake(lake).query("SELECT status, flow_run_id FROM runs WHERE run_id = ?", [run_id])
    assert run["status"].tolist() == ["completed"]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run["flow_run_id"].iloc[0]).state.is_completed()


def test_rerun_with_other_settings_or_an_unreadable_file_goes_to_the_flow(
    shared_data, prefect_server, tmp_path, capsys
):
    archive, lake, args, _ = _picked(shared_data, tmp_path, capsys, STATIONS[:1])
    # another threshold is another fingerprint: the unit is picked again by the flow
    assert main([*args, "--silent", "-p", "0.5"]) == 0
    assert "1 units (done 1, skipped 0" in capsys.readouterr().out
    # an unreadable file is reported (and recorded) by the flow, not hidden by the shortcut
    (archive / "CI.XXX.2020-10-01T00:00.mseed").write_bytes(b"\0" * 700)
    assert main([*args, "--silent", "-p", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run ") and "1 units (done 0, skipped 1" in out
    assert "unreadable files 1" in out


def test_a_command_ends_after_its_threads_atexit_handlers_and_output():
    """The command line's fast exit keeps what a normal exit does: no hang on an idle thread pool."""
    code = (
        "import atexit, threading, time\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from quakelake.cli import _end_process\n"
        "pool = ThreadPoolExecutor(2)\n"
        "pool.submit(time.sleep, 0).result()  # an idle pool left open, as libraries do\n"
        "late = threading.Thread(target=lambda: (time.sleep(0.5), print('thread done')))\n"
        "late.start()\n"
        "atexit.register(print, 'atexit ran')\n"
        "print('summary', end=' ')\n"
        "_end_process(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["summary thread done", "atexit ran"]


@pytest.mark.slow
def test_a_killed_run_is_marked_crashed_by_the_rerun_even_when_every_unit_is_committed(
    shared_data, prefect_server, tmp_path, capsys
):
    # a run killed after its last unit's commit and before its own last row (CI met it: the kill
    # came when all seven units were in) leaves nothing to pick, but a run still "running"
    archive, lake, args, _ = _picked(shared_data, tmp_path, capsys, STATIONS[:1])
    killed = python_code(  # a process that records a running pick run and dies at once
        "import os\n"
        "from quakelake.lakehouse.lineage import record_run, utcnow\n"
        f"record_run({str(lake)!r}, 'killed-run', 'pick', {{}}, 'running', utcnow())\n"
        "os._exit(0)\n"
    )
    assert killed.returncode == 0, killed.stderr[-2000:]
    from quakelake.config import PickParams, StationSelection, TimeWindow
    from quakelake.picking.plan import nothing_to_do

    pick = PickParams(models=["PhaseNet"], weights=["original"])
    assert nothing_to_do(archive, lake, TimeWindow(), StationSelection(), pick) is None
    assert main([*args, "--silent"]) == 0
    assert "1 units (done 0, skipped 1, failed 0)" in capsys.readouterr().out
    runs = Lake(lake).query("SELECT status FROM runs WHERE run_id = 'killed-run'")
    assert runs["status"].tolist() == ["crashed"]
