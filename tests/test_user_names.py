"""A name the user gives that becomes a path is refused before anything is written (issue 21 item 6).

Each case runs the real ``quakelake`` command in its own process on the real Salton Sea sample.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli_run import quakelake as _quakelake

from quakelake.errors import EXIT_BAD_INPUT, name_problem

pytestmark = pytest.mark.usefixtures("weights_cache")

SALTON = "phasenet_saltonsea_20201001"
PICKS_CSV = "DERIVED_phasenet_ref_picks_first180s.csv"


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def labelled_lake(shared_data, tmp_path_factory) -> Path:
    """A lake with reference labels (imported once), so that training would cut windows."""
    lake = tmp_path_factory.mktemp("labelled") / "lake"
    out = _quakelake(
        "import-catalog", str(shared_data / SALTON / PICKS_CSV), "--name", "pn", "--lake", str(lake)
    )
    assert out.returncode == 0, out.stderr
    return lake


@pytest.mark.parametrize("name", ["../../../evil", "../evil", "/tmp/evil", ".hidden", "a/b", ".."])
def test_train_refuses_a_name_that_is_a_path_before_writing(
    labelled_lake, shared_data, tmp_path, name
):
    # a copy of the labelled lake deep in this test's folder: ../ names land inside tmp_path
    lake = tmp_path / "a" / "b" / "c" / "lake"
    lake.parent.mkdir(parents=True)
    shutil.copytree(labelled_lake, lake)
    before = _tree(tmp_path)
    cache = Path(os.environ["SEISBENCH_CACHE_ROOT"])
    cache_before = _tree(cache)
    out = _quakelake(
        "train",
        "-d",
        str(shared_data / SALTON / "mseed"),
        "--lake",
        str(lake),
        "--reference",
        "pn",
        "--epochs",
        "1",
        "--name",
        name,
    )
    assert out.returncode == EXIT_BAD_INPUT, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "--name" in lines[0] and "not a plain name" in lines[0]
    assert _tree(tmp_path) == before
    assert _tree(cache) == cache_before
    assert not Path("/tmp/evil").exists()


def test_import_catalog_refuses_a_reference_name_that_is_a_path(shared_data, tmp_path):
    lake = tmp_path / "lake"
    out = _quakelake(
        "import-catalog",
        str(shared_data / SALTON / PICKS_CSV),
        "--name",
        "../x",
        "--lake",
        str(lake),
    )
    assert out.returncode == EXIT_BAD_INPUT, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--name" in lines[0] and "not a plain name" in lines[0]
    assert not lake.exists() and list(tmp_path.iterdir()) == []


def test_the_name_rule_keeps_names_inside_their_folder():
    for bad in ("", ".", "..", "../x", "a/b", "a\\b", "-x", ".x", "x y", "a..b", "x" * 101):
        assert name_problem(bad, dots=True), bad
    for good in ("scsn", "ogs", "PhaseNet_pn_20260101", "ingv-2020", "a+b"):
        assert name_problem(good) is None
    assert name_problem("ingv.2020", dots=True) is None and name_problem("ingv.2020")
