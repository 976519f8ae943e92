"""One catalogue per pick set and associator (issue 23, defects 3 and 4), on the Salton Sea sample.

A lake with PhaseNet and EQTransformer picks holds two catalogues of the same earthquakes:
`analyze`, `export` and `lake compare` list and score each on its own, the -M/-W/--associator
filters choose among them and an unknown name is one `error:` line listing the known ones.
Station groups score their own events against the reference events inside their own area.
"""

from __future__ import annotations

import json
from pathlib import Path

import obspy
import pandas as pd
import pytest

from quakelake.catalogs import catalogues
from quakelake.lakehouse import Lake

MODELS = ["EQTransformer", "PhaseNet"]
WEST = ["CI.SAL", "CI.CRR", "CI.ERR", "CI.SWS", "CI.BOM"]
EAST = ["CI.RXH", "CI.WMD", "CI.IMP", "CI.DRE", "CI.SNR"]


@pytest.fixture(scope="module")
def salton(shared_data) -> Path:
    return shared_data / "phasenet_saltonsea_20201001"


def _run(salton: Path, lake_root: Path, *extra: str) -> int:
    from quakelake.cli import main

    return main(
        [
            "run",
            "-d",
            str(salton / "mseed"),
            "-F",
            str(salton / "stations.xml"),
            "--reference",
            "scsn",
            "--reference-file",
            str(salton / "DERIVED_scsn_events_first10min.csv"),
            "--lake",
            str(lake_root),
            "--silent",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def two_pickers(salton, weights_cache, prefect_server, tmp_path_factory) -> Path:
    """A lake picked with PhaseNet and EQTransformer, associated once per pick set, analysed."""
    lake_root = tmp_path_factory.mktemp("two") / "lake"
    assert _run(salton, lake_root, "-M", *MODELS, "-W", "original") == 0
    return lake_root


def _analyze(lake_root: Path, *extra: str) -> int:
    from quakelake.cli import main

    return main(["analyze", "--lake", str(lake_root), "--reference", "scsn", "--silent", *extra])


@pytest.mark.slow
def test_two_pickers_are_two_catalogues_scored_apart(two_pickers):
    lake = Lake(two_pickers)
    events = catalogues.with_catalogue(lake.read("events"))
    per_model = events.groupby("model").size().to_dict()
    assert sorted(per_model) == MODELS  # both pick sets made events of the one SCSN earthquake
    (associator,) = set(events["associator"])
    rows = lake.query(
        "SELECT model, weights, associator, catalogue, tp, fp, fn FROM metrics "
        "WHERE level = 'event' AND group_by = 'associator' ORDER BY model"
    )
    # one row per catalogue, never one pooled row of 13 events against 1
    assert rows["model"].tolist() == MODELS and set(rows["weights"]) == {"original"}
    assert rows["catalogue"].tolist() == [f"{associator} {m}/original" for m in MODELS]
    for row in rows.itertuples(index=False):
        assert row.tp + row.fn == 1  # the one reference event inside the 180 s of waveforms
        assert row.tp + row.fp == per_model[row.model]
    matches = lake.query("SELECT DISTINCT model, catalogue FROM event_matches ORDER BY model")
    assert matches["model"].tolist() == MODELS
    # the lake's snapshot comparison lists the two catalogues apart too
    from quakelake.lakehouse import maintenance

    first = lake.query("SELECT min(run_id) AS r FROM runs")["r"][0]
    compared = maintenance.compare(lake, first)
    ev = compared[compared["tbl"] == "events"]
    assert len(ev) == 2 and sorted(ev["after"]) == sorted(per_model.values())
    one = maintenance.compare(lake, first, models=["PhaseNet"], associators=[associator])
    assert one.loc[one["tbl"] == "events", "after"].tolist() == [per_model["PhaseNet"]]
    assert set(one.loc[one["tbl"] == "picks", "what"]) == {"PhaseNet/original"}


@pytest.mark.slow
def test_unknown_names_are_refused_and_filters_choose(two_pickers, capsys):
    lake = Lake(two_pickers)
    (associator,) = set(lake.read("events")["associator"])
    for args, message in (
        (
            ["--associator", "gama"],
            f"error: --associator gama: not in lake {two_pickers}'s events; ",
        ),
        (
            ["-M", "EQT"],
            f"error: -M/--models EQT: not in lake {two_pickers}; known: EQTransformer, PhaseNet",
        ),
        (["-W", "stead"], f"error: -W/--weights stead: not in lake {two_pickers}; known: original"),
    ):
        capsys.readouterr()
        assert _analyze(two_pickers, *args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(message), err

    from quakelake.cli import main

    first = lake.query("SELECT min(run_id) AS r FROM runs")["r"][0]
    capsys.readouterr()
    code = main(["lake", "compare", "--lake", str(two_pickers), "--as-of", first, "-M", "EQT"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].endswith("known: EQTransformer, PhaseNet")

    # -M chooses one catalogue (its picks and its events)
    assert _analyze(two_pickers, "-M", "EQTransformer", "--associator", associator) == 0
    run_id = lake.query("SELECT max(run_id) AS r FROM runs WHERE command = 'analyze'")["r"][0]
    rows = lake.query(
        "SELECT DISTINCT level, model FROM metrics WHERE run_id = ? AND level IN ('pick', 'event')",
        [run_id],
    )
    assert set(rows["model"]) == {"EQTransformer"} and set(rows["level"]) == {"pick", "event"}

    # export: one catalogue is chosen explicitly; several without a choice is one error line
    out = two_pickers.parent / "events.xml"
    capsys.readouterr()
    assert main(["export", "--lake", str(two_pickers), "--quakeml", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 2 catalogues match (")
    assert all(f"{associator} {m}/original" in err[0] for m in MODELS)
    assert not out.exists()
    assert main(["export", "--lake", str(two_pickers), "--quakeml", str(out), "-M", "EQT"]) == 2
    assert "known: EQTransformer, PhaseNet" in capsys.readouterr().err
    events = catalogues.with_catalogue(lake.read("events"))
    for model in MODELS:
        path = two_pickers.parent / f"{model}.xml"
        code = main(["export", "--lake", str(two_pickers), "--quakeml", str(path), "-M", model])
        assert code == 0
        assert f"catalogue: {associator} {model}/original " in capsys.readouterr().out
        ids = {str(e.resource_id).rsplit("/", 1)[-1] for e in obspy.read_events(str(path))}
        assert ids == set(events.loc[events["model"] == model, "event_id"])


@pytest.mark.slow
def test_groups_score_their_own_area_with_their_own_settings(
    salton, weights_cache, prefect_server, tmp_path
):
    groups_file = tmp_path / "groups.yaml"
    groups_file.write_text(f"WEST: [{', '.join(WEST)}]\nEAST: [{', '.join(EAST)}]\n")
    lake_root = tmp_path / "lake"
    code = _run(
        salton,
        lake_root,
        "-M",
        "PhaseNet",
        "-W",
        "original",
        "-G",
        "WEST",
        "EAST",
        "--groups-file",
        str(groups_file),
    )
    assert code == 0
    lake = Lake(lake_root)
    # each group's association derives its settings from its own stations
    runs = lake.query(
        "SELECT config_json FROM runs WHERE command = 'associate' AND status LIKE 'completed%'"
    )
    boxes = {}
    for text in runs["config_json"]:
        config = json.loads(text)
        _, _, group = catalogues.parse_source(config["pick_source"])
        boxes[group] = tuple(config["resolved_config"]["area"]["longitude"])
    assert sorted(boxes) == ["EAST", "WEST"] and boxes["EAST"] != boxes["WEST"]
    # the SCSN event (33.092 N, -115.585 E) lies in the east group's area, not the west's
    rows = lake.query(
        "SELECT group_value, model, tp, fp, fn FROM metrics WHERE group_by = 'group,associator'"
    ).set_index("group_value")
    assert sorted(rows.index) == ["EAST", "WEST"] and set(rows["model"]) == {"PhaseNet"}
    assert rows.loc["WEST", "tp"] + rows.loc["WEST", "fn"] == 0
    assert rows.loc["EAST", "tp"] + rows.loc["EAST", "fn"] == 1
    events = catalogues.with_catalogue(lake.read("events")) if lake.has_files("events") else None
    for g in ("EAST", "WEST"):
        n = 0 if events is None else int((events["group"] == g).sum())
        assert rows.loc[g, "tp"] + rows.loc[g, "fp"] == n
    # the pooled rows score the whole network's catalogues only: a group's are not in them
    pooled = lake.query("SELECT count(*) AS n FROM metrics WHERE group_by = 'associator'")
    assert pooled["n"][0] == 0


def test_pick_source_labels_parse():
    assert catalogues.parse_source("lake-PhaseNet-original") == ("PhaseNet", "original", "")
    ev = pd.DataFrame(
        {
            "associator": ["gamma", "gamma", "pyocto"],
            "config_fingerprint": ["a1", "b2", "c3"],
            "pick_source": ["lake-PhaseNet-original"] * 2 + ["lake-EQTransformer-stead@WEST-12ab"],
        }
    )
    labels = catalogues.with_catalogue(ev)["catalogue"].tolist()
    assert labels == [
        "gamma PhaseNet/original config a1",
        "gamma PhaseNet/original config b2",
        "pyocto EQTransformer/stead @WEST",
    ]
    with pytest.raises(catalogues.CatalogueError, match="known: gamma, pyocto$"):
        catalogues.check_names("--associator", ["gama"], ev["associator"])
