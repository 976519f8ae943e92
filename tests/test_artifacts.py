"""What the Prefect UI shows: artifacts on the pipeline flow run itself, plots inside the analysis report."""

from __future__ import annotations

import base64
import re

import pytest

from quakelake.analysis.report import embed_images

pytestmark = pytest.mark.usefixtures("weights_cache")


def _artifacts(flow_run_id=None, key=None):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    flt = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]) if flow_run_id else None,
        key=ArtifactFilterKey(any_=[key]) if key else None,
    )
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=flt)


@pytest.mark.slow
def test_pipeline_flow_run_carries_its_own_summary_artifact(prefect_server, shared_data, lake_root):
    from quakelake.config import RunConfig
    from quakelake.flows.pipeline import run_pipeline

    cfg = RunConfig.model_validate(
        {
            "directory": shared_data / "phasenet_saltonsea_20201001" / "mseed",
            "lake": lake_root,
            "selection": {"stations": ["BOM", "SLV"]},
            "associate": None,
            "pick": {"models": ["PhaseNet"], "weights": ["original"]},
            "verbosity": 0,
        }
    )
    state = run_pipeline(cfg, return_state=True)
    out = state.result()
    artifacts = _artifacts(flow_run_id=state.state_details.flow_run_id)
    assert [a.key for a in artifacts] == ["pipeline-report"]
    text = artifacts[0].data
    assert f"- run `{out['pick']['run_id']}`: 2 units (done 2, skipped 0, failed 0)" in text
    assert "- models: PhaseNet/original" in text
    picks = out["pick"]["picks_per_phase"]
    assert f"- picks: P {picks['P']}, S {picks['S']}" in text


def test_report_images_are_inlined_for_the_ui(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "pick_residuals.png")
    plt.close(fig)
    text = "# Analysis\n\n![pick_residuals](pick_residuals.png)\n\n![gone](missing.png)\n"
    inlined = embed_images(text, tmp_path)
    data = re.search(
        r"!\[pick_residuals\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", inlined
    ).group(1)
    assert base64.b64decode(data) == (tmp_path / "pick_residuals.png").read_bytes()
    assert "![gone](missing.png)" in inlined  # a missing file stays a plain link
