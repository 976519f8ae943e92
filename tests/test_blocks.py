"""Prefect blocks: typed, described, registered with a real server, saved and loaded back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from quakelake.blocks import (
    ComputeClusterBlock,
    FdsnAccessBlock,
    LakeBlock,
    load_compute,
    load_fdsn_access,
    load_lake,
)
from quakelake.blocks.fdsn import client_text
from quakelake.blocks.fields import sentence, settings_fields
from quakelake.flows.compute import SlurmSettings
from quakelake.flows.runners import make_task_runner
from quakelake.params.compute import ComputeSettings
from quakelake.params.download import DownloadParams, FdsnClientSpec

BLOCKS = [LakeBlock, FdsnAccessBlock, ComputeClusterBlock]
# Every settings field a block holds, with the settings model it comes from.
DERIVED = [(block, name) for block in (ComputeClusterBlock, FdsnAccessBlock) for name in block.held]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.__name__)
def test_block_standards(block: type[Block]):
    assert block.get_description()
    for name, field in block.model_fields.items():
        assert field.description and field.description.endswith("."), f"{block.__name__}.{name}"
    example = block.get_code_example()
    assert f"from quakelake.blocks import {block.__name__}" in example
    assert f'{block.__name__}.load("BLOCK_NAME")' in example


@pytest.mark.parametrize(("block", "name"), DERIVED, ids=[f"{b.__name__}.{n}" for b, n in DERIVED])
def test_block_fields_are_the_settings_fields(block, name):
    """Same default, description, type and limits as the settings field: nothing copied by hand."""
    ours, theirs = block.model_fields[name], block.settings_model.model_fields[name]
    assert ours.description == sentence(theirs.description)
    assert ours.description.rstrip(".") == theirs.description.rstrip(".")
    assert ours.metadata == theirs.metadata  # ge/le/gt ...
    default = ours.get_default(call_default_factory=True)
    expected = theirs.get_default(call_default_factory=True)
    if name == "clients":  # stored as the names/URLs a user types, parsed into the same specs
        assert ours.annotation == list[str]
        assert [FdsnClientSpec.parse(text) for text in default] == expected
    else:
        assert ours.annotation == theirs.annotation
        assert default == expected


def test_the_blocks_hold_no_field_outside_the_settings_but_the_secret_and_the_lake():
    assert set(ComputeClusterBlock.model_fields) == set(ComputeClusterBlock.held)
    assert set(FdsnAccessBlock.model_fields) == {*FdsnAccessBlock.held, "token"}
    assert set(FdsnAccessBlock.held) <= set(DownloadParams.model_fields)
    assert set(ComputeClusterBlock.held) <= set(ComputeSettings.model_fields)


def test_a_settings_change_is_a_block_change():
    """A default, a limit or a description edited in the settings model reaches the block."""
    from pydantic import Field, ValidationError

    class Edited(ComputeSettings):
        workers: int = Field(7, ge=3, description="edited in params")

    class EditedBlock(Block, settings_fields(Edited, ["runner", "workers"])):
        _block_type_slug = "quakelake-test-edited"

    assert EditedBlock().workers == 7
    assert EditedBlock.model_fields["workers"].description == "edited in params."
    schema = EditedBlock.model_json_schema()["properties"]["workers"]
    assert (schema["default"], schema["minimum"], schema["description"]) == (
        7,
        3,
        "edited in params.",
    )
    with pytest.raises(ValidationError, match="greater than or equal to 3"):
        EditedBlock(workers=2)
    assert ComputeClusterBlock.model_fields["workers"].default == 2  # the real block is untouched


def test_a_block_client_is_written_as_a_user_types_it():
    assert client_text(FdsnClientSpec.parse("ogs")) == "OGS"
    assert client_text(FdsnClientSpec.parse("http://127.0.0.1:8080/")) == "http://127.0.0.1:8080"


def test_register_with_the_cli_then_save_and_load(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "quakelake.blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully registered 3 blocks" in " ".join(proc.stdout.split())

    with get_client(sync_client=True) as client:
        types = {cls: client.read_block_type_by_slug(cls.get_block_type_slug()) for cls in BLOCKS}
        schemas = {
            cls: client.get_most_recent_block_schema_for_block_type(t.id)
            for cls, t in types.items()
        }
    assert {t.name for t in types.values()} == {
        "QuakeLake Lake",
        "QuakeLake FDSN Access",
        "QuakeLake Compute Cluster",
    }
    for cls, schema in schemas.items():  # the server holds each block's fields, described
        fields = schema.fields["properties"]
        assert set(fields) == set(cls.model_fields), cls.__name__
        assert all(f.get("description") for f in fields.values()), cls.__name__
    for cls, name in DERIVED:  # ... as the settings models describe them (what the UI shows)
        field = schemas[cls].fields["properties"][name]
        assert field["description"] == sentence(cls.settings_model.model_fields[name].description)
    workers = schemas[ComputeClusterBlock].fields["properties"]["workers"]
    assert (workers["default"], workers["minimum"], workers["maximum"]) == (2, 1, 4096)
    assert schemas[FdsnAccessBlock].fields["secret_fields"] == ["token"]  # stored encrypted

    LakeBlock(root=str(tmp_path / "lake")).save("test-lake", overwrite=True)
    FdsnAccessBlock(
        clients=["INGV", "http://127.0.0.1:8080"], token="s3cret", timeout=30, retries=1
    ).save("test-fdsn", overwrite=True)
    leonardo = SlurmSettings(account="IscrC_QUAKE", gpus_per_job=4, cores=32, memory="480GB")
    ComputeClusterBlock(runner="slurm", slurm=leonardo).save("test-leonardo", overwrite=True)

    assert load_lake("test-lake") == tmp_path / "lake"
    access = load_fdsn_access("test-fdsn")
    assert access.clients == ["INGV", "http://127.0.0.1:8080"]
    assert access.token.get_secret_value() == "s3cret" and "s3cret" not in repr(access)
    params = access.download_params(DownloadParams(backoff=5.0, max_concurrent=9))
    assert [c.url for c in params.clients] == ["INGV", "http://127.0.0.1:8080"]
    assert (params.timeout, params.retries) == (30.0, 1)  # the block's
    assert params.backoff == 5.0  # not held by the block: the run's
    assert params.max_concurrent == 4  # held: the block's (its default, DownloadParams')
    settings = load_compute("test-leonardo")
    assert settings.runner == "slurm" and settings.slurm == leonardo
    runner = make_task_runner(settings)
    assert "--gres=gpu:4" in runner.cluster_kwargs["job_extra_directives"]

    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(
            "test-fdsn", "quakelake-fdsn-access", include_secrets=False
        )
    assert doc.data["token"] != "s3cret"  # the API returns the secret obscured

    with pytest.raises(ValueError, match="no QuakeLake Lake block named 'absent'"):
        load_lake("absent")


def test_lake_path_expands_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QL_TEST_WORK", str(tmp_path))
    assert LakeBlock(root="$QL_TEST_WORK/lake").path() == tmp_path / "lake"


def test_pipeline_takes_lake_and_compute_from_block_names(
    prefect_server, shared_data, weights_cache, tmp_path
):
    from quakelake.config import RunConfig
    from quakelake.flows.pipeline import run_pipeline
    from quakelake.lakehouse import Lake

    LakeBlock(root=str(tmp_path / "block-lake")).save("pipeline-lake", overwrite=True)
    ComputeClusterBlock(runner="threads", workers=1).save("pipeline-threads", overwrite=True)
    config = RunConfig(
        directory=shared_data / "phasenet_saltonsea_20201001" / "mseed",
        lake=tmp_path / "not-this-one",
        selection={"stations": ["WMD"]},
        pick={"models": ["PhaseNet"], "weights": ["original"]},
        associate=None,
    )
    out = run_pipeline(config, lake_block="pipeline-lake", compute_block="pipeline-threads")
    assert out["pick"]["done"] == 1
    assert not (tmp_path / "not-this-one").exists()
    # the block's lake holds WMD's picks: those of plain SeisBench on the same file
    import obspy

    from quakelake.picking import models as picking

    wmd = shared_data / "phasenet_saltonsea_20201001" / "mseed" / "CI.WMD.2020-10-01T00:00.mseed"
    model = picking.load_model("PhaseNet", "original", "cpu")
    plain = model.classify(obspy.read(str(wmd)), **picking.classify_kwargs(config.pick)).picks
    picks = Lake(tmp_path / "block-lake").read("picks")
    assert picks["phase"].value_counts().to_dict() == Counter(p.phase for p in plain)


def test_one_precedence_for_the_command_line_and_the_pipeline_flow(prefect_server, tmp_path):
    """defaults < config file (or the flow's config) < blocks < command line, in both entry points."""
    from quakelake.cli import build_parser, load_config
    from quakelake.config import ConfigError, RunConfig
    from quakelake.flows.settings import resolve_settings

    LakeBlock(root=str(tmp_path / "block-lake")).save("precedence-lake", overwrite=True)
    ComputeClusterBlock(runner="threads", workers=1).save("precedence-threads", overwrite=True)
    file = tmp_path / "run.yaml"
    file.write_text(
        f"lake: {tmp_path / 'file-lake'}\n"
        "execution: {workers: 3, associate_on: runner}\n"
        "pick: {p_threshold: 0.4, s_threshold: 0.25}\n"
    )
    blocks = {"lake_block": "precedence-lake", "compute_block": "precedence-threads"}

    cli = load_config(
        build_parser().parse_args(
            ["pick", "-d", str(tmp_path), "-c", str(file), "-p", "0.2"]
            + ["--lake-block", "precedence-lake", "--compute-block", "precedence-threads"]
        )
    )
    flow = resolve_settings(RunConfig.model_validate_json(cli.model_dump_json()), **blocks)
    for cfg in (cli, flow):
        assert cfg.lake == tmp_path / "block-lake"  # the block beats the file
        assert cfg.execution.workers == 1  # the block beats the file
        assert cfg.execution.associate_on == "runner"  # what the block does not hold: the file's
        assert (cfg.pick.p_threshold, cfg.pick.s_threshold) == (0.2, 0.25)  # option > file
    explicit = load_config(
        build_parser().parse_args(
            ["pick", "-d", str(tmp_path), "--lake", str(tmp_path / "mine")]
            + ["--lake-block", "precedence-lake"]
        )
    )
    assert explicit.lake == tmp_path / "mine"  # the command line beats the block
    with pytest.raises(ConfigError, match=r"^--lake-block: no QuakeLake Lake block named 'nope'"):
        resolve_settings(None, lake_block="nope")
