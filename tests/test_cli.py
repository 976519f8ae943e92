"""The quakelake command line: seed options, the lake, SQL, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from quakelake.cli import main, picker_main

pytestmark = pytest.mark.usefixtures("weights_cache")


def test_pick_twice_then_sql(shared_data, prefect_server, lake_root, capsys):
    folder = shared_data / "phasenet_saltonsea_20201001" / "sac"
    args = [
        "pick",
        "-d",
        str(folder),
        "--lake",
        str(lake_root),
        "-S",
        "BOM",
        "SLV",
        "-C",
        "HH?",
        "-M",
        "PhaseNet",
        "-W",
        "original",
        "instance",
        "-p",
        "0.3",
        "-s",
        "0.3",
        "-b",
        "64",
        "--timing",
        "--silent",
    ]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "2 units (done 2" in out.out and "pick " in out.out  # summary + --timing lines
    assert (
        "'instance' are not available for PhaseNet" in out.err
    )  # missing weights: warned, skipped
    from quakelake.lakehouse import Lake

    files = Lake(lake_root).files("picks")
    assert len(files) == 2
    assert main(args) == 0
    assert "(done 0, skipped 2" in capsys.readouterr().out
    assert Lake(lake_root).files("picks") == files

    query = "SELECT model, weights, phase, count(*) AS n FROM picks GROUP BY ALL ORDER BY phase"
    proc = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", "sql", "--lake", str(lake_root), query],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model", "weights", "phase", "n"]
    from quakelake.lakehouse import Lake

    held = Lake(lake_root).read("picks")["phase"].value_counts()  # what the lake's files hold
    printed = [line.split() for line in lines[1:3]]
    assert printed == [["PhaseNet", "original", ph, str(held[ph])] for ph in ("P", "S")]
    assert lines[-1] == "(2 rows)"


def test_picker_alias_fails_clearly_without_waveforms_in_range(
    shared_data, prefect_server, lake_root, capsys
):
    folder = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    code = picker_main(
        [
            "-v",
            "-D",
            "980101",
            "980110",
            "--directory",
            str(folder),
            "--lake",
            str(lake_root),
            "-M",
            "PhaseNet",
            "-W",
            "original",
        ]
    )
    assert code == 1
    assert "no waveforms in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-T"], "no labelled pick"),
        (["--denoiser"], "--denoiser: weights 'original' of DeepDenoiser"),
        (["-G", "a"], "-G/--groups"),
        (["-p", "2"], "-p/--pwave"),
        (["-M", "NoSuchNet"], "not a SeisBench waveform model"),
    ],
)
def test_unavailable_options_and_bad_values_say_so(
    extra, message, shared_data, tmp_path, capsys, prefect_server
):
    folder = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    assert main(["pick", "-d", str(folder), "--lake", str(tmp_path / "l"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_sql_on_empty_lake_names_missing_table(shared_data, tmp_path, capsys):
    assert main(["sql", "--lake", str(tmp_path), "SELECT * FROM picks"]) == 2
    assert f"error: --lake: {tmp_path} holds no lake" in capsys.readouterr().err
    salton = shared_data / "phasenet_saltonsea_20201001"
    assert (
        main(
            [
                "import-catalog",
                str(salton / "DERIVED_scsn_events_first10min.csv"),
                "--name",
                "scsn",
                "--lake",
                str(tmp_path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["sql", "--lake", str(tmp_path), "SELECT * FROM picks"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Tables with data in lake" in err[0]
    assert "reference_events" in err[0]


def test_import_reference_then_run_with_analysis(
    shared_data, prefect_server, lake_root, tmp_path, capsys
):
    salton = shared_data / "phasenet_saltonsea_20201001"
    assert (
        main(
            [
                "import-catalog",
                str(salton / "DERIVED_phasenet_ref_picks_first180s.csv"),
                str(salton / "DERIVED_scsn_events_first10min.csv"),
                "--name",
                "scsn",
                "--lake",
                str(lake_root),
            ]
        )
        == 0
    )
    assert "184 picks" in capsys.readouterr().out
    report = tmp_path / "report"
    assert (
        main(
            [
                "run",
                "-d",
                str(salton / "mseed"),
                "-F",
                str(salton / "stations.xml"),
                "--lake",
                str(lake_root),
                "-M",
                "PhaseNet",
                "-W",
                "original",
                "--reference",
                "scsn",
                "--report-dir",
                str(report),
                "--silent",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "analysis" in out and (report / "report.md").is_file()
    recall = main(
        [
            "sql",
            "--lake",
            str(lake_root),
            "--format",
            "csv",
            "SELECT phase, recall FROM metrics WHERE group_by = ? ORDER BY phase",
            "--param",
            "model,weights,phase",
        ]
    )
    assert recall == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["P", "S"]
    assert all(float(r.split(",")[1]) >= 0.8 for r in rows)
    # The one SCSN event inside the 180 s (M2.4, 00:02:21) is matched by an associated event.
    assert (
        main(
            [
                "sql",
                "--lake",
                str(lake_root),
                "--format",
                "csv",
                "SELECT tp, fn FROM metrics WHERE level = 'event' AND group_by = 'associator'",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1:] == ["1,0"]


def test_run_associates_with_gamma_then_pyocto_on_external_picks(
    shared_data, prefect_server, lake_root, tmp_path, capsys
):
    salton = shared_data / "phasenet_saltonsea_20201001"
    assert (
        main(
            [
                "run",
                "-d",
                str(salton / "mseed"),
                "-F",
                str(salton / "stations.xml"),
                "--lake",
                str(lake_root),
                "-M",
                "PhaseNet",
                "-W",
                "original",
                "--silent",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(gamma, lake-PhaseNet-original)" in out
    events = main(
        [
            "sql",
            "--lake",
            str(lake_root),
            "--format",
            "csv",
            "SELECT time, latitude, longitude FROM events WHERE associator = 'gamma'",
        ]
    )
    assert events == 0
    rows = [r.split(",") for r in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) >= 1
    # The SCSN M2.4 at 00:02:21.07 (33.092 N, -115.585 E) is among them, within 2 s and ~8 km.
    assert any(
        abs((pd.Timestamp(t) - pd.Timestamp("2020-10-01T00:02:21.07Z")).total_seconds()) <= 2
        and abs(float(la) - 33.092) < 0.08
        and abs(float(lo) + 115.585) < 0.09
        for t, la, lo in rows
    )

    # The original tool's per-day/network/station files, for existing users.
    assert (
        main(
            [
                "export",
                "--lake",
                str(lake_root),
                "-D",
                "201001",
                "201001",
                "--classified",
                str(tmp_path / "x"),
                "--associated",
                str(tmp_path / "x"),
            ]
        )
        == 0
    )
    classified = sorted(
        (tmp_path / "x" / "classified" / "2020" / "2020-10-01" / "CI").glob("*.csv")
    )
    stations_with_picks = set(_lake_picks(lake_root, None)["station"])
    assert {f.name.split(".")[1] for f in classified} == stations_with_picks and len(
        stations_with_picks
    ) >= 14
    assert classified[0].name == "CI.BOM.PhaseNet.original.csv"
    total = sum(len(pd.read_csv(f)) for f in classified)
    assert total == len(_lake_picks(lake_root, None))
    assert (tmp_path / "x" / "associated" / "2020" / "2020-10-01" / "events.csv").is_file()
    capsys.readouterr()

    # The reference picks as an external pick table, associated with PyOcto, exported.
    quakeml = tmp_path / "events.xml"
    assert (
        main(
            [
                "associate",
                "--lake",
                str(lake_root),
                "--pyocto",
                "--picks",
                str(salton / "DERIVED_phasenet_ref_picks_first180s.csv"),
                "-F",
                str(salton / "stations.xml"),
                "--quakeml",
                str(quakeml),
                "--export",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(pyocto, " in out and "QuakeML:" in out
    import obspy

    catalog = obspy.read_events(str(quakeml))
    assert all(len(ev.picks) >= 4 for ev in catalog)
    # The SCSN M2.4 (00:02:21.07, 33.092 N, -115.585 E) is found from the analyst-style picks too.
    origins = [ev.preferred_origin() or ev.origins[0] for ev in catalog]
    assert any(
        abs(o.time - obspy.UTCDateTime("2020-10-01T00:02:21.07")) <= 2
        and abs(o.latitude - 33.092) < 0.08
        and abs(o.longitude + 115.585) < 0.09
        for o in origins
    ), [(str(o.time), o.latitude, o.longitude) for o in origins]
    assert list((tmp_path / "out" / "associated").rglob("events.csv"))


def test_associate_refuses_pyrocko_and_picks_without_stations(shared_data, tmp_path, capsys):
    picks = shared_data / "phasenet_saltonsea_20201001" / "DERIVED_phasenet_ref_picks_first180s.csv"
    assert main(["associate", "--lake", str(tmp_path), "--pyrocko"]) == 2
    assert "add --velocity-model FILE" in capsys.readouterr().err
    assert main(["associate", "--lake", str(tmp_path), "--picks", str(picks)]) == 2
    assert "-F/--file" in capsys.readouterr().err


def test_pyrocko_1d_travel_times_from_a_model_file(shared_data, prefect_server, lake_root, capsys):
    chile = shared_data / "pyocto_chile_test"
    assert (
        main(
            [
                "associate",
                "--lake",
                str(lake_root),
                "--pyocto",
                "--pyrocko",
                "--velocity-model",
                str(chile / "graeber.csv"),
                "--picks",
                str(chile / "picks.parquet"),
                "-F",
                str(chile / "stations.parquet"),
            ]
        )
        == 0
    )
    assert "(pyocto, " in capsys.readouterr().out
    from quakelake.lakehouse import Lake

    lake = Lake(lake_root)
    run = lake.query("SELECT config_json FROM runs WHERE command = 'associate'")["config_json"][0]
    assert '"kind": "1d"' in run and "graeber.csv" in run
    events = lake.read("events")
    assert (events["n_p"] >= 3).all()
    # Outcome against PyOcto's labelled test set (50 true events, each pick labelled).
    truth = pd.read_parquet(chile / "picks.parquet")
    truth["pick_id"] = (
        truth["station"]
        + "|"
        + truth["phase"]
        + "|"
        + pd.to_datetime(truth["time"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    )
    label = dict(zip(truth["pick_id"], truth["event"], strict=True))
    assigned = lake.read("assignments")
    assigned["true_event"] = assigned["pick_id"].map(label)
    assert assigned["true_event"].notna().all()  # every assigned pick is one of the input picks
    majority = assigned.groupby("event_id")["true_event"].agg(lambda s: s.mode().iloc[0])
    purity = (assigned["true_event"] == assigned["event_id"].map(majority)).mean()
    recovered = set(majority[majority >= 0])
    # Measured: 37 events, 37 distinct true events, 99.8 % of their picks from that event.
    assert len(recovered) == len(events) >= 35  # no true event split in two, no noise-only event
    assert purity >= 0.99


@pytest.mark.integration
def test_run_with_download_from_a_loopback_fdsn_service(
    shared_data, prefect_server, lake_root, tmp_path, capsys
):
    from fdsn_servers import DataselectServer, FdsnServer

    salton = shared_data / "phasenet_saltonsea_20201001"
    archive = tmp_path / "archive"
    with (
        DataselectServer(salton / "mseed", tmp_path / "dataselect") as ds,
        FdsnServer(salton / "stations.xml", dataselect=ds.service_url) as front,
    ):
        args = [
            "run",
            "--download",
            "--client",
            front.url,
            "-d",
            str(archive),
            "-D",
            "201001",
            "201001",
            "-S",
            "BOM",
            "COA",
            "CRR",
            "SLV",
            "SWS",
            "WES",
            "WMD",
            "YUH2",
            "-C",
            "HH?",
            "--lake",
            str(lake_root),
            "-M",
            "PhaseNet",
            "-W",
            "original",
            "--silent",
        ]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "8 station-days (ok 8" in out and "8 units (done 8" in out
        assert "(gamma, lake-PhaseNet-original)" in out  # stations came with the download
        assert main(args) == 0
        again = capsys.readouterr().out
        assert "(ok 0, skipped 8" in again and "(done 0, skipped 8" in again
    assert len(list((archive / "2020").rglob("*.2020.275"))) == 24


def test_interactive_review_shows_waveforms_probabilities_and_picks(
    shared_data, prefect_server, lake_root, capsys
):
    """The seed's first example: picker -v --directory DIR --interactive (headless: Agg shows nothing)."""
    from quakelake.analysis.review import station_day_views
    from quakelake.config import PickParams, StationSelection, TimeWindow

    folder = shared_data / "phasenet_saltonsea_20201001" / "mseed"
    assert (
        picker_main(
            [
                "-v",
                "--directory",
                str(folder),
                "--interactive",
                "--lake",
                str(lake_root),
                "-S",
                "WMD",
                "YUH2",
                "-M",
                "PhaseNet",
                "-W",
                "original",
            ]
        )
        == 0
    )
    assert "reviewed 2 instrument-days" in capsys.readouterr().out
    views = list(
        station_day_views(
            lake_root,
            folder,
            TimeWindow(),
            StationSelection(stations=["WMD"]),
            PickParams(models=["PhaseNet"], weights=["original"]),
        )
    )
    assert len(views) == 1
    axes = views[0].axes
    assert [ax.get_ylabel() for ax in axes] == ["HHE", "HHN", "HHZ", "probability"]
    assert (
        max(line.get_ydata().max() for line in axes[-1].get_lines() if len(line.get_ydata()) > 2)
        > 0.5
    )
    n_picks = len(_lake_picks(lake_root, "WMD"))
    assert n_picks > 0 and len(axes[0].get_lines()) == 1 + n_picks  # the trace + one line per pick


