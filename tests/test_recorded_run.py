"""One `recorded_run()` for the run bookkeeping of every flow: the `runs` rows it writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from quakelake.lakehouse import Lake, queries
from quakelake.lakehouse.lineage import record_run, recorded_run, utcnow


def _row(lake_root) -> dict:
    rows = queries.runs(Lake(lake_root))
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def test_a_finished_run_writes_running_then_its_status_as_the_flows_did(tmp_path):
    config = {"window": {"start": "2020-10-01"}, "force": False}
    seen: dict = {}
    with recorded_run(tmp_path / "new", "pick", config, "r1", "flow-1") as run:
        seen["running"] = _row(tmp_path / "new")
        run.config["engines"] = {"PhaseNet/original": ["seisbench"]}  # added while it runs
        run.weights = {"PhaseNet/original": "abc"}
        run.status = "completed"
    running, done = seen["running"], _row(tmp_path / "new")
    assert (running["run_id"], running["status"], running["flow_run_id"]) == (
        "r1",
        "running",
        "flow-1",
    )
    assert pd.isna(running["finished"]) and running["weights_json"] == "{}"
    assert json.loads(running["config_json"])["_process"]["pid"] > 0  # who runs it
    assert done["status"] == "completed" and done["started"] == running["started"]
    assert done["finished"] >= done["started"]
    assert json.loads(done["weights_json"]) == {"PhaseNet/original": "abc"}

    # the same run recorded by hand, as each flow did before: the same row but for the times
    started = utcnow()
    record_run(tmp_path / "old", "r1", "pick", config, "running", started, flow_run_id="flow-1")
    record_run(
        tmp_path / "old",
        "r1",
        "pick",
        config,
        "completed",
        started,
        utcnow(),
        "flow-1",
        run.weights,
    )
    old = _row(tmp_path / "old")
    assert list(old) == list(done)
    times = ("started", "finished")
    assert {k: v for k, v in old.items() if k not in times} == {
        k: v for k, v in done.items() if k not in times
    }


def test_a_raising_body_is_recorded_failed_after_its_last_words(tmp_path):
    config: dict = {}

    def last_words(run) -> None:
        run.config["ran_on"] = {"here": 1}  # what the flow adds about a failed run too

    with pytest.raises(RuntimeError, match="no waveforms"):
        with recorded_run(tmp_path, "pick", config, before_finish=last_words) as run:
            run.weights = {"m": "w"}
            raise RuntimeError("no waveforms")
    row = _row(tmp_path)
    assert row["run_id"] == run.run_id and row["run_id"]  # a new id when none was given
    assert (row["command"], row["status"]) == ("pick", "failed")
    assert json.loads(row["config_json"]) == {"ran_on": {"here": 1}}
    assert json.loads(row["weights_json"]) == {"m": "w"}
