"""Near-real-time monitoring on real recordings replayed record by record (tests/replay.py).

The Salton Sea sample (16 stations x 3 components, 180 s at 100 Hz, real miniSEED records) is
written into an SDS archive as a recorder would; the monitor follows it and its lake rows are
compared with the batch path over the same files (the science functions the pick task runs).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from obspy import UTCDateTime
from replay import SDSReplay

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def salton(shared_data: Path) -> Path:
    folder = shared_data / "phasenet_saltonsea_20201001"
    if not (folder / "mseed").is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


@pytest.fixture(scope="module")
def model(weights_cache):
    from quakelake.picking import models as picking

    return picking.load_model("PhaseNet", "original", "cpu")


def batch_picks(archive: Path, model) -> pd.DataFrame:
    """The batch path's picks of every station-day in ``archive`` (read + engine, as pick_one)."""
    from quakelake.archive import waveforms
    from quakelake.params import PickParams, StationSelection
    from quakelake.picking import engine
    from quakelake.picking import models as picking

    scan = waveforms.scan_archive(archive)
    units = waveforms.station_days(scan.index)
    frames = []
    for unit in units:
        instruments, _ = waveforms.read_station_day(unit, StationSelection())
        picks, _ = engine.pick_instruments(
            model, instruments, picking.ModelSpec("PhaseNet", "original"), PickParams()
        )
        frames.append(picking.within_day(picks, unit.day))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def one_to_one(batch: pd.DataFrame, live: pd.DataFrame, tol_s: float = 0.01) -> pd.DataFrame:
    """Pair batch and live picks of the same instrument and phase within ``tol_s``."""
    m = batch.merge(live, on=["station_id", "band", "phase"], suffixes=("_b", "_l"))
    m["dt"] = (m["time_b"] - m["time_l"]).abs().dt.total_seconds()
    m = m[m["dt"] <= tol_s].sort_values("dt")
    m = m.drop_duplicates("pick_id_b").drop_duplicates("pick_id_l")
    return m


def make_monitor(
    tmp_path: Path, model, stations_file: Path | None, name: str = "m", magnitudes: bool = True
):
    from quakelake.archive.live import SDSFollower
    from quakelake.archive.stations import read_stations
    from quakelake.association.live import LiveCatalog
    from quakelake.lakehouse import Lake
    from quakelake.params import PickParams
    from quakelake.params.association import PyOctoConfig
    from quakelake.picking import models as picking
    from quakelake.picking.streaming import StreamPicker
    from quakelake.service.monitor import Monitor, MonitorSettings

    picker = StreamPicker(model, picking.ModelSpec("PhaseNet", "original"), PickParams())
    catalog = None
    if stations_file is not None:
        from quakelake.service.monitor import MonitorSpec, live_magnitudes

        stations = read_stations(stations_file)
        spec = MonitorSpec(lake=str(tmp_path / "lake"), station_file=str(stations_file))
        catalog = LiveCatalog(
            stations,
            PyOctoConfig(),
            300.0,
            prefix=name,
            magnitudes=live_magnitudes(spec, stations) if magnitudes else None,
        )
    lake = Lake(tmp_path / "lake")
    return Monitor(lake, SDSFollower(tmp_path / "sds"), picker, catalog, MonitorSettings(name=name))


def replay(rep: SDSReplay, mon, step_s: float = 5.0, skip=None, until=None) -> None:
    t = rep.start
    end = until or rep.end
    while t < end + step_s:
        t += step_s
        rep.write_until(min(t, end), skip=skip)
        mon.cycle()


