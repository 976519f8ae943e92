"""Station groups (-G): definitions, bad input, and picking/association/analysis per group on real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from quakelake.lakehouse import Lake
from quakelake.params import groups

WEST = ["CI.SAL", "CI.CRR", "CI.ERR", "CI.SWS", "CI.BOM"]
EAST = ["CI.RXH", "CI.WMD", "CI.IMP", "CI.DRE", "CI.SNR"]


@pytest.fixture
def groups_file(tmp_path) -> Path:
    path = tmp_path / "groups.yaml"
    path.write_text(f'WEST: [{", ".join(WEST)}]\nEAST: "{" ".join(EAST)}"\nELSEWHERE: [XX.*]\n')
    return path


def test_groups_come_from_the_config_and_a_groups_file(groups_file, tmp_path):
    chosen = groups.resolve({"ALL": ["CI.*"], "EAST": ["CI.COA"]}, groups_file, ["EAST", "ALL"])
    assert chosen == {"EAST": EAST, "ALL": ["CI.*"]}  # the file's definition wins over the config's
    assert groups.resolve({"ALL": ["CI.*"]}, None, []) == {}
    assert groups.in_group("CI", "BOM", ["CI.*"]) and groups.in_group("CI", "BOM", ["BOM"])
    assert not groups.in_group("CI", "BOM", ["IV.*", "CI.B?X"])
    with pytest.raises(
        groups.GroupError, match=r"unknown group FVG \(defined: ALL, EAST, ELSEWHERE, WEST\)"
    ):
        groups.resolve({"ALL": ["CI.*"]}, groups_file, ["FVG"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("FVG: 3\n")
    with pytest.raises(
        groups.GroupError, match="--groups-file .*group 'FVG' must list NET.STA patterns"
    ):
        groups.resolve({}, bad, ["FVG"])
    with pytest.raises(
        groups.GroupError, match="group ELSEWHERE .* matches no station of the archive"
    ):
        groups.check_matches(
            groups.resolve({}, groups_file, ["WEST", "ELSEWHERE"]), {("CI", "BOM")}, "the archive"
        )


@pytest.mark.parametrize(
    "names, message",
    [
        (
            ["ELSEWHERE"],
            "error: -G/--groups: group ELSEWHERE ['XX.*'] matches no station of archive",
        ),
        (["FVG"], "error: -G/--groups: unknown group FVG"),
    ],
)
def test_a_bad_group_is_refused_before_any_work(
    salton_minute, groups_file, weights_cache, tmp_path, capsys, names, message
):
    # weights_cache: the model and weights are checked (offline) before the groups
    from quakelake.cli import main

    lake = tmp_path / "lake"
    for command in ("pick", "run"):
        code = main(
            [
                command,
                "-d",
                str(salton_minute / "mseed"),
                "-G",
                *names,
                "--groups-file",
                str(groups_file),
                "--lake",
                str(lake),
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not lake.exists()


@pytest.mark.slow
def test_run_picks_associates_and_scores_per_group_with_an_ensemble(
    salton, groups_file, weights_cache, prefect_server, tmp_path, capsys
):
    from quakelake.cli import main

    lake_root = tmp_path / "lake"
    code = main(
        [
            "run",
            "-d",
            str(salton / "mseed"),
            "-M",
            "PhaseNet",
            "-W",
            "original",
            "volpick",
            "--ensemble",
            "-G",
            "WEST",
            "EAST",
            "--groups-file",
            str(groups_file),
            "-F",
            str(salton / "stations.xml"),
            "--reference",
            "pn",
            "--reference-file",
            str(salton / "DERIVED_phasenet_ref_picks_first180s.csv"),
            "--lake",
            str(lake_root),
            "--silent",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lake = Lake(lake_root)
    sets = [
        ("PhaseNet", "original"),
        ("PhaseNet", "volpick"),
        ("ensemble", "mean:PhaseNet/original+PhaseNet/volpick"),
    ]

    # Picking covered the groups' stations only.
    picked = lake.query("SELECT DISTINCT network || '.' || station AS s FROM picks")["s"]
    assert sorted(picked) == sorted(WEST + EAST)
    assert sorted(
        map(tuple, lake.query("SELECT DISTINCT model, weights FROM picks").values.tolist())
    ) == sorted(sets)

    # One association per pick set and group, each on its group's picks only.
    runs = lake.query(
        "SELECT json_extract_string(config_json, '$.pick_source') AS src FROM runs "
        "WHERE command = 'associate'"
    )["src"]
    assert sorted(groups.source_group(s) for s in runs) == ["EAST"] * 3 + ["WEST"] * 3
    assert {s.split("@")[0] for s in runs} == {f"lake-{m}-{w}" for m, w in sets}
    if lake.has_files("assignments"):
        assigned = lake.query(
            "SELECT e.pick_source, a.station_id FROM assignments a JOIN events e USING (event_id)"
        )
        for src, station_id in assigned.itertuples(index=False):
            members = WEST if groups.source_group(src) == "WEST" else EAST
            assert ".".join(station_id.split(".")[:2]) in members

    # The analyzer's metrics per group: each group's rows count exactly the picks on its stations,
    # and the two disjoint groups together give the whole network's figures.
    metrics = lake.query(
        "SELECT group_by, group_value, model, weights, tp, fp, fn FROM metrics "
        "WHERE level = 'pick' AND group_by IN ('model,weights', 'group,model,weights')"
    )
    for model, weights in sets:
        rows = metrics[(metrics["model"] == model) & (metrics["weights"] == weights)]
        whole = rows[rows["group_by"] == "model,weights"].iloc[0]
        per = rows[rows["group_by"] == "group,model,weights"].set_index("group_value")
        assert sorted(per.index) == ["EAST", "WEST"]
        for g, members in (("WEST", WEST), ("EAST", EAST)):
            # the analyzer judges picks where the station has waveforms, 2 s (edge_s) from their ends
            n = lake.query(
                "SELECT count(*) AS n FROM picks p JOIN (SELECT network, station, min(start) AS s, "
                'max("end") AS e FROM waveform_index GROUP BY ALL) w USING (network, station) '
                "WHERE model = ? AND weights = ? AND list_contains(?, p.network || '.' || p.station) "
                "AND p.time >= w.s + INTERVAL 2 SECOND AND p.time <= w.e - INTERVAL 2 SECOND",
                [model, weights, members],
            )["n"][0]
            assert per.loc[g, "tp"] + per.loc[g, "fp"] == n
        for col in ("tp", "fp", "fn"):
            assert per[col].sum() == whole[col]

    # Events per group: this reference has picks only, so every event of a group is a false positive.
    per_group = lake.query(
        "SELECT group_value, sum(fp) AS fp FROM metrics WHERE group_by = 'group,associator' "
        "GROUP BY ALL"
    )
    if lake.has_files("events"):
        from quakelake.catalogs.evaluation import is_rejected

        events = lake.read("events")
        reported = events[~is_rejected(events)]  # rejected origins are not scored
        counts = reported["pick_source"].map(groups.source_group).value_counts()
        assert sorted(per_group["group_value"]) == ["EAST", "WEST"]
        for g, fp in per_group.itertuples(index=False):
            assert fp == counts.get(g, 0)
    assert "WEST" in out and "EAST" in out
    report = next((lake_root / "reports").rglob("report.md")).read_text()
    assert "Picks per group x model x weights" in report
