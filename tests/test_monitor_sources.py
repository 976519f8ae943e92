"""The monitor on its network sources: a SeedLink server and a polled fdsnws-dataselect service.

The Salton Sea sample (16 stations x 3 components, 180 s at 100 Hz) is served by a SeedLink v3
replay server on 127.0.0.1 (tests/seedlink_server.py; the records repacked to SeedLink's 512
bytes, the same samples) and by ``portable-fdsnws-dataselect`` (tests/fdsn_servers.py); the
monitor's final picks are compared, id for id, with the batch path's picks of the same data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fdsn_servers import DataselectServer
from replay import SDSReplay
from seedlink_server import SeedLinkReplayServer, repack_512
from test_monitor import batch_picks, model, one_to_one, salton  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repacked(salton, tmp_path_factory) -> list[Path]:  # noqa: F811
    return repack_512(sorted((salton / "mseed").glob("*.mseed")), tmp_path_factory.mktemp("sl512"))


@pytest.fixture(scope="module")
def batch(repacked, model, tmp_path_factory) -> pd.DataFrame:  # noqa: F811
    """The batch path's picks of the repacked files (written into an SDS archive)."""
    sds = tmp_path_factory.mktemp("batch") / "sds"
    rep = SDSReplay(repacked, sds)
    rep.write_until(rep.end + 3600)
    picks = batch_picks(sds, model)
    assert len(picks) == 175  # as of the original 4096-byte records: the same samples
    return picks


def _monitor(tmp_path: Path, model, source, name: str = "sl"):  # noqa: F811
    from quakelake.lakehouse import Lake
    from quakelake.params import PickParams
    from quakelake.picking import models as picking
    from quakelake.picking.streaming import StreamPicker
    from quakelake.service.monitor import Monitor, MonitorSettings

    picker = StreamPicker(model, picking.ModelSpec("PhaseNet", "original"), PickParams())
    return Monitor(Lake(tmp_path / "lake"), source, picker, None, MonitorSettings(name=name))


def _seedlink(server: SeedLinkReplayServer):
    from quakelake.archive.live import SeedLinkSource

    streams = [(*key.split("_"), "HH?") for key in server.stations]
    return SeedLinkSource(server.address, streams, start=server.start)


def _cycle_until(mon, server: SeedLinkReplayServer, seen: list[int], timeout: float = 60.0):
    """Cycle until every record the server released has reached the picker."""
    deadline = time.time() + timeout
    while True:
        seen[0] += mon.cycle().records
        if seen[0] >= server.position:
            return
        assert time.time() < deadline, (seen[0], server.position, mon.source.error)
        time.sleep(0.1)


def _finals(mon) -> pd.DataFrame:
    return mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")


def test_seedlink_streaming_picks_equal_batch_picks(tmp_path, repacked, batch, model):  # noqa: F811
    with SeedLinkReplayServer(repacked) as server:
        mon = _monitor(tmp_path, model, _seedlink(server))
        seen = [0]
        t = server.start
        while t < server.end:
            t += 5.0
            server.release_until(t)
            _cycle_until(mon, server, seen)
        mon.cycle(finish=True)
        mon.source.close()
    live = _finals(mon)
    assert seen[0] == len(server.records)  # every record once
    pairs = one_to_one(batch, live)
    assert len(pairs) == len(batch) == len(live)
    assert (pairs["probability_b"] - pairs["probability_l"]).abs().max() <= 0.01
    assert set(live["pick_id"]) == set(batch["pick_id"])
    # the client asked in SeedLink v3 multi-station mode, TIME for a first start
    commands = [line.split()[0] for _, line in server.log]
    assert commands[0] == "HELLO" and commands[-1] == "END"
    assert commands.count("STATION") == commands.count("TIME") == 16