def test_final_streaming_picks_equal_batch_picks_and_events_agree(tmp_path, salton, model):
    from quakelake.archive.stations import read_stations
    from quakelake.association.associate import associate
    from quakelake.params.association import PyOctoConfig

    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    mon = make_monitor(tmp_path, model, salton / "stations.xml")
    replay(rep, mon)
    mon.cycle(finish=True)
    lake = mon.lake
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    batch = batch_picks(tmp_path / "sds", model)
    assert len(batch) == 175  # the batch path on the same 180 s (P 90, S 85)
    pairs = one_to_one(batch, live)
    assert len(pairs) >= 0.99 * len(batch) and len(live) == len(batch)
    assert (pairs["probability_b"] - pairs["probability_l"]).abs().max() <= 0.01
    assert set(live["pick_id"]) == set(batch["pick_id"])  # the same picks, id for id
    # every provisional pick ended: confirmed by a final pick or withdrawn (both kept)
    states = lake.query("SELECT pick_id, status, supersedes FROM live_picks")
    prov = set(states.loc[states["status"] == "provisional", "pick_id"])
    ended = set(states.loc[states["status"].isin(["final", "withdrawn"]), "supersedes"])
    assert prov and prov <= ended
    # events: the final monitor catalogue vs the batch association of the batch picks
    stations = read_stations(salton / "stations.xml")
    reference = associate(batch, stations, PyOctoConfig())
    ref = reference.events
    origins = lake.query(
        "SELECT * FROM live_origins o WHERE revision = (SELECT max(revision) FROM live_origins "
        "WHERE event_id = o.event_id) AND status != 'deleted'"
    )
    assert len(ref) >= 3
    matched = 0
    for t in ref["time"]:
        dt = (origins["time"] - t).abs().dt.total_seconds()
        matched += int((dt <= 1.0).any())
    assert matched >= 0.8 * len(ref), (len(ref), len(origins), matched)
    assert abs(len(origins) - len(ref)) <= max(1, len(ref) // 5)
    check_magnitudes(lake, tmp_path / "sds", origins, reference, stations, salton)
    # every revision kept; an event keeps its id while its origin is revised
    history = lake.query("SELECT event_id, count(*) AS n FROM live_origins GROUP BY ALL")
    assert history["n"].max() >= 2
    # no Parquet file per cycle: the live rows are inlined in the catalog
    assert mon.cycles >= 30

    from quakelake.service.monitor import FLUSHED, LIVE_TABLES

    def live_files() -> list[str]:
        return [
            f
            for t in LIVE_TABLES
            for f in glob.glob(
                str(tmp_path / "lake" / "**" / t / "**" / "*.parquet"), recursive=True
            )
        ]

    assert live_files() == []
    # the state rows a cycle rewrites are the lanes whose windows ran (each rewrite stays in
    # the catalog's history): far fewer than one row per lane per cycle
    from quakelake.lakehouse.catalog import ALIAS

    last = int(lake.history()["snapshot_id"].max())
    written = lake.query(
        f"SELECT count(*) AS n FROM ducklake_table_insertions('{ALIAS}', 'main', "
        f"'monitor_state', 0, {last})"
    )
    lanes = len(mon.picker.lane_states())
    assert int(written["n"][0]) <= 0.4 * mon.cycles * (lanes + 1), (written, mon.cycles, lanes)
    assert len(glob.glob(str(tmp_path / "lake" / "**" / "*.parquet"), recursive=True)) <= 2
    mon.lake.flush_inlined(FLUSHED)  # what the hourly flush does: 6 files at most
    flushed = live_files()
    assert len(flushed) <= 6 and sum(f.endswith("-delete.parquet") for f in flushed) <= 1
    assert {Path(f).parent.name for f in flushed} == set(LIVE_TABLES)
    assert len(lake.query("SELECT * FROM live_picks WHERE status = 'final'")) == len(batch)


def check_magnitudes(lake, archive, origins, reference, stations, salton) -> None:
    """The monitor's MLs: equal to the batch magnitude stage on the same origins and picks, close
    to the batch catalogue's, and revised as stations' amplitude windows complete."""
    from quakelake.archive import waveforms
    from quakelake.association.magnitudes import day_magnitudes, read_inventory

    inventory = read_inventory([salton / "stations.xml"])
    index = waveforms.scan_archive(archive).index
    arrivals = lake.query("SELECT * FROM live_arrivals")
    final = origins[origins["status"] != "deleted"]
    used = arrivals[arrivals["origin_id"].isin(final["origin_id"])]
    batch_ml = day_magnitudes(final, used, stations, inventory, index)
    reported = final[final["evaluation_status"] != "rejected"]
    assert len(reported) >= 3
    mine = reported.set_index("event_id")["magnitude"]
    theirs = batch_ml.events.set_index("event_id")["magnitude"].loc[mine.index]
    assert np.isfinite(mine).all(), mine
    # the same origin and picks: the very amplitudes the batch stage reads from the files
    assert np.allclose(mine.to_numpy(), theirs.to_numpy(), atol=1e-6), (mine, theirs)
    amps = lake.query("SELECT * FROM live_amplitudes")
    keys = ["event_id", "station_id", "channel", "window_start", "window_end"]
    assert not amps.duplicated(keys).any()  # each amplitude measured once
    # the batch catalogue (batch picks -> association -> magnitudes) within 0.2 units
    ref_ml = day_magnitudes(
        reference.events, reference.assignments, stations, inventory, index
    ).events
    for row in ref_ml[np.isfinite(ref_ml["magnitude"])].itertuples():
        dt = (reported["time"] - row.time).abs().dt.total_seconds()
        if (dt <= 1.0).any():
            assert abs(reported.loc[dt.idxmin(), "magnitude"] - row.magnitude) <= 0.2
    # "as soon as enough stations have amplitudes": an event's ML is revised as stations
    # complete; the station count of its magnitude never shrinks while its picks stay
    history = lake.query(
        "SELECT event_id, revision, magnitude_station_count AS n FROM live_origins "
        "WHERE status != 'deleted' AND isfinite(magnitude) ORDER BY event_id, revision"
    )
    grew = history.groupby("event_id")["n"].agg(lambda n: n.iloc[-1] > n.iloc[0])
    assert grew.any(), history


def test_late_and_out_of_order_records_give_the_same_picks(tmp_path, salton, model):
    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    rng = np.random.default_rng(7)
    # one record in 20 arrives 3 s late (behind later records of its own and other channels)
    rep.late = {int(i): 3.0 for i in rng.choice(len(rep.records), len(rep.records) // 20, False)}
    mon = make_monitor(tmp_path, model, None)
    replay(rep, mon, step_s=2.0)
    rep.write_until(rep.end + 3600)
    mon.cycle(finish=True)
    live = mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    batch = batch_picks(tmp_path / "sds", model)
    assert set(live["pick_id"]) == set(batch["pick_id"])


def test_a_station_that_stops_and_comes_back(tmp_path, salton, model):
    """CI.SAL is silent for 60 s: its picks away from the gap equal the batch picks of the
    gapped archive; within one window step before the gap they may differ (the batch path's
    last window of a segment, see quakelake.picking.streaming)."""
    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    gap0, gap1 = rep.start + 60, rep.start + 120
    mon = make_monitor(tmp_path, model, None)
    replay(rep, mon, until=gap0)
    replay_from = gap0
    t = replay_from
    while t < gap1:
        t += 5
        rep.write_until(t, skip={"CI.SAL"})
        mon.cycle()
    replay(rep, mon)
    mon.cycle(finish=True)
    live = mon.lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    batch = batch_picks(tmp_path / "sds", model)
    away = pd.Timestamp((gap0 - 16).datetime, tz="UTC")
    for frame in (live, batch):
        frame.drop(frame[(frame["station"] == "SAL") & (frame["time"] >= away)].index, inplace=True)
    assert set(live["pick_id"]) == set(batch["pick_id"])
    assert (live["station"] == "SAL").sum() >= 1


def _monitor_cmd(tmp_path: Path, salton: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "quakelake.cli",
        "monitor",
        "--sds",
        str(tmp_path / "sds"),
        "--from-start",
        "--lake",
        str(tmp_path / "lake"),
        "-F",
        str(salton / "stations.xml"),
        "--cycle",
        "0.5",
        "--name",
        "live",
        *extra,
    ]


def _committed(lake, name: str = "live") -> pd.Timestamp | None:
    from quakelake.lakehouse import LakeQueryError

    try:
        c = lake.query("SELECT max(committed) AS c FROM monitor_state WHERE monitor = ?", [name])
    except LakeQueryError:  # no cycle committed yet
        return None
    value = c["c"][0]
    return None if pd.isna(value) else pd.Timestamp(value)


def _finals(lake) -> int:
    from quakelake.lakehouse import LakeQueryError

    try:
        n = lake.query("SELECT count(*) AS n FROM live_picks WHERE status = 'final'")
    except LakeQueryError:
        return 0
    return int(n["n"][0])


def test_kill_and_resume_no_gap_no_duplicate(tmp_path, salton, model):
    """SIGKILL the monitor three times while the archive grows; the picks equal the batch picks."""
    from quakelake.lakehouse import Lake

    rep = SDSReplay(sorted((salton / "mseed").glob("*.mseed")), tmp_path / "sds")
    (tmp_path / "sds").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    lake = Lake(tmp_path / "lake")
    t = rep.start
    for kill_at in (30.0, 70.0, 110.0, None):
        started = pd.Timestamp.now(tz="UTC")
        proc = subprocess.Popen(
            _monitor_cmd(tmp_path, salton), env=env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.time() + 180
        while (_committed(lake) or started) <= started and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            if t < rep.end + 5:  # records hold ~30 s each: feed until the monitor commits
                t += 2.0
                rep.write_until(t)
            time.sleep(0.5)
        target = rep.start + kill_at if kill_at is not None else rep.end + 3600
        while t < target and t < rep.end + 5:
            t += 2.0
            rep.write_until(t)
            time.sleep(0.3)
        if kill_at is not None:
            time.sleep(1.0 + kill_at / 100)  # somewhere in a cycle or a commit
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            continue
        rep.write_until(rep.end + 3600)
        batch = batch_picks(tmp_path / "sds", model)
        # a live stream never ends: the picks of the last window steps stay provisional
        horizon = pd.Timestamp((rep.end - 45).datetime, tz="UTC")
        expected = set(batch.loc[batch["time"] < horizon, "pick_id"])
        while time.time() < deadline + 300:
            time.sleep(1.0)
            if _finals(lake) and expected <= set(
                lake.query("SELECT pick_id FROM live_picks WHERE status = 'final'")["pick_id"]
            ):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    live = lake.query("SELECT * FROM live_picks WHERE status = 'final'")
    assert not live["pick_id"].duplicated().any()
    assert set(live.loc[live["time"] < horizon, "pick_id"]) == expected
    events = lake.query(
        "SELECT event_id, count(*) AS n FROM live_origins WHERE status = 'new' GROUP BY ALL"
    )
    assert (events["n"] == 1).all()  # no event created twice
    amps = lake.query("SELECT * FROM live_amplitudes")  # measured once each, across restarts
    keys = ["event_id", "station_id", "channel", "window_start", "window_end"]
    assert len(amps) and not amps.duplicated(keys).any()


def test_monitor_command_refuses_bad_input(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", "monitor", "--sds", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: --sds: {tmp_path / 'nope'} is not a folder; give the SDS archive's root"
    ]
    assert not (tmp_path / "lake").exists()


def test_sds_follower_reads_only_whole_records(tmp_path, salton):
    """A record being written (cut) is read at the next poll, never twice, never half."""
    from quakelake.archive.live import SDSFollower
    from quakelake.archive.sds import parse_records, sds_path

    data = (salton / "mseed" / "CI.BOM.2020-10-01T00:00.mseed").read_bytes()
    records, _ = parse_records(data)
    rec = records[0]
    net, sta, loc, cha = rec.key
    path = sds_path(tmp_path, net, sta, loc, cha, rec.start.datetime.date())
    path.parent.mkdir(parents=True)
    follower = SDSFollower(tmp_path)
    with open(path, "ab") as fh:
        fh.write(records[0].data + records[1].data[:100])
    first = follower.poll()
    assert [tr.stats.npts for tr in first] == [
        tr.stats.npts for tr in __import__("obspy").read(__import__("io").BytesIO(records[0].data))
    ]
    with open(path, "ab") as fh:
        fh.write(records[1].data[100:])
    second = follower.poll()
    assert len(second) == 1 and second[0].stats.starttime == UTCDateTime(records[1].start)
    assert follower.poll() == []


def _first_seen(records, model, lookahead: bool, step_s: float = 1.5) -> list[float]:
    """Feed ``records`` in steps of ``step_s`` of data; return, per final pick after the first
    minute, the data seconds from its time to the first step that published it (provisional
    or final)."""
    import io

    import obspy

    from quakelake.params import PickParams
    from quakelake.picking import models as picking
    from quakelake.picking.streaming import StreamPicker

    picker = StreamPicker(
        model, picking.ModelSpec("PhaseNet", "original"), PickParams(), lookahead=lookahead
    )
    seen: list[tuple[str, str, pd.Timestamp, UTCDateTime]] = []
    finals = []
    i, t = 0, min(r.end for r in records)
    while i < len(records):
        t += step_s
        while i < len(records) and records[i].end <= t:
            for tr in obspy.read(io.BytesIO(records[i].data)):
                picker.add(tr)
            i += 1
        got = picker.step()
        for frame in (got.provisional, got.final):
            seen += [(r.station_id, r.phase, r.time, t) for r in frame.itertuples()]
        finals.append(got.final)
    finals.append(picker.close().final)
    out = []
    steady = pd.Timestamp((min(r.start for r in records) + 60).datetime, tz="UTC")
    for p in pd.concat([f for f in finals if len(f)], ignore_index=True).itertuples():
        if p.time < steady:  # the first window needs 30 s of data: start-up, not steady state
            continue
        first = min(
            w
            for sid, ph, time_, w in seen
            if sid == p.station_id and ph == p.phase and abs((time_ - p.time).total_seconds()) < 0.5
        )
        out.append(float(first - UTCDateTime(p.time.to_pydatetime())))
    return out


def test_lookahead_windows_publish_provisional_picks_sooner(tmp_path, salton, model):
    """Look-ahead windows (provisional only) cut the wait for a pick's first window from up to a
    grid step (15 s for PhaseNet) to a third of it; the final picks stay the batch picks."""
    from seedlink_server import repack_512

    from quakelake.archive.sds import parse_records

    files = repack_512(sorted((salton / "mseed").glob("*.mseed"))[:6], tmp_path / "512")
    records = sorted(
        (r for f in files for r in parse_records(f.read_bytes())[0]), key=lambda r: (r.end, r.key)
    )
    grid = np.array(_first_seen(records, model, lookahead=False))
    ahead = np.array(_first_seen(records, model, lookahead=True))
    assert len(grid) == len(ahead) >= 30
    # (a pick that only the stacking of later windows lifts over the threshold waits for them
    # in both: the comparison is on the median)
    assert np.median(ahead) <= np.median(grid) - 3.0, (np.median(ahead), np.median(grid))
