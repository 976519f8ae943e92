"""Deployments from deployments/prefect.yaml on a real Prefect server, run by a process worker.

What a user does: start a server, create the process pool, ``prefect deploy --all``, start a
worker, press Run (here: create the flow run through the API, as the UI does).
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from live_prefect import ROOT, deployed, wait_final
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from quakelake.analysis.evaluation import match_events, match_picks
from quakelake.catalogs import read_catalog
from quakelake.lakehouse import Lake

pytestmark = pytest.mark.integration

PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
POOL = "quakelake-local"


def test_prefect_yaml_is_complete():
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert {"pipeline-date-range", "pipeline-daily", "analyze"} <= set(by_name)
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).is_file(), f"{d['name']}: entrypoint {path} is missing"
        assert f"def {func}(" in (ROOT / path).read_text()
        assert d["work_pool"]["name"] == POOL and d["description"]
    daily = by_name["pipeline-daily"]
    assert daily["parameters"]["previous_day"] is True and daily["schedules"][0]["cron"]


@pytest.fixture(scope="module")
def live(tmp_path_factory, shared_data, weights_cache):
    """A live server with the deployments applied and a process worker polling the pool."""
    home = tmp_path_factory.mktemp("prefect-live")
    lake = home / "lake"
    archive = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    env = {"QUAKELAKE_ARCHIVE": str(archive), "QUAKELAKE_LAKE": str(lake)}
    with deployed(home, PREFECT_YAML, POOL, env) as api, temporary_settings({PREFECT_API_URL: api}):
        yield {
            "api": api,
            "home": home,
            "lake": lake,
            "worker_log": home / f"worker-{POOL}.log",
            "stations": archive.parent / "stations.xml",
        }


def test_pipeline_deployment_run_from_the_api_fills_the_lake(live):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("quakelake-pipeline/pipeline-date-range")
        assert deployment.work_pool_name == POOL
        schema = deployment.parameter_openapi_schema
        assert "the whole run configuration" in schema["properties"]["config"]["description"]
        daily = client.read_deployment_by_name("quakelake-pipeline/pipeline-daily")
        assert daily.parameters["previous_day"] is True and daily.schedules[0].active

        # What the UI's "Custom run" does: a flow run of the deployment with edited parameters
        # (here the station file, so the pipeline also associates).
        config = {**deployment.parameters["config"], "station_file": str(live["stations"])}
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"config": config})
        run = wait_final(client, run.id, 240, live["worker_log"])
        assert run.state.is_completed(), f"{run.state}\n{live['worker_log'].read_text()[-4000:]}"
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
        ids = [run.id, *(c.id for c in children)]
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
        )
    assert {"pick-summary", "pick-report"} <= {a.key for a in artifacts}
    report = next(a for a in artifacts if a.key == "pick-report")
    assert "units: 16" in report.data

    lake = Lake(live["lake"])
    picks = lake.read("picks")
    # PhaseNet's picks against those of the original PhaseNet tool on the same 180 s (0.5 s)
    salton = live["stations"].parent
    ref = read_catalog(salton / "DERIVED_phasenet_ref_picks_first180s.csv").picks
    m = match_picks(picks, ref, 0.5, station_key="station")
    for phase in ("P", "S"):
        n = m[m["phase"] == phase]["outcome"].value_counts()
        assert n["TP"] / (n["TP"] + n["FN"]) >= 0.75 and n["TP"] / (n["TP"] + n["FP"]) >= 0.8
    done = lake.query("SELECT count(*) AS n FROM units WHERE stage = 'pick' AND status = 'done'")
    assert int(done["n"][0]) == 16
    assert {str(i) for i in ids} & set(lake.read("runs")["flow_run_id"])
    events = lake.read("events")
    assert set(events["associator"]) == {"gamma"}
    # the SCSN event inside the 180 s (M2.4, 00:02:21.07) is found (2 s, 8 km)
    scsn = read_catalog(salton / "DERIVED_scsn_events_first10min.csv").events
    scsn = scsn[scsn["time"] < pd.Timestamp("2020-10-01T00:03:00Z")]
    found = match_events(events, scsn, max_dt_s=2.0, max_km=8.0)
    assert (found["outcome"] == "TP").sum() == len(scsn) == 1
    assert set(events["run_id"]) <= set(lake.read("runs")["run_id"])