def test_seedlink_restart_resumes_from_the_sequence_numbers(tmp_path, repacked, batch, model):  # noqa: F811
    """The monitor stops after 80 s of data with 10 s more received but never committed; a new
    monitor (new connection) asks each station for DATA from its checkpointed sequence number:
    its final picks, with the first one's, are the batch picks, none missing, none twice."""
    from quakelake.archive.live import SeedLinkSource

    with SeedLinkReplayServer(repacked) as server:
        first = _monitor(tmp_path, model, _seedlink(server))
        seen = [0]
        t = server.start
        while t < server.start + 80:
            t += 5.0
            server.release_until(t)
            _cycle_until(first, server, seen)
        handed = {k: v["seq"] for k, v in first.source.handed.items()}
        t += 10.0
        server.release_until(t)  # received by the client, never committed: must come again
        time.sleep(1.0)
        first.source.close()
        committed = len(_finals(first))
        assert committed >= 30

        second = _monitor(tmp_path, model, _seedlink(server))
        assert second.restore()
        resume = second.source.resume_from
        assert set(resume) == set(server.stations)
        for key, seq in resume.items():
            assert 1 < seq <= handed[key]  # from a checkpoint, not from the ring's start
        seen = [0]
        while t < server.end:
            t += 5.0
            server.release_until(t)
            deadline = time.time() + 60
            while (
                second.source.handed.get("CI_BOM", {}).get("seq", 0) < server.next_seq["CI_BOM"] - 1
                or seen[0] == 0
            ):
                seen[0] += second.cycle().records
                assert time.time() < deadline, second.source.error
                time.sleep(0.1)
        time.sleep(1.0)
        second.cycle()
        second.cycle(finish=True)
        second.source.close()
        log = [(n, line) for n, line in server.log if n == 2 and line.startswith("DATA")]
    assert isinstance(second.source, SeedLinkSource)
    # the second connection asked DATA <checkpoint + 1> of every station (hex), no TIME
    asked = sorted(int(line.split()[1], 16) for _, line in log)
    assert asked == sorted(seq + 1 for seq in resume.values())
    live = _finals(second)
    assert not live["pick_id"].duplicated().any()
    assert set(live["pick_id"]) == set(batch["pick_id"])


def test_fdsn_poller_picks_equal_batch_picks(tmp_path, repacked, batch, model):  # noqa: F811
    """``portable-fdsnws-dataselect`` serves an SDS archive that grows record by record
    (tests/replay.py) and is indexed again (``mseedindex``) before each poll, as a service behind
    a recorder is; the poller asks for the last minute up to "now" every 5 s of data.

    Why not the complete files with a shifted clock: portable-fdsnws-dataselect 2.0.2 ends a
    request that stops inside an indexed section at the section's next time-index entry (for
    [start, start + 60 s] of the complete files it returns the first record of each channel
    only), so it would not answer as a live service does."""
    from quakelake.archive.live import FDSNPoller
    from quakelake.params import StationSelection

    rep = SDSReplay(repacked, tmp_path / "sds")  # 512-byte records: a few seconds each
    now = [rep.start + 10.0]
    rep.write_until(now[0])

    def files() -> list[Path]:
        return sorted(p for p in (tmp_path / "sds").rglob("*.D.*") if p.is_file())

    with DataselectServer(tmp_path, tmp_path / "fdsnws", files=files()) as server:
        source = FDSNPoller(
            server.url,
            StationSelection(networks=["CI"], stations=["*"], channels=["HH?"]),
            window_s=60.0,
            start=rep.start,
            clock=lambda: now[0],
        )
        mon = _monitor(tmp_path, model, source, name="fdsn")
        while now[0] < rep.end + 10:
            mon.cycle()
            now[0] = now[0] + 5.0
            rep.write_until(now[0])
            server.reindex(files())
        mon.cycle()
        mon.cycle(finish=True)
    live = _finals(mon)
    assert set(live["pick_id"]) == set(batch["pick_id"])
    assert not live["pick_id"].duplicated().any()