def _lake_picks(lake_root, station):
    """The lake picks of one station (all stations when None)."""
    from quakelake.lakehouse import Lake

    if station is None:
        return Lake(lake_root).read("picks")
    from quakelake.lakehouse import queries

    return queries.picks(Lake(lake_root), station=station)


def test_demo_without_data_says_how_to_give_some(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QUAKELAKE_DEMO_DATA", raising=False)
    assert main(["demo", "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert "quakelake demo --data DIR" in err and "QUAKELAKE_DEMO_DATA" in err
    assert not (tmp_path / "lake").exists()


def test_help_documents_every_option_with_its_default():
    """Every option says what it does and its default; quakelake --version names the versions."""
    from quakelake.cli import build_parser
    from quakelake.config import RunConfig

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        for action in sub._actions:
            if not action.option_strings or action.help == "show this help message and exit":
                continue
            assert action.help, f"{name} {action.option_strings} has no help text"
            text = action.help.lower()
            assert (
                "default" in text
                or "required" in text
                or "not available yet" in text
                or action.nargs == 0
            ), f"{name} {action.option_strings}: no default in {action.help!r}"
    pick = {a.dest: a.help for a in commands["pick"]._actions}
    cfg = RunConfig()
    assert f"(default {cfg.pick.p_threshold})" in pick["pwave"]
    assert f"(default {cfg.pick.batch_size})" in pick["batch"]
    assert f"(default {cfg.execution.workers})" in pick["workers"]
    assert f"default {cfg.pick.models[0]}" in pick["models"]
    proc = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", "--version"], capture_output=True, text=True
    )
    assert (
        proc.returncode == 0 and proc.stdout.startswith("quakelake ") and "seisbench" in proc.stdout
    )
    proc = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", "pick", "--help"], capture_output=True, text=True
    )
    assert "examples:" in proc.stdout and "exit status:" in proc.stdout
