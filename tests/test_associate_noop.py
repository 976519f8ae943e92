"""Unchanged `run` and `associate` reruns are answered from the lake before Prefect starts.

A late station (new picks), other association settings or ``--force`` still go to the flows.
"""

from __future__ import annotations

import pytest
from test_pick_noop import _archive, _rerun_in_a_fresh_process

from quakelake.cli import main
from quakelake.lakehouse import Lake

pytestmark = pytest.mark.usefixtures("weights_cache")

STATIONS = ("IMP", "SLV", "SWS", "CRR", "COA", "FRK", "WMD")


def _lake_state(lake) -> tuple[int, list[tuple[str, str]]]:
    """Return the lake's snapshot count and its committed logical files (table, stem)."""
    stems = Lake(lake).stems()
    return len(Lake(lake).history()), sorted(zip(stems["table_name"], stems["stem"], strict=True))


@pytest.mark.slow
def test_unchanged_run_and_associate_reruns_run_no_flow_and_late_picks_still_associate(
    shared_data, prefect_server, tmp_path, capsys
):
    salton = shared_data / "phasenet_saltonsea_20201001"
    archive = _archive(shared_data, tmp_path / "archive", STATIONS[:-1])
    lake = tmp_path / "lake"
    stations = ["-F", str(salton / "stations.xml")]
    run = ["run", "-d", str(archive), "--lake", str(lake), "-M", "PhaseNet", "-W", "original"]
    run += [*stations, "--silent"]
    # picked first: `run` finds every unit's picks in the lake and records no pick run, as an
    # unchanged `pick` would not; it goes on to associate them
    assert main(["pick", *run[1:-3], "--silent"]) == 0
    assert "6 units (done 6" in capsys.readouterr().out
    assert main(run) == 0
    first = capsys.readouterr().out
    assert first.startswith("nothing to do: 6 units (done 0, skipped 6, failed 0), picks none")
    assert "(gamma, lake-PhaseNet-original): 1 days (done 1" in first
    runs = Lake(lake).read("runs")
    assert sorted(runs["command"]) == ["associate", "pick"]
    assert set(runs["status"]) == {"completed"}
    events = Lake(lake).read("events")
    assert len(events) >= 1
    before = _lake_state(lake)

    # the identical rerun: the pick and associate stages both find everything in the lake; no
    # flow runs (Prefect is never imported) and nothing is written
    rc, out, prefect_modules = _rerun_in_a_fresh_process(run)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == (
        f"nothing to do: 6 units (done 0, skipped 6, failed 0), picks none, unreadable files 0 "
        f"-> lake {lake}"
    )
    assert lines[1] == (
        "nothing to do: associate (gamma, lake-PhaseNet-original): 1 days (done 0, skipped 1, "
        f"failed 0), 0 events written, lake holds {len(events)} events for these days"
    )
    assert lines[2].startswith("derived association settings (")
    assert lines[3].startswith("magnitudes (") and "days done 0, skipped 1, failed 0" in lines[3]
    assert prefect_modules == []
    assert _lake_state(lake) == before

    # `quakelake associate` of the same picks: the same answer, again without a flow
    associate = ["associate", "--lake", str(lake), *stations, "--silent"]
    rc, out, prefect_modules = _rerun_in_a_fresh_process(associate)
    assert rc == 0, out
    assert out.splitlines()[0] == lines[1]
    assert prefect_modules == []
    assert _lake_state(lake) == before

    # other association settings are another day file: the flow computes it
    assert main([*associate, "--pyocto"]) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("associate ") and "(pyocto, lake-PhaseNet-original): 1 days (done 1" in out
    )
    assert _lake_state(lake)[1] != before[1]
    before = _lake_state(lake)

    # a late station: its picks are new inputs of the day, whose events are associated again
    _archive(shared_data, archive, STATIONS[-1:])
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "7 units (done 1, skipped 6" in out
    assert "(gamma, lake-PhaseNet-original): 1 days (done 1, skipped 0" in out
    files = Lake(lake).stems("events")
    gamma = files[files["key"].str.startswith("gamma.")]["stem"].tolist()
    assert len(gamma) == 1  # the day's new file replaced the old one
    assert gamma[0] not in {s for t, s in before[1] if t == "events"}
    assigned = Lake(lake).query(
        "SELECT DISTINCT station_id FROM assignments WHERE associator = 'gamma'"
    )
    assert any(s.startswith(f"CI.{STATIONS[-1]}.") for s in assigned["station_id"])

    # that run, once more, is again nothing to do; --force still goes to the flow
    rc, out, prefect_modules = _rerun_in_a_fresh_process(run)
    assert rc == 0 and out.startswith("nothing to do: 7 units") and prefect_modules == []
    before = _lake_state(lake)
    assert main([*associate, "--force"]) == 0
    assert "(gamma, lake-PhaseNet-original): 1 days (done 1, skipped 0" in capsys.readouterr().out
    assert _lake_state(lake)[0] > before[0]
