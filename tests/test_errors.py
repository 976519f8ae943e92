"""A walk through the bad inputs a new user makes: one ``error:`` line and the documented exit status each.

Each case runs the real ``quakelake`` command in its own process (what a user sees on stderr,
Prefect's own logging included) on the real Salton Sea sample.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from quakelake.errors import EXIT_BAD_INPUT, EXIT_FAILED_WORK, BadInput, FailedWork, one_line

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


@pytest.fixture(scope="module")
def api_url(prefect_server) -> str:
    """The address of the session's Prefect server, for commands run in their own process."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def bad_files(shared_data, tmp_path_factory) -> dict[str, Path]:
    """A truncated copy of a real miniSEED file, a junk station file, a lake path that is a file."""
    root = tmp_path_factory.mktemp("bad")
    (root / "truncated").mkdir()
    real = (shared_data / SALTON / "mseed" / "CI.BOM.2020-10-01T00:00.mseed").read_bytes()
    (root / "truncated" / "CI.BOM.2020-10-01T00:00.mseed").write_bytes(real[:3000])
    (root / "junk.xml").write_text("<html><body>502 Bad Gateway</body></html>\n")
    (root / "lake-file").write_text("not a folder\n")
    return {
        "truncated": root / "truncated",
        "junk": root / "junk.xml",
        "lake_file": root / "lake-file",
        "missing_xml": root / "no-such-stations.xml",
        "lake": root / "lake",
    }


def _walk(shared_data: Path, bad: dict[str, Path]) -> list[tuple[str, list[str], int, str]]:
    mseed = str(shared_data / SALTON / "mseed")
    lake = str(bad["lake"])
    base = ["pick", "-d", mseed, "--lake", lake, "-S", "BOM"]
    archive, no_token = str(bad["lake"] / "archive"), str(bad["lake"] / "no-token.txt")
    token = ["-d", archive, "--lake", lake, "-D", "201001", "201001", "--client", "GFZ"]
    token += ["-K", no_token]
    return [
        ("wrong date order", [*base, "-D", "201002", "201001"], EXIT_BAD_INPUT, "-D/--dates"),
        ("unknown model", [*base, "-M", "NoSuchNet"], EXIT_BAD_INPUT, "-M/--models"),
        ("threshold 1.5", [*base, "-p", "1.5"], EXIT_BAD_INPUT, "-p/--pwave"),
        (
            "missing folder",
            ["pick", "-d", str(bad["lake"] / "no-such-archive"), "--lake", lake],
            EXIT_BAD_INPUT,
            "-d/--directory",
        ),
        (
            "lake path is a file",
            ["pick", "-d", mseed, "--lake", str(bad["lake_file"])],
            EXIT_BAD_INPUT,
            "--lake",
        ),
        (
            "-D with -J",
            [*base, "-D", "201001", "201001", "-J", "20275", "20275"],
            EXIT_BAD_INPUT,
            "-J/--julian",
        ),
        (
            "missing station file",
            ["run", "-d", mseed, "--lake", lake, "-F", str(bad["missing_xml"])],
            EXIT_BAD_INPUT,
            "-F/--file",
        ),
        (
            "junk station file",
            ["run", "-d", mseed, "--lake", lake, "-F", str(bad["junk"])],
            EXIT_BAD_INPUT,
            "-F/--file",
        ),
        ("missing EIDA token file (download)", ["download", *token], EXIT_BAD_INPUT, "-K/--key"),
        (
            "missing EIDA token file (run --download)",
            ["run", *token, "--download"],
            EXIT_BAD_INPUT,
            "-K/--key",
        ),
        (
            "sql on a folder that is no lake",
            ["sql", "--lake", str(bad["truncated"]), "SELECT 1"],
            EXIT_BAD_INPUT,
            "--lake",
        ),
    ]


