"""Denoising before picking: loading by name, SeisDAE trained on the archive, denoised picks as a grid member."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest

from quakelake.catalogs import import_catalog
from quakelake.cli import main
from quakelake.config import PickParams, StationSelection
from quakelake.lakehouse import Lake
from quakelake.picking import denoise


def test_unknown_denoiser_is_one_error_line_listing_the_cache_and_writes_nothing(
    salton_minute, light_weights, tmp_path, capsys
):
    for option in (["--denoiser", "SeisDAE/nosuch"], ["--denoiser", "Wiener/x"]):
        code = main(
            ["pick", "-d", str(salton_minute / "mseed"), "--lake", str(tmp_path / "lake"), *option]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: --denoiser:")
        assert "cache" in err[0]
    assert not (tmp_path / "lake").exists()


def test_legacy_denoise_switch_means_deepdenoiser_original_and_grid_labels():
    params = PickParams.model_validate({"weights": ["original", "instance"], "denoise": True})
    assert params.denoiser == "DeepDenoiser/original"
    assert params.grid_weights() == [
        "original",
        "instance",
        "original+DeepDenoiser:original",
        "instance+DeepDenoiser:original",
    ]
    assert PickParams().grid_weights() == ["original"]


@pytest.fixture(scope="module")
def trained_denoiser(salton, weights_cache, tmp_path_factory) -> tuple[Path, dict]:
    lake = tmp_path_factory.mktemp("denoise") / "lake"
    import_catalog(lake, [salton / "DERIVED_phasenet_ref_picks_first180s.csv"], "pn")
    params = denoise.DenoiserTrainParams(
        labels="reference",
        reference="pn",
        name="salton_dn",
        epochs=1,
        noise_margin_s=3.0,
        min_snr_db=6.0,
        device="cpu",
    )
    return lake, denoise.train_denoiser(lake, salton / "mseed", params)


@pytest.mark.slow
def test_denoiser_trained_on_archive_windows_is_saved_with_a_card(trained_denoiser, weights_cache):
    _, card = trained_denoiser
    assert card["windows"]["signal_train"] >= 20 and card["windows"]["noise_train"] >= 10
    assert card["windows"]["signal_dev"] >= 1 and card["windows"]["noise_dev"] >= 1
    assert len(card["history"]) == 2 and np.isfinite(card["history"][-1]["val_loss"])
    meta = json.loads(
        (weights_cache / "models" / "v3" / "seisdae" / "salton_dn.json.v1").read_text()
    )
    assert meta["quakelake_card"]["noise"] == "windows with no pick within 3.0 s"
    assert "SeisDAE/salton_dn" in denoise.cached_denoisers()


@pytest.mark.slow
def test_denoised_stream_keeps_channels_and_span(trained_denoiser, salton):
    st = obspy.read(str(salton / "mseed" / "CI.WMD.2020-10-01T00:00.mseed"))
    out = denoise.denoise_stream(denoise.load_denoiser("SeisDAE/salton_dn"), st)
    assert sorted(tr.stats.channel for tr in out) == ["HHE", "HHN", "HHZ"]
    for tr in out:
        raw = st.select(channel=tr.stats.channel)[0]
        assert abs(tr.stats.starttime - raw.stats.starttime) < 0.02
        assert abs(tr.stats.npts - raw.stats.npts) <= 1 and np.isfinite(tr.data).all()
        # the denoiser removes energy: the output is quieter than the raw trace but not silent
        raw_rms = np.sqrt(np.mean((raw.data - raw.data.mean()) ** 2))
        assert 0.01 * raw_rms < np.sqrt(np.mean(tr.data**2)) < raw_rms


@pytest.mark.slow
def test_pick_flow_with_denoiser_adds_a_denoised_grid_member(
    trained_denoiser, salton, prefect_server, tmp_path
):
    from quakelake.flows.pick import pick_phases

    lake = tmp_path / "lake"
    selection = StationSelection(stations=["WMD", "SLV"])
    params = PickParams(
        models=["PhaseNetLight"], weights=["ethz"], denoiser="SeisDAE/salton_dn", device="cpu"
    )
    summary = pick_phases(salton / "mseed", lake, selection=selection, pick=params)
    assert summary["done"] == 4 and summary["failed"] == 0
    assert summary["models"] == ["PhaseNetLight/ethz", "PhaseNetLight/ethz+SeisDAE:salton_dn"]
    picks = Lake(lake).read("picks")
    members = picks.groupby(["weights", "denoiser"]).size().to_dict()
    assert set(members) == {("ethz", ""), ("ethz+SeisDAE:salton_dn", "SeisDAE/salton_dn")}
    assert picks["pick_id"].is_unique
    runs = Lake(lake).query("SELECT config_json, weights_json FROM runs")
    assert json.loads(runs["config_json"][0])["pick"]["denoiser"] == "SeisDAE/salton_dn"
    assert "SeisDAE/salton_dn" in json.loads(runs["weights_json"][0])

    # the raw-data member is exactly what a run without the denoiser makes (same file names: no recompute)
    raw_only = pick_phases(
        salton / "mseed",
        lake,
        selection=selection,
        pick=params.model_copy(update={"denoiser": None}),
    )
    assert raw_only["skipped"] == 2 and raw_only["done"] == 0
    again = pick_phases(salton / "mseed", lake, selection=selection, pick=params)
    assert again["skipped"] == 4 and again["done"] == 0
    assert len(Lake(lake).read("picks")) == len(picks)
    ref = pd.read_csv(salton / "DERIVED_phasenet_ref_picks_first180s.csv")
    # the reference names NET.STA.LOC.BAND, the lake station_id (NET.STA.LOC) and band
    assert set(picks["station_id"] + "." + picks["band"]) <= set(ref["station_id"])
