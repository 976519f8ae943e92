"""Fine-tuning on the lake's labelled picks: SeisBench dataset from real Salton Sea windows, training, weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest

from quakelake.catalogs import import_catalog
from quakelake.cli import main
from quakelake.lakehouse import Lake
from quakelake.picking import models as picking
from quakelake.picking import training


@pytest.fixture
def labelled_lake(salton, tmp_path) -> Path:
    lake = tmp_path / "lake"
    import_catalog(lake, [salton / "DERIVED_phasenet_ref_picks_first180s.csv"], "pn")
    return lake


def _reference(salton: Path) -> pd.DataFrame:
    ref = pd.read_csv(salton / "DERIVED_phasenet_ref_picks_first180s.csv")
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    return ref


def test_training_without_reference_name_or_labels_says_which_option(
    tmp_path, weights_cache, salton, capsys
):
    with pytest.raises(training.TrainingError, match="--reference"):
        training.labelled_picks(tmp_path, training.TrainParams(labels="reference"))
    # an empty lake: no pseudo-label either; one error line, nothing written (no lake, no weights)
    code = main(
        [
            "train",
            "-d",
            str(salton / "mseed"),
            "--lake",
            str(tmp_path / "empty"),
            "-M",
            "PhaseNetLight",
            "-W",
            "ethz",
            "--name",
            "never_written",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2
        and len(err) == 1
        and err[0].startswith("error: ")
        and "no labelled pick" in err[0]
    )
    assert not (tmp_path / "empty").exists()
    assert "never_written" not in training.cached_weights("PhaseNetLight")


def test_unknown_model_or_parent_weights_fail_before_any_window(
    labelled_lake, salton, weights_cache, capsys
):
    assert (
        main(
            [
                "train",
                "-d",
                str(salton / "mseed"),
                "--lake",
                str(labelled_lake),
                "--reference",
                "pn",
                "-M",
                "EQTransformer",
            ]
        )
        == 2
    )
    assert "-M/--models: fine-tuning supports" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "-d",
                str(salton / "mseed"),
                "--lake",
                str(labelled_lake),
                "--reference",
                "pn",
                "-M",
                "PhaseNetLight",
                "-W",
                "nosuchweights",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "-W/--weights" in err and "ethz" in err  # names what the cache holds
    assert not (labelled_lake / "_training").exists()


def test_dataset_windows_carry_the_reference_picks_and_hold_out_stations(
    labelled_lake, salton, tmp_path, weights_cache
):
    import seisbench.data as sbd

    params = training.TrainParams(
        reference="pn", window_s=40.0, holdout_stations=["CI.WMD", "CI.SLV"]
    )
    labels = training.labelled_picks(labelled_lake, params)
    assert len(labels) == 184
    summary = training.build_dataset(salton / "mseed", labels, tmp_path / "ds", params)
    assert summary.stations["dev"] == ["CI.SLV", "CI.WMD"]
    assert "CI.WMD" not in summary.stations["train"] and len(summary.stations["train"]) == 14

    data = sbd.WaveformDataset(tmp_path / "ds", component_order="ZNE")
    meta = data.metadata
    assert len(data) == summary.traces and set(meta["split"]) == {"train", "dev"}
    assert set(meta.loc[meta["split"] == "dev", "station_code"]) == {"WMD", "SLV"}
    assert data.get_waveforms(0).shape == (3, 4000)
    # every label column points at a reference pick of that station within one sample
    ref = _reference(salton)
    checked = 0
    for row in meta.itertuples():
        start = pd.Timestamp(row.trace_start_time)
        for phase in ("P", "S"):
            for col in training.label_columns(phase):
                sample = getattr(row, col, np.nan)
                if pd.isna(sample):
                    continue
                t = start + pd.Timedelta(seconds=sample / row.trace_sampling_rate_hz)
                same = ref[
                    (ref["station_id"] == f"CI.{row.station_code}..HH") & (ref["phase"] == phase)
                ]
                assert (same["time"] - t).abs().min() <= pd.Timedelta(seconds=0.011)
                checked += 1
    assert checked >= 184  # each reference pick lies in at least one window


@pytest.mark.slow
def test_fine_tuning_lowers_validation_loss_and_new_weights_pick_through_W(
    labelled_lake, salton, weights_cache, capsys
):
    code = main(
        [
            "train",
            "-d",
            str(salton / "mseed"),
            "--lake",
            str(labelled_lake),
            "--reference",
            "pn",
            "-M",
            "PhaseNetLight",
            "-W",
            "ethz",
            "--name",
            "salton_ft",
            "--epochs",
            "4",
            "--window",
            "40",
            "-b",
            "16",
            "--device",
            "cpu",
            "--holdout-stations",
            "CI.WMD",
            "CI.SLV",
            "CI.RXH",
            "CI.SNR",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "trained PhaseNetLight/salton_ft (parent ethz)" in out

    meta_file = weights_cache / "models" / "v3" / "phasenetlight" / "salton_ft.json.v1"
    card = json.loads(meta_file.read_text())["quakelake_card"]
    history = card["history"]
    assert len(history) == 5 and history[-1]["val_loss"] < history[0]["val_loss"]
    assert card["parent_weights"] == "ethz" and card["split_stations"]["dev"] == [
        "CI.RXH",
        "CI.SLV",
        "CI.SNR",
        "CI.WMD",
    ]
    assert (
        card["epochs"] == 4 and card["learning_rate"] == 1e-3 and card["labels"] == "reference 'pn'"
    )
    assert (
        (meta_file.parent / "salton_ft.card.md").read_text().startswith("# PhaseNetLight/salton_ft")
    )
    runs = Lake(labelled_lake).read("runs")
    assert "train" in set(runs["command"])

    # -W salton_ft loads like any weights and picks the held-out station WMD within 0.5 s of the reference
    model = picking.load_model("PhaseNetLight", "salton_ft", "cpu")
    st = obspy.read(str(salton / "mseed" / "CI.WMD.2020-10-01T00:00.mseed"))
    picks = picking.picks_frame(
        list(model.classify(st, P_threshold=0.3, S_threshold=0.3).picks),
        picking.ModelSpec("PhaseNetLight", "salton_ft"),
        {"CI.WMD.": "HH"},
    )
    ref = _reference(salton)
    ref = ref[(ref["station_id"] == "CI.WMD..HH") & (ref["phase"] == "P")]
    hits = sum(
        ((picks["phase"] == "P") & ((picks["time"] - t).abs() <= pd.Timedelta(seconds=0.5))).any()
        for t in ref["time"]
    )
    assert hits >= len(ref) - 2


@pytest.mark.slow
def test_pick_T_fine_tunes_then_picks_with_parent_and_new_weights(
    labelled_lake, salton, weights_cache, prefect_server, capsys
):
    code = main(
        [
            "pick",
            "-d",
            str(salton / "mseed"),
            "--lake",
            str(labelled_lake),
            "-S",
            "WMD",
            "SLV",
            "BOM",
            "COA",
            "-M",
            "PhaseNetLight",
            "-W",
            "ethz",
            "-T",
            "--reference",
            "pn",
            "--epochs",
            "1",
            "--name",
            "salton_T",
            "--device",
            "cpu",
            "--silent",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "trained PhaseNetLight/salton_T (parent ethz)" in out
    picks = Lake(labelled_lake).read("picks")
    assert set(picks["weights"]) == {"ethz", "salton_T"}
    assert set(picks["station"]) <= {"WMD", "SLV", "BOM", "COA"}
    pick_runs = Lake(labelled_lake).query("SELECT config_json FROM runs WHERE command = 'pick'")
    assert json.loads(pick_runs["config_json"][0])["pick"]["weights"] == ["ethz", "salton_T"]
