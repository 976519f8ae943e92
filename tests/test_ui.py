"""The path a user takes in the Prefect UI: open the deployment, read its parameters, press Run.

Debian's headless Chromium driven by Playwright (``executable_path``; no browser download),
against a real ``prefect server start`` on 127.0.0.1 with a process worker.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from live_prefect import ROOT, deployed, wait_final
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from quakelake.lakehouse import Lake

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
POOL = "quakelake-local"
DEPLOYMENT = "pipeline-date-range"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip(
            "Debian chromium is absent: apt-get install -y chromium (no browser is downloaded)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (test extra)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _deployment_runs(deployment_id: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def submit_run(page, home: Path, failed: list[str]) -> None:
    """Press Submit on the custom-run form and wait for the deployment's Runs tab.

    The form is left to settle first (its schema and validation requests done): a click on a
    form that is still re-rendering is lost on a fast machine. A submission the server never
    received (no flow run of the deployment exists, an API call failed) is pressed once more,
    as a user would after Prefect's "Something went wrong" toast; the failure is named when
    the second press fails too.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deployment_id = page.url.split("/deployments/deployment/")[1].split("/")[0]
    for attempt in range(2):
        try:
            page.wait_for_load_state("networkidle", timeout=20_000)
        except PlaywrightTimeout:
            pass  # the UI polls: a form that never idles is still submitted
        page.get_by_role("button", name="Submit").click()
        # Submitting returns to the deployment page, whose Runs tab lists the new run.
        try:
            page.wait_for_url("**/deployments/deployment/*?tab=Runs", timeout=45_000)
            return
        except PlaywrightTimeout:
            if attempt == 1 or _deployment_runs(deployment_id):
                log = (home / "server.log").read_text()[-3000:]
                raise AssertionError(
                    f"Submit did not create the run (page {page.url}); failed API calls: "
                    f"{failed or 'none'}; server log:\n{log}"
                ) from None


def test_run_button_in_the_ui_fills_the_lake(browser, tmp_path, shared_data, weights_cache):
    home, lake = tmp_path / "prefect", tmp_path / "lake"
    archive = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    env = {"QUAKELAKE_ARCHIVE": str(archive), "QUAKELAKE_LAKE": str(lake)}
    prefect_yaml = ROOT / "deployments" / "prefect.yaml"
    with deployed(home, prefect_yaml, POOL, env) as api, temporary_settings({PREFECT_API_URL: api}):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)  # 2 shared cores: the UI can be slow
        failed: list[str] = []  # API calls that failed, for the assertion messages
        page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on(
            "response",
            lambda r: (
                failed.append(f"{r.request.method} {r.url}: HTTP {r.status}")
                if r.status >= 500
                else None
            ),
        )
        page.goto(api.removesuffix("/api") + "/deployments")
        page.get_by_text(DEPLOYMENT, exact=True).first.click()
        page.get_by_text("Parameters", exact=True).first.click()
        page.get_by_text(str(archive)).first.wait_for()  # the deployment's own archive

        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run").first.click()
        # The run form shows every parameter with the description from the flow's docstring
        # and the pydantic fields.
        for description in (
            "the whole run configuration",  # the flow docstring's Args
            "waveform archive (SDS tree or any folder)",  # RunConfig fields
            "P probability threshold",  # PickParams fields
        ):
            page.get_by_text(description).first.wait_for()
        submit_run(page, home, failed)
        deployment_id = page.url.split("/deployments/deployment/")[1].split("?")[0]
        page.close()

        runs = _deployment_runs(deployment_id)
        assert len(runs) == 1, f"the Run button should have created exactly one flow run ({failed})"
        with get_client(sync_client=True) as client:
            run = wait_final(client, runs[0].id, 240, home / f"worker-{POOL}.log")
            assert run.state.is_completed(), str(run.state)
            assert client.read_deployment(run.deployment_id).name == DEPLOYMENT
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
                )
            )
        ids = {str(run.id), *(str(c.id) for c in children)}

    picks = Lake(lake).read("picks")
    assert len(picks) > 100 and set(picks["model"]) == {"PhaseNet"}
    assert ids & set(Lake(lake).read("runs")["flow_run_id"])  # the lake's run is this UI run