def test_monitor_command_follows_seedlink(tmp_path, repacked, batch, salton):  # noqa: F811
    """``quakelake monitor --seedlink HOST:PORT --from-start`` (TIME from the ring's start) for
    a fixed --duration: the picks whose windows all ran are the batch picks; events were made."""
    from quakelake.lakehouse import Lake

    with SeedLinkReplayServer(repacked) as server:
        server.release_until(server.end)
        cmd = [
            sys.executable,
            "-m",
            "quakelake.cli",
            "monitor",
            "--seedlink",
            server.address,
            "--from-start",
            "-C",
            "HH?",
            "-F",
            str(salton / "stations.xml"),
            "--lake",
            str(tmp_path / "lake"),
            "--cycle",
            "0.5",
            "--duration",
            "45",
            "--name",
            "sl",
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        end = server.end
    assert out.returncode == 0, out.stderr[-2000:]
    lake = Lake(tmp_path / "lake")
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    horizon = pd.Timestamp((end - 45).datetime, tz="UTC")  # the last windows stay provisional
    expected = set(batch.loc[batch["time"] < horizon, "pick_id"])
    assert set(live.loc[live["time"] < horizon, "pick_id"]) == expected
    assert not live["pick_id"].duplicated().any()
    events = lake.query("SELECT count(DISTINCT event_id) AS n FROM live_origins")
    assert int(events["n"][0]) >= 3


def test_monitor_command_follows_fdsn_in_a_playback(tmp_path, repacked, batch, salton):  # noqa: F811
    """``quakelake monitor --fdsn URL --playback TIME --speed 4``: a drill on past data through
    ``portable-fdsnws-dataselect`` in front of an archive that grows at 4x real time, indexed
    again every second as a service behind a recorder is, and never ahead of the drill's clock
    (see test_fdsn_poller_picks_equal_batch_picks: this server truncates a request that ends
    inside indexed data). The picks whose windows all ran are the batch picks; events and
    magnitudes were made."""
    import threading

    from quakelake.lakehouse import Lake

    rep = SDSReplay(repacked, tmp_path / "sds")
    rep.write_until(rep.start + 5.0)  # a record or two: the service needs files to start

    def files() -> list[Path]:
        return sorted(p for p in (tmp_path / "sds").rglob("*.D.*") if p.is_file())

    speed = 4.0
    cmd = [sys.executable, "-m", "quakelake.cli", "monitor", "--fdsn"]
    rest = ["--playback", str(rep.start), "--speed", str(speed), "-N", "CI", "-C", "HH?"]
    rest += ["-F", str(salton / "stations.xml"), "--lake", str(tmp_path / "lake")]
    rest += ["--cycle", "1", "--duration", "70", "--name", "fdsn"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with DataselectServer(tmp_path, tmp_path / "fdsnws", files=files()) as server:
        proc = subprocess.Popen(
            cmd + [server.url] + rest, stderr=subprocess.PIPE, text=True, env=env
        )
        assert proc.stderr is not None
        err = []
        for line in proc.stderr:  # the drill's clock runs from here
            err.append(line)
            if "following" in line:
                break
        wall0 = time.time()
        stop = threading.Event()

        def grow() -> None:  # the recorder, a second behind the drill's clock
            while not stop.wait(1.0):
                rep.write_until(min(rep.end, rep.start + (time.time() - wall0) * speed - 1.0))
                server.reindex(files())

        writer = threading.Thread(target=grow, daemon=True)
        writer.start()
        try:
            err.append(proc.stderr.read())
            proc.wait(600)
        finally:
            stop.set()
            writer.join(30)
    assert proc.returncode == 0, "".join(err)[-2000:]
    lake = Lake(tmp_path / "lake")
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    horizon = pd.Timestamp((rep.end - 45).datetime, tz="UTC")  # the last windows stay provisional
    expected = set(batch.loc[batch["time"] < horizon, "pick_id"])
    assert set(live.loc[live["time"] < horizon, "pick_id"]) == expected
    assert not live["pick_id"].duplicated().any()
    events = lake.query(
        "SELECT count(DISTINCT event_id) AS n FROM live_origins WHERE isfinite(magnitude)"
    )
    assert int(events["n"][0]) >= 3


def test_monitor_playback_needs_fdsn(tmp_path):
    """--playback is a drill on a polled service: with --sds it is one error line, exit 2."""
    (tmp_path / "sds").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", "monitor", "--sds", str(tmp_path / "sds")]
        + ["--playback", "2020-10-01", "--lake", str(tmp_path / "lake")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: --playback: only with --fdsn (an SDS archive or a SeedLink ring is read as it "
        "is: use --from-start)"
    ]
    assert not (tmp_path / "lake").exists()


def test_fdsn_poller_takes_an_empty_answer_as_no_data(tmp_path, salton):  # noqa: F811
    """portable-fdsnws-dataselect answers some short windows inside indexed sections with 200
    and no bytes (here every CI HH? channel, 40-45 s into the complete files): no data, not a
    crash."""
    import urllib.request

    from obspy import UTCDateTime

    from quakelake.archive.live import FDSNPoller
    from quakelake.params import StationSelection

    t0 = UTCDateTime("2020-10-01T00:00:40")
    with DataselectServer(salton / "mseed", tmp_path / "fdsnws") as server:
        url = (
            f"{server.service_url}/query?net=CI&sta=*&loc=*&cha=HH?"
            "&start=2020-10-01T00:00:40&end=2020-10-01T00:00:45"
        )
        with urllib.request.urlopen(url) as answer:
            assert (answer.status, answer.read()) == (200, b"")
        poller = FDSNPoller(
            server.url,
            StationSelection(networks=["CI"], stations=["*"], channels=["HH?"]),
            start=t0,
            clock=lambda: t0 + 5,
        )
        assert poller.poll() == []
