"""Ensemble picks on real recordings with real weights: consensus of the members' curves, in the lake."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pandas as pd
import pytest

from quakelake.archive import waveforms
from quakelake.config import PickParams, StationSelection, TimeWindow
from quakelake.lakehouse import Lake
from quakelake.picking import ensemble
from quakelake.picking import models as picking

PAIR = PickParams(models=["PhaseNet"], weights=["original", "volpick"])
STATIONS = ["BOM", "IMP", "WMD", "SWS"]


@pytest.fixture(scope="module")
def instruments(salton):
    scan = waveforms.scan_archive(salton / "mseed", selection=StationSelection(stations=STATIONS))
    units = waveforms.station_days(scan.index, TimeWindow(), StationSelection(stations=STATIONS))
    out = []
    for unit in units:
        out.extend(waveforms.read_station_day(unit)[0])
    assert sorted(i.station for i in out) == sorted(STATIONS)
    return out


@pytest.fixture(scope="module")
def reference(salton) -> pd.DataFrame:
    ref = pd.read_csv(salton / "DERIVED_phasenet_ref_picks_first180s.csv")
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    ref["station"] = ref["station_id"].str.split(".").str[1]
    t0 = pd.Timestamp("2020-10-01T00:00:00.003", tz="UTC")
    inner = (ref["time"] > t0 + pd.Timedelta(seconds=3)) & (
        ref["time"] < t0 + pd.Timedelta(seconds=177)
    )
    return ref[inner & ref["station"].isin(STATIONS)].reset_index(drop=True)


def _recall(picks: pd.DataFrame, ref: pd.DataFrame, tol: float = 0.5) -> float:
    hits = 0
    for row in ref.itertuples():
        cand = picks[(picks["station"] == row.station) & (picks["phase"] == row.phase)]
        if len(cand) and (cand["time"] - row.time).abs().min() <= pd.Timedelta(seconds=tol):
            hits += 1
    return hits / len(ref)


@pytest.mark.parametrize("method", ["mean", "median", "semblance"])
def test_identical_members_give_back_seisbench_picks(instruments, weights_cache, method):
    # Two copies of one member: every aggregate equals its curve, so the consensus must be
    # exactly what SeisBench's own classify picks (same picks, times within a sample).
    model = picking.load_model("PhaseNet", "original", "cpu")
    params = ensemble.EnsembleParams(method=method)
    for inst in instruments:
        ann = model.annotate(inst.stream, batch_size=256)
        expected = model.classify(
            inst.stream, P_threshold=0.3, S_threshold=0.3, batch_size=256
        ).picks
        trace_id = f"{inst.network}.{inst.station}.{inst.location}"
        for phase in ensemble.PHASES:
            grid = ensemble.phase_grid([ann, ann], phase)
            picks, rows = ensemble.consensus(
                grid, phase, ["a", "b"], 0.3, 0.3, params, trace_id, inst.band, "w"
            )
            theirs = sorted(p.peak_time.timestamp for p in expected if p.phase == phase)
            ours = sorted(p["time"].timestamp() for p in picks)
            assert len(ours) == len(theirs)
            assert np.abs(np.array(ours) - np.array(theirs)).max(initial=0.0) <= 0.011
            assert all(r["n_agree"] == 2 and r["spread_s"] == 0.0 for r in rows)


def test_consensus_of_two_weights_agrees_with_its_members_and_the_reference(
    instruments, reference, weights_cache
):
    members = [(f"PhaseNet/{w}", picking.load_model("PhaseNet", w, "cpu")) for w in PAIR.weights]
    picks, agreement = ensemble.pick_ensemble(members, instruments, PAIR, ensemble.EnsembleParams())
    assert set(picks["model"]) == {"ensemble"}
    assert set(picks["weights"]) == {"mean:PhaseNet/original+PhaseNet/volpick"}
    assert picks["pick_id"].tolist() == agreement["pick_id"].tolist()
    assert (agreement["n_members"] == 2).all() and agreement["n_agree"].between(0, 2).all()

    # Each member's own picks (plain SeisBench classify), independently of the ensemble code.
    own = {}
    for label, model in members:
        rows = []
        for inst in instruments:
            rows += [
                (p.trace_id.split(".")[1], p.phase, pd.Timestamp(p.peak_time.datetime, tz="UTC"))
                for p in model.classify(inst.stream, P_threshold=0.3, S_threshold=0.3).picks
            ]
        own[label] = pd.DataFrame(rows, columns=["station", "phase", "time"])
    for row in agreement.itertuples():
        sta = row.station_id.split(".")[1]
        near = []
        for label, df in own.items():
            cand = df[(df["station"] == sta) & (df["phase"] == row.phase)]
            dt = (cand["time"] - row.time).abs().dt.total_seconds()
            if len(dt) and dt.min() <= 0.5:
                near.append(
                    (
                        label,
                        float(
                            (
                                cand["time"].iloc[int(np.argmin(dt.to_numpy()))] - row.time
                            ).total_seconds()
                        ),
                    )
                )
        assert row.n_agree == len(near), row
        assert (
            sorted(row.agreeing.split("+")) == sorted(lbl for lbl, _ in near)
            if near
            else row.agreeing == ""
        )
        if near:
            assert row.spread_s == pytest.approx(float(np.std([d for _, d in near])), abs=0.011)

    picks["station"] = picks["station"].astype(str)
    assert _recall(picks, reference) >= 0.6


def test_pick_flow_stores_the_ensemble_beside_its_members_and_the_grid_is_one_query(
    salton, weights_cache, prefect_server, lake_root
):
    from quakelake.flows.analyze import analyze_run
    from quakelake.flows.pick import pick_phases

    selection = StationSelection(stations=STATIONS[:3])
    ens = ensemble.EnsembleParams(method="mean")
    summary = pick_phases(salton / "mseed", lake_root, selection=selection, pick=PAIR, ensemble=ens)
    label = "mean:PhaseNet/original+PhaseNet/volpick"
    assert summary["ensemble"] == label and summary["done"] == 9 and summary["failed"] == 0
    lake = Lake(lake_root)
    sets = lake.query("SELECT model, weights, count(*) AS n FROM picks GROUP BY ALL ORDER BY ALL")
    assert sets[["model", "weights"]].values.tolist() == [
        ["PhaseNet", "original"],
        ["PhaseNet", "volpick"],
        ["ensemble", label],
    ]
    joined = lake.query(
        "SELECT p.pick_id, e.n_members, e.n_agree, e.spread_s FROM picks p "
        "LEFT JOIN ensemble_picks e USING (pick_id) WHERE p.model = 'ensemble'"
    )
    assert len(joined) == sets["n"].iloc[2] and (joined["n_members"] == 2).all()
    config = json.loads(lake.read("runs")["config_json"][0])
    assert config["ensemble"]["method"] == "mean"

    before = {t: Lake(lake_root).files(t) for t in ("picks", "ensemble_picks")}
    again = pick_phases(salton / "mseed", lake_root, selection=selection, pick=PAIR, ensemble=ens)
    assert again["skipped"] == 9 and again["done"] == 0
    after = {t: Lake(lake_root).files(t) for t in ("picks", "ensemble_picks")}
    assert after == before

    analysis = analyze_run(
        lake_root, "pn", reference_paths=[salton / "DERIVED_phasenet_ref_picks_first180s.csv"]
    )
    grid = lake.query(
        "SELECT model, weights, tp, fn, recall, precision FROM metrics WHERE run_id = ? AND level = 'pick' "
        "AND group_by = 'model,weights' ORDER BY model, weights",
        [analysis["run_id"]],
    )
    assert grid[["model", "weights"]].values.tolist() == sets[["model", "weights"]].values.tolist()
    # the same reference picks for every pick set: TP + FN is the same number
    assert (grid["tp"] + grid["fn"]).nunique() == 1
    assert grid["recall"].between(0.3, 1.0).all()


def test_an_ensemble_of_one_member_is_refused_before_any_work(salton, tmp_path, capsys):
    from quakelake.cli import main

    lake = tmp_path / "lake"
    for extra in ([], ["-W", "original", "original"]):
        assert (
            main(
                [
                    "pick",
                    "-d",
                    str(salton / "mseed"),
                    "-M",
                    "PhaseNet",
                    *extra,
                    "--ensemble",
                    "--lake",
                    str(lake),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --ensemble needs at least two")
    assert not lake.exists()


def test_aggregates_of_real_curves(instruments, weights_cache):
    a = picking.load_model("PhaseNet", "original", "cpu").annotate(instruments[0].stream)
    b = picking.load_model("PhaseNet", "volpick", "cpu").annotate(instruments[0].stream)
    grid = ensemble.phase_grid([a, b], "P")
    curves = grid.curves
    both = np.isfinite(curves).all(axis=0)
    mean = ensemble.aggregate(curves, "mean")
    assert np.allclose(mean[both], curves[:, both].mean(axis=0))
    assert np.allclose(
        ensemble.aggregate(curves, "median")[both], np.median(curves[:, both], axis=0)
    )
    semblance = ensemble.aggregate(curves, "semblance")
    assert (semblance <= mean + 1e-12).all() and (semblance >= 0).all()
    assert obspy.UTCDateTime(grid.start) <= min(tr.stats.starttime for tr in a)
