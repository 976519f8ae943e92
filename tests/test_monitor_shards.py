"""The monitor sharded by station over a real Dask LocalCluster (2 worker processes).

The Salton Sea replay of tests/test_monitor.py, followed by a monitor whose reading and picking
run as two Dask actors (8 stations each) while association and the lake stay in the test's
process: the final picks equal the batch picks id for id (a worker killed mid-run included),
events come out, and a monitor killed between its shards' step and its commit restarts from
the lake with no gap and no duplicate, on the same or another number of shards. Also: the
command (its own LocalCluster), real SLURM jobs (tests/slurm_local.py) and a SeedLink restart
whose per-station sequence numbers go back to the shard of each station.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from replay import SDSReplay
from test_monitor import _monitor_cmd, batch_picks, model, replay, salton  # noqa: F401 (fixtures)
from test_monitor_sources import batch, repacked  # noqa: F401 (fixtures)
from test_slurm import slurm  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(weights_cache):
    """Two worker processes, one thread each (the runner ``dask-local`` builds)."""
    from distributed import LocalCluster

    from quakelake.flows.compute import local_cluster_kwargs
    from quakelake.params.compute import ComputeSettings

    settings = ComputeSettings(runner="dask-local", workers=2)
    with LocalCluster(**local_cluster_kwargs(settings)) as c:
        yield c


def sharded_spec(tmp_path: Path, folder: Path, address: str, shards: int = 2):
    from quakelake.params.compute import ComputeSettings
    from quakelake.service.monitor import MonitorSpec

    return MonitorSpec(
        lake=str(tmp_path / "lake"),
        sds=str(tmp_path / "sds"),
        station_file=str(folder / "stations.xml"),
        name="m",
        from_start=True,
        shards=shards,
        execution=ComputeSettings(runner="address", address=address),
    )


def test_sharded_monitor_gives_the_batch_picks_and_events(tmp_path, salton, model, cluster):  # noqa: F811
    from quakelake.service.monitor import build_monitor
    from quakelake.service.monitor_shards import ShardedFront

    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    mon = build_monitor(sharded_spec(tmp_path, salton, cluster.scheduler_address))
    try:
        front = mon.front
        assert isinstance(front, ShardedFront) and len(front.actors) == 2
        # one shard per worker process, none in this process
        where = {a.where().result() for a in front.actors}
        assert len(where) == 2
        replay(rep, mon, until=rep.start + 90)
        # a worker dies (killed, out of memory, end of its SLURM job): its shard starts again
        # on a live worker from the state of the last cycle
        pid = re.search(r" pid (\d+)", front.actors[1].where().result())
        assert pid is not None
        os.kill(int(pid.group(1)), signal.SIGKILL)
        replay(rep, mon)
        mon.cycle(finish=True)
        assert front.replaced == 1
    finally:
        mon.front.close()
    lake = mon.lake
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    reference = batch_picks(tmp_path / "sds", model)
    assert len(reference) == 175
    assert set(live["pick_id"]) == set(reference["pick_id"]) and len(live) == len(reference)
    # both shards picked: the stations are split 8 / 8 (round robin over the station file)
    shard_of = front.shards[0].of
    assert {shard_of(n, s) for n, s in zip(live["network"], live["station"], strict=True)} == {
        0,
        1,
    }
    assert (
        sum(
            shard_of(n, s) == 0
            for n, s in set(zip(reference["network"], reference["station"], strict=True))
        )
        == 8
    )
    # provisional picks came from the shards too, and all ended
    states = lake.query("SELECT pick_id, status, supersedes FROM live_picks")
    prov = set(states.loc[states["status"] == "provisional", "pick_id"])
    ended = set(states.loc[states["status"].isin(["final", "withdrawn"]), "supersedes"])
    assert prov and prov <= ended
    # the delivery stamps came back from the shards: every final pick has one
    assert live["delivered"].notna().all()
    origins = lake.query("SELECT * FROM live_origins WHERE status != 'deleted'")
    assert origins["event_id"].nunique() >= 3
    # magnitudes: the shards send their horizontal records; every reported final origin has
    # the ML the batch magnitude stage gives its origin and picks
    from quakelake.archive import waveforms
    from quakelake.archive.stations import read_stations
    from quakelake.association.magnitudes import day_magnitudes, read_inventory

    final = lake.query(
        "SELECT * FROM live_origins o WHERE revision = (SELECT max(revision) FROM live_origins "
        "WHERE event_id = o.event_id) AND status != 'deleted' "
        "AND evaluation_status != 'rejected'"
    )
    arrivals = lake.query("SELECT * FROM live_arrivals")
    batch_ml = day_magnitudes(
        final,
        arrivals[arrivals["origin_id"].isin(final["origin_id"])],
        read_stations(salton / "stations.xml"),
        read_inventory([salton / "stations.xml"]),
        waveforms.scan_archive(tmp_path / "sds").index,
    ).events.set_index("event_id")["magnitude"]
    mine = final.set_index("event_id")["magnitude"]
    assert len(mine) >= 3 and mine.notna().all(), mine
    assert (mine - batch_ml.loc[mine.index]).abs().max() < 1e-6


def test_sharded_monitor_killed_resumes_without_gap_or_duplicate(
    tmp_path,
    salton,  # noqa: F811
    model,  # noqa: F811
    cluster,
):
    """Killed twice after its shards stepped and before the commit (what they read and picked
    is lost with them); the second run has 2 shards, the third 1: the lake's state routes
    each lane to the shard of its station."""
    from quakelake.service.monitor import build_monitor

    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    address = cluster.scheduler_address
    for shards, kill_at in ((2, 70.0), (2, 120.0), (1, None)):
        mon = build_monitor(sharded_spec(tmp_path, salton, address, shards))
        try:
            if kill_at is None:
                replay(rep, mon)
                mon.cycle(finish=True)
                break
            replay(rep, mon, until=rep.start + kill_at)
            rep.write_until(rep.start + kill_at + 15)
            mon.front.poll_step()  # the shards read and pick ... and the coordinator dies
        finally:
            mon.front.close()
    live = mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    reference = batch_picks(tmp_path / "sds", model)
    assert not live["pick_id"].duplicated().any()
    assert set(live["pick_id"]) == set(reference["pick_id"])
    events = mon.lake.query(
        "SELECT event_id, count(*) AS n FROM live_origins WHERE status = 'new' GROUP BY ALL"
    )
    assert len(events) >= 3 and (events["n"] == 1).all()  # no event created twice


def test_monitor_command_with_shards(tmp_path, salton, model):  # noqa: F811
    """``quakelake monitor --shards 2``: its own LocalCluster of two processes."""
    from quakelake.lakehouse import Lake

    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    rep.write_until(rep.end + 3600)
    out = subprocess.run(
        _monitor_cmd(tmp_path, salton, "--shards", "2", "--duration", "5"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 shards on dask-local" in out.stderr
    lake = Lake(tmp_path / "lake")
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    reference = batch_picks(tmp_path / "sds", model)
    # a live stream never ends: the picks of the last window steps stay provisional
    horizon = pd.Timestamp((rep.end - 45).datetime, tz="UTC")
    assert set(reference.loc[reference["time"] < horizon, "pick_id"]) <= set(live["pick_id"])
    assert set(live["pick_id"]) <= set(reference["pick_id"])
    assert len(lake.query("SELECT DISTINCT event_id FROM live_origins")) >= 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--shards", "0"], "error: --shards: give a number of shards >= 1 (got 0)"),
        (
            ["--shards", "2", "--runner", "threads"],
            "error: --runner: shards run on Dask workers: give dask-local, slurm or address "
            "(threads is the monitor in this process, --shards 1)",
        ),
        (
            ["--runner", "address"],
            "error: --runner address: give the scheduler's --address, e.g. tcp://10.0.0.5:8786",
        ),
        (
            ["--shards", "4", "--runner", "slurm"],
            "error: --runner slurm: give the SLURM job settings: -c FILE (execution.slurm) or "
            "--compute-block NAME",
        ),
    ],
)
def test_monitor_command_refuses_bad_shard_options(tmp_path, options, message):
    from cli_run import quakelake

    (tmp_path / "sds").mkdir()
    out = quakelake(
        "monitor", "--sds", str(tmp_path / "sds"), "--lake", str(tmp_path / "lake"), *options
    )
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [message]
    assert not (tmp_path / "lake").exists()


@pytest.mark.integration
def test_sharded_monitor_on_slurm_jobs(tmp_path, salton, model, slurm):  # noqa: F811
    """``--runner slurm``: each shard in its own SLURM job (a real slurmctld + slurmd on
    127.0.0.1, tests/slurm_local.py); the jobs end with the monitor."""
    from test_slurm import slurm_execution

    from quakelake.service.monitor import MonitorSpec, build_monitor

    execution = slurm_execution(tmp_path)
    assert execution.slurm is not None
    slurm_settings = execution.slurm.model_copy(update={"memory": "1800MB", "max_jobs": 2})
    spec = MonitorSpec(
        lake=str(tmp_path / "lake"),
        sds=str(tmp_path / "sds"),
        station_file=str(salton / "stations.xml"),
        name="m",
        from_start=True,
        shards=2,
        execution=execution.model_copy(update={"slurm": slurm_settings}),
    )
    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    mon = build_monitor(spec)
    try:
        where = [a.where().result() for a in mon.front.actors]
        assert len({w.split(" slurm job ")[-1] for w in where}) == 2, where
        assert all(" slurm job " in w and f" pid {os.getpid()} " not in w + " " for w in where)
        replay(rep, mon, step_s=10.0)
        mon.cycle(finish=True)
    finally:
        mon.front.close()
    live = mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    assert set(live["pick_id"]) == set(batch_picks(tmp_path / "sds", model)["pick_id"])
    deadline = time.time() + 60
    while slurm.jobs() and time.time() < deadline:  # scancel is asynchronous
        time.sleep(1)
    assert slurm.jobs() == []


def test_monitor_command_refuses_more_shards_than_stations(tmp_path, salton):  # noqa: F811
    (tmp_path / "sds").mkdir()
    out = subprocess.run(
        _monitor_cmd(tmp_path, salton, "--shards", "17"), capture_output=True, text=True
    )
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        "error: --shards: 17 shards for 16 stations; give at most 16 (a shard follows whole "
        "stations)"
    ]


def test_sharded_seedlink_restart_routes_the_sequence_numbers(
    tmp_path,
    salton,  # noqa: F811
    model,  # noqa: F811
    cluster,
    repacked,  # noqa: F811
    batch,  # noqa: F811
):
    """Two shards, each with its own SeedLink connection for its 8 stations; stopped with 10 s
    received and never committed, a new sharded monitor gives every station's checkpoint to the
    shard of that station, which asks DATA from it: the batch picks, none missing, none twice."""
    from seedlink_server import SeedLinkReplayServer

    from quakelake.service.monitor import build_monitor

    def seq_of(mon, key: str) -> int:
        return mon.front.source_state().get(key, {}).get("seq", 0)

    with SeedLinkReplayServer(repacked) as server:
        spec = sharded_spec(tmp_path, salton, cluster.scheduler_address)
        spec.sds, spec.seedlink = None, server.address
        spec.networks = sorted({k.split("_")[0] for k in server.stations})
        spec.stations = sorted({k.split("_")[1] for k in server.stations})
        spec.channels = ["HH?"]
        t = server.start
        for stop in (server.start + 80, None):
            mon = build_monitor(spec)
            try:
                end = stop if stop is not None else server.end
                while t < end:
                    t += 5.0
                    server.release_until(t)
                    deadline = time.time() + 60
                    while any(seq_of(mon, k) < server.next_seq[k] - 1 for k in server.stations):
                        mon.cycle()
                        assert time.time() < deadline, mon.front.source_state()
                        time.sleep(0.1)
                if stop is not None:
                    assert set(mon.front.source_state()) == set(server.stations)
                    first_connections = {n for n, _ in server.log}
                    t += 10.0
                    server.release_until(t)  # received by the shards, never committed
                    time.sleep(1.0)
                    mon.front.poll_step()
                else:
                    mon.cycle(finish=True)
            finally:
                mon.front.close()
        asked = [
            line.split()[0]
            for n, line in server.log
            if n not in first_connections and line.split()[0] in ("DATA", "TIME")
        ]
    assert len(first_connections) == 2  # one connection per shard
    assert asked == ["DATA"] * 16  # every station resumed from its checkpoint, none from TIME
    live = mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    assert not live["pick_id"].duplicated().any()
    assert set(live["pick_id"]) == set(batch["pick_id"])