def _one_error_line(proc, option: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert option in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_bad_inputs_give_one_error_line_and_exit_status_2(shared_data, bad_files):
    for name, args, code, option in _walk(shared_data, bad_files):
        proc = _quakelake(args, env={"PREFECT_API_URL": f"http://127.0.0.1:{_closed_port()}/api"})
        assert proc.returncode == code, (name, proc.stderr[-2000:])
        _one_error_line(proc, option)
    assert not (bad_files["lake"]).exists()  # refused before any work: nothing written


@pytest.mark.slow
def test_stopped_prefect_api_is_said_before_any_work(shared_data, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    proc = _quakelake(
        ["pick", "-d", str(shared_data / SALTON / "mseed"), "--lake", str(tmp_path / "lake")],
        env={"PREFECT_API_URL": url},
    )
    assert proc.returncode == EXIT_FAILED_WORK
    line = _one_error_line(proc, "PREFECT_API_URL")
    assert url in line and "quakelake server start" in line
    assert not (tmp_path / "lake").exists()


@pytest.mark.slow
def test_truncated_miniseed_only_fails_the_work_naming_the_file(bad_files, api_url, tmp_path):
    proc = _quakelake(
        ["pick", "-d", str(bad_files["truncated"]), "--lake", str(tmp_path / "lake")],
        env={"PREFECT_API_URL": api_url},
    )
    assert proc.returncode == EXIT_FAILED_WORK, proc.stderr[-2000:]
    line = _one_error_line(proc, "no waveforms in")
    assert "CI.BOM.2020-10-01T00:00.mseed: truncated miniSEED record" in line
    assert "['" not in line  # seismology, not Python reprs


@pytest.mark.slow
def test_weights_neither_cached_nor_fetchable_name_what_the_cache_holds(
    shared_data, weights_cache, api_url, tmp_path
):
    """-W instance, not in the cache, and SeisBench's weight server refuses: one error line.

    The cache is a copy whose SeisBench config points the weight server at a closed loopback
    port, so SeisBench's real download fails whatever the network of the machine.
    """
    import json
    import shutil

    cache = tmp_path / "seisbench"
    shutil.copytree(weights_cache, cache)
    config = cache / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    config.write_text(
        json.dumps({**settings, "remote_root": f"http://127.0.0.1:{_closed_port()}/"})
    )
    archive = str(shared_data / SALTON / "mseed")
    args = ["pick", "-d", archive, "--lake", str(tmp_path / "lake"), "-M", "PhaseNet"]
    env = {"PREFECT_API_URL": api_url, "SEISBENCH_CACHE_ROOT": str(cache)}
    proc = _quakelake([*args, "-W", "instance"], env=env)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    line = _one_error_line(proc, "-W/--weights")
    assert "'instance'" in line and "available offline: original, volpick" in line
    assert proc.stderr.count("download precheck failed") <= 1  # SeisBench's note, said once


@pytest.mark.slow
@pytest.mark.integration
def test_unreachable_fdsn_is_said_as_such(api_url, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = _quakelake(
        [
            "download",
            "-d",
            str(tmp_path / "archive"),
            "--lake",
            str(tmp_path / "lake"),
            "-D",
            "201001",
            "201001",
            "-N",
            "CI",
            "-S",
            "BOM",
            "--client",
            url,
        ],
        env={"PREFECT_API_URL": api_url},
    )
    assert proc.returncode == EXIT_FAILED_WORK, proc.stderr[-2000:]
    line = _one_error_line(proc, "no FDSN client answered")
    assert "127.0.0.1" in line and "no station matches" not in line


def test_error_families_carry_the_exit_status():
    assert BadInput("x").exit_code == 2 and FailedWork("x").exit_code == 1
    from quakelake.archive.stations import StationFileError
    from quakelake.catalogs import CatalogError
    from quakelake.config import ConfigError
    from quakelake.lakehouse import LakeQueryError
    from quakelake.picking.models import ModelUnavailable

    for cls in (CatalogError, ConfigError, LakeQueryError, ModelUnavailable, StationFileError):
        assert issubclass(cls, BadInput), cls
    assert one_line("a:\n b\n c") == "a: b; c"


def test_bad_input_is_not_retried_by_a_task(prefect_server):
    """A configuration error fails its task at once; a transient error gets the task's retries."""
    from prefect import flow, task

    from quakelake.tasks.retry import transient_only

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=transient_only)
    def fails(error: Exception, attempts: list) -> None:
        attempts.append(1)
        raise error

    @flow
    def run_both() -> tuple[int, int]:
        bad, transient = [], []
        for error, attempts in (
            (BadInput("-d/--directory: missing"), bad),
            (OSError("NFS hiccup"), transient),
        ):
            fails(error, attempts, return_state=True)
        return len(bad), len(transient)

    assert run_both() == (1, 3)


def test_interactive_without_a_display_is_refused_before_work(
    shared_data, tmp_path, monkeypatch, capsys
):
    from quakelake.cli import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    code = main(
        [
            "run",
            "-d",
            str(shared_data / SALTON / "mseed"),
            "--lake",
            str(tmp_path / "lake"),
            "--interactive",
        ]
    )
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: --interactive needs a display")
    assert not (tmp_path / "lake").exists()


def test_review_windows_are_titled_with_a_hint(capsys):
    from matplotlib.figure import Figure

    from quakelake.analysis.plotting import HINT, show_one_by_one

    def figures():
        for title in ("CI.BOM 2020-10-01 PhaseNet/original", "CI.SLV 2020-10-01 PhaseNet/original"):
            fig = Figure()
            fig.subplots()
            fig.suptitle(title)
            yield fig

    shown = []
    for fig in figures():
        assert show_one_by_one([fig]) == 1
        shown.append(fig)
    assert [f._suptitle.get_text() for f in shown] == [
        "CI.BOM 2020-10-01 PhaseNet/original",
        "CI.SLV 2020-10-01 PhaseNet/original",
    ]
    assert all(HINT in [t.get_text() for t in f.texts] for f in shown)
    assert capsys.readouterr().err.count(HINT) == 2  # once per show_one_by_one call


def test_a_missing_archive_is_bad_input_so_tasks_do_not_retry_it(tmp_path):
    from quakelake.archive import waveforms

    with pytest.raises(
        BadInput, match="-d/--directory: waveform archive .* does not exist"
    ) as info:
        waveforms.scan_archive(tmp_path / "no-such-archive")
    assert isinstance(info.value, FileNotFoundError)  # callers that catch the OS error still do


def test_verbose_adds_the_traceback_silent_keeps_the_error(tmp_path, capsys):
    from quakelake.cli import main

    missing = str(tmp_path / "no-such-archive")
    assert main(["pick", "-d", missing, "--lake", str(tmp_path / "lake"), "-v"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("error: -d/--directory:")
    assert (
        main(["pick", "-d", missing, "--lake", str(tmp_path / "lake"), "--silent"])
        == EXIT_BAD_INPUT
    )
    assert capsys.readouterr().err.splitlines() == [
        f"error: -d/--directory: {missing} is not a folder; give the waveform archive"
    ]


@pytest.mark.slow
def test_a_station_file_matching_no_station_is_refused_before_any_picking(
    shared_data, tmp_path, capsys
):
    """-F lists none of the archive's stations: one error naming -F, before Prefect or a model."""
    from quakelake.cli import main

    hengill = shared_data / "malmi_hengill_20181230" / "stations.csv"  # Iceland: no CI station
    lake = tmp_path / "lake"
    # -T (fine-tune first) is work too: refused before it, not after the training
    for command, *extra in (("run",), ("pick",), ("pick", "-T")):
        code = main(
            [
                command,
                *extra,
                "-d",
                str(shared_data / SALTON / "mseed"),
                "--lake",
                str(lake),
                "-S",
                "BOM",
                "-F",
                str(hengill),
                "-M",
                "PhaseNet",
                "-W",
                "original",
                "--silent",
            ]
        )
        assert code == EXIT_BAD_INPUT, (command, extra)
        err = capsys.readouterr().err
        line = _one_error_line(subprocess.CompletedProcess([], code, "", err), "-F/--file")
        assert f"{hengill} lists none of the 1 stations of the archive" in line
        assert "CI.BOM" in line
    assert not lake.exists()  # nothing picked, nothing written


def test_the_overlap_check_reads_the_archive_only_until_a_listed_station(shared_data):
    """A station file that lists the archive's first station passes after that one station."""
    from quakelake.archive.stations import StationFileError, check_covers_archive, read_stations
    from quakelake.archive.waveforms import archive_stations

    mseed = shared_data / SALTON / "mseed"
    xml = shared_data / SALTON / "stations.xml"
    stations = read_stations(xml)
    met = []

    def archive():
        for key in archive_stations(mseed):
            met.append(key)
            yield key

    check_covers_archive(stations, xml, archive(), f"archive {mseed}")
    assert len(met) == 1 and met[0][1] in set(stations["station"])
    everything = sorted(archive_stations(mseed))
    assert len(everything) == 16 and ("CI", "BOM") in everything
    with pytest.raises(StationFileError, match=r"lists none of the 16 stations"):
        check_covers_archive(stations[stations["station"] == "NOPE"], xml, everything, "archive")
