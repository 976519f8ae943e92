"""Local magnitudes on real data: INGV station MLs, the Salton Sea SCSN event, law settings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import obspy
import pandas as pd
import pytest
from obspy.geodetics import degrees2kilometers
from pick_rows import reference_pick_rows

from quakelake.archive.stations import read_stations
from quakelake.association import magnitudes as mag

SCSN_EVENT = {
    "event_id": "scsn",
    "time": pd.Timestamp("2020-10-01T00:02:21.07", tz="UTC"),
    "latitude": 33.092,
    "longitude": -115.585,
    "depth_km": 2.51,
    "magnitude": 2.43,
}


def _ingv_station_mls(folder) -> pd.DataFrame:
    """INGV's station MLs with the amplitude each one used and its hypocentral distance."""
    rows = []
    for path in sorted(folder.glob("*.qml")):
        ev = obspy.read_events(str(path))[0]
        amplitudes = {str(a.resource_id): a for a in ev.amplitudes}
        origins = {str(o.resource_id): o for o in ev.origins}
        for sm in ev.station_magnitudes:
            amp, origin = amplitudes.get(str(sm.amplitude_id)), origins.get(str(sm.origin_id))
            if amp is None or origin is None:
                continue
            distance = {}
            for arrival in origin.arrivals:
                pick = arrival.pick_id.get_referred_object()
                if pick is not None and arrival.distance is not None:
                    distance[(pick.waveform_id.network_code, pick.waveform_id.station_code)] = (
                        arrival.distance
                    )
            key = (sm.waveform_id.network_code, sm.waveform_id.station_code)
            if key not in distance:
                continue
            epi = degrees2kilometers(distance[key])
            rows.append(
                {
                    "event": path.name,
                    "station_id": ".".join(key) + ".",
                    "ml": sm.mag,
                    "amplitude_m": amp.generic_amplitude,
                    "unit": amp.unit,
                    "type": amp.type,
                    "distance_km": float(np.hypot(epi, origin.depth / 1000.0)),
                }
            )
    return pd.DataFrame(rows)


def test_ingv_station_magnitudes_reproduced_with_hutton_boore(shared_data):
    """INGV's bulletin station MLs come back from their Wood-Anderson amplitudes and distances.

    INGV uses Hutton & Boore (1987) with hypocentral distance: our default law. Their station
    MLs are rounded to 0.1, distances to 1e-4 degree, so agreement is to the rounding.
    """
    ingv = _ingv_station_mls(shared_data / "ingv_quakeml_20210101")
    assert len(ingv) >= 250 and ingv["event"].nunique() == 8
    assert set(ingv["type"]) == {"AML"} and set(ingv["unit"]) == {"m"}
    ours = mag.AttenuationLaw().magnitude(ingv["amplitude_m"], ingv["distance_km"])
    diff = ours - ingv["ml"].to_numpy()
    assert np.all(np.isfinite(ours))
    assert np.abs(diff).max() <= 0.08  # rounding of the published ML (0.05) and of distances
    assert np.abs(np.mean(diff)) <= 0.01
    assert np.mean(np.round(ours, 1) == ingv["ml"].to_numpy()) >= 0.75


def _salton_event_picks(folder, stations: pd.DataFrame) -> pd.DataFrame:
    """The reference PhaseNet picks of the SCSN event: those within 2 s + 2 % of the travel distance of a
    6.0/3.46 km/s arrival."""
    picks = pd.read_csv(folder / "DERIVED_phasenet_ref_picks_first180s.csv")
    picks["time"] = pd.to_datetime(picks["time"], utc=True, format="ISO8601")
    picks["station_id"] = picks["station_id"].str.rsplit(".", n=1).str[0]  # CI.IMP..HH -> CI.IMP.
    coords = stations.drop_duplicates(["network", "station", "location"])
    hypo, _ = mag.hypocentral_km(
        SCSN_EVENT["latitude"],
        SCSN_EVENT["longitude"],
        SCSN_EVENT["depth_km"],
        coords["latitude"].to_numpy(),
        coords["longitude"].to_numpy(),
    )
    keep = []
    for (net, sta, loc), r in zip(
        coords[["network", "station", "location"]].itertuples(index=False), hypo, strict=True
    ):
        for phase, speed in (("P", 6.0), ("S", 3.46)):
            expected = SCSN_EVENT["time"] + pd.Timedelta(seconds=r / speed)
            mine = picks[(picks["station_id"] == f"{net}.{sta}.{loc}") & (picks["phase"] == phase)]
            mine = mine[(mine["time"] - expected).abs() < pd.Timedelta(seconds=2.0 + 0.02 * r)]
            keep.append(mine.head(1))
    out = pd.concat(keep, ignore_index=True)
    out["pick_id"] = [f"ref{i}" for i in range(len(out))]
    return out


@pytest.mark.slow
def test_salton_sea_scsn_event_magnitude_from_waveforms(shared_data):
    """ML of the SCSN event from its 16-station waveforms and StationXML responses vs SCSN's 2.43.

    Without SCSN's station corrections (Imperial Valley sediments amplify) our HB87 ML is
    0.39 above SCSN's: within 0.5 of it, and each horizontal channel of each station has an
    amplitude in its window.
    """
    folder = shared_data / "phasenet_saltonsea_20201001"
    inventory = obspy.read_inventory(str(folder / "stations.xml"))
    stream = obspy.Stream()
    for path in sorted((folder / "mseed").glob("*.mseed")):
        stream += obspy.read(str(path))
    stations = read_stations(folder / "stations.xml")
    picks = _salton_event_picks(folder, stations)
    assert picks["station_id"].nunique() >= 14

    amps, messages = mag.measure_amplitudes(
        "scsn", picks, stream, inventory, origin_time=SCSN_EVENT["time"]
    )
    assert messages == []
    assert len(amps) == 2 * picks["station_id"].nunique()
    assert set(amps["channel"]) == {"HHE", "HHN"}
    inside = (amps["time"] >= amps["window_start"]) & (amps["time"] <= amps["window_end"])
    assert inside.all()
    assert ((amps["period_s"] > 0.02) & (amps["period_s"] < 2.0)).all()
    # 2.4 ML at 6-60 km: Wood-Anderson peaks of 0.3 to 90 mm
    assert amps["amplitude_m"].between(2e-4, 0.1).all()

    events = pd.DataFrame([SCSN_EVENT])
    station_ml = mag.station_magnitudes(amps, events, stations)
    event_ml = mag.event_magnitudes(station_ml)
    row = event_ml.iloc[0]
    assert row["magnitude_station_count"] == picks["station_id"].nunique()
    assert abs(row["magnitude"] - SCSN_EVENT["magnitude"]) <= 0.5
    assert 0.1 < row["magnitude_uncertainty"] < 0.6
    assert row["magnitude_type"] == "ML"


def test_each_channel_response_is_evaluated_once_per_length(shared_data):
    """The magnitude stage computes a channel's response spectrum once for equal windows (issue 26).

    ObsPy evaluates the response at every ``remove_response``; the Salton Sea day's 7 events
    asked for 136 spectra, ~17 ms each. With :class:`Responses` a second event with the same
    windows computes none, and the amplitudes are the ones of a fresh evaluation, bit for bit.
    """
    folder = shared_data / "phasenet_saltonsea_20201001"
    inventory = mag.read_inventory([folder / "stations.xml"])
    stream = obspy.Stream()
    for path in sorted((folder / "mseed").glob("*.mseed"))[:4]:
        stream += obspy.read(str(path))
    stations = read_stations(folder / "stations.xml")
    picks = _salton_event_picks(folder, stations)
    picks = picks[
        picks["station_id"].isin({f"{tr.stats.network}.{tr.stats.station}." for tr in stream})
    ]
    n = picks["station_id"].nunique()
    assert n >= 3

    # channels with equal responses (ObsPy ==) share their spectra
    distinct: list = []
    for tr in stream:
        picked = f"{tr.stats.network}.{tr.stats.station}.{tr.stats.location}" in set(
            picks["station_id"]
        )
        if picked and mag.is_horizontal(tr.stats.channel):
            r = inventory.get_response(tr.id, tr.stats.starttime)
            distinct += [] if any(r == d for d in distinct) else [r]
    assert n <= len(distinct) < 2 * n  # some station's two horizontals are the same instrument

    responses = mag.Responses(inventory)
    first, _ = mag.measure_amplitudes("a", picks, stream, responses, origin_time=SCSN_EVENT["time"])
    assert len(first) == 2 * n and responses.evaluations == len(distinct)  # one per response
    again, _ = mag.measure_amplitudes("b", picks, stream, responses, origin_time=SCSN_EVENT["time"])
    assert responses.evaluations == len(distinct)
    fresh, _ = mag.measure_amplitudes("a", picks, stream, inventory, origin_time=SCSN_EVENT["time"])
    pd.testing.assert_frame_equal(first, fresh, check_exact=True)
    pd.testing.assert_frame_equal(again.drop(columns="event_id"), fresh.drop(columns="event_id"))


def test_wood_anderson_on_arrays_equals_obspy_trace_methods(shared_data):
    """The array chain of the magnitude stage gives ObsPy's ``Trace`` methods' samples bit for bit.

    ``detrend`` / ``taper`` / ``remove_response`` / ``simulate`` through ObsPy cost ~0.3 s of
    bookkeeping per Salton Sea day (issue 26); :func:`mag._wood_anderson_data` calls the same
    functions on the arrays. Real windows of every horizontal channel, of even and odd lengths,
    as integers (the archive's counts) and as float32 / float64.
    """
    folder = shared_data / "phasenet_saltonsea_20201001"
    inventory = mag.read_inventory([folder / "stations.xml"])
    params = mag.AmplitudeParams()
    stream = obspy.Stream()
    for path in sorted((folder / "mseed").glob("*.mseed")):
        stream += obspy.read(str(path)).select(channel="HH[EN]")
    assert len(stream) == 32 and {tr.data.dtype.kind for tr in stream} == {"i"}
    compared, npts = 0, set()
    for k, tr in enumerate(stream):
        t0 = tr.stats.starttime + 20.0 + 3.7 * k
        for dtype in (None, np.float32, np.float64):
            window = tr.slice(t0, t0 + (31.0, 44.93, 60.01)[(k + len(str(dtype))) % 3])
            if dtype is not None:
                window.data = window.data.astype(dtype)
            response = inventory.get_response(window.id, window.stats.starttime)
            assert mag._arrays_apply(window, response)
            before = window.data.copy()
            mine = mag._wood_anderson_data(window, response, params)
            theirs = mag._wood_anderson_trace(window.copy(), response, params).data
            assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
            assert np.array_equal(window.data, before)  # the input is left as it was
            npts.add(window.stats.npts % 2)
            compared += 1
    assert compared == 32 * 3 and npts == {0, 1}
    # the public function: the same samples as the Trace methods, header kept
    wa = mag.wood_anderson(stream[:4], inventory, params)
    assert wa.missing == [] and len(wa) == 4
    for tr, raw in zip(wa, stream[:4], strict=True):
        ref = mag._wood_anderson_trace(
            raw.copy(), inventory.get_response(raw.id, raw.stats.starttime), params
        )
        assert tr.id == raw.id and tr.stats.starttime == raw.stats.starttime
        assert np.array_equal(tr.data, ref.data)


def test_amplitude_window_first_earliest_pick_of_the_phase():
    """The window follows the earliest S (any case, ``Sg``, ties: the first row), else P."""
    params = mag.AmplitudeParams()
    t = pd.Timestamp("2020-10-01T00:00:10", tz="UTC")
    sec = pd.Timedelta(seconds=1)
    pre, length = (
        pd.Timedelta(seconds=params.pre_s),
        pd.Timedelta(seconds=params.pre_s + params.window_s),
    )
    picks = pd.DataFrame(
        {
            "phase": ["P", "sg", "S", "Sn", None],
            "time": [t, t + 3 * sec, t + 2 * sec, t + 2 * sec, t - sec],
            "pick_id": ["p", "late", "first", "tie", "none"],
        },
        index=[7, 3, 9, 1, 5],
    )
    assert mag.amplitude_window(picks, params) == (
        t + 2 * sec - pre,
        t + 2 * sec - pre + length,
        "S",
        "first",
    )
    only_p = picks.iloc[[0, 4]].assign(phase=["p", ""])
    origin = t - 4 * sec
    expected_s = origin + (t - origin) * params.vp_vs
    window = (t - pre, expected_s + pd.Timedelta(seconds=params.window_s), "P", "p")
    assert mag.amplitude_window(only_p, params, origin) == window
    # a pick without a time (NaT) is passed over, as pandas' idxmin does
    with_nat = picks.assign(time=[t, pd.NaT, pd.NaT, t + 2 * sec, t])
    assert mag.amplitude_window(with_nat, params)[2:] == ("S", "tie")
    with pytest.raises(mag.MagnitudeError):
        mag.amplitude_window(picks.iloc[[4]], params)


def test_wood_anderson_runs_blas_on_one_thread():
    """The stage's BLAS calls (lstsq of the linear detrend) run on one thread, the limit put back.

    OpenBLAS's idle threads spun ~0.5 s of a second core per Salton Sea day (issue 26).
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> set[int]:
        return {
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        }

    before = blas_threads()
    with mag._one_blas_thread():
        assert blas_threads() == {1}
    assert blas_threads() == before
    # two days measured in threads that overlap: the limit holds until the last one leaves
    first, second = mag._one_blas_thread(), mag._one_blas_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert blas_threads() == {1}
    second.__exit__(None, None, None)
    assert blas_threads() == before


def test_magnitudes_leave_obspy_signal_init_and_matplotlib_unimported(shared_data):
    """Response removal no longer imports matplotlib (PPSD in ``obspy.signal``'s ``__init__``).

    In a fresh interpreter: the Wood-Anderson amplitude of a real channel leaves matplotlib and
    PPSD unimported; afterwards ``from obspy.signal import PPSD`` and the usual submodule
    imports still work (~0.5 s of CPU saved per run, issue 26).
    """
    folder = shared_data / "phasenet_saltonsea_20201001"
    code = f"""
import sys
import obspy
from quakelake.association import magnitudes as mag
inv = mag.read_inventory([{str(folder / "stations.xml")!r}])
st = obspy.read({str(folder / "mseed" / "CI.BOM.2020-10-01T00:00.mseed")!r}).select(channel="HHE")
wa = mag.wood_anderson(st.slice(st[0].stats.starttime + 10, st[0].stats.starttime + 70), inv,
                       mag.AmplitudeParams())
assert wa.missing == [] and len(wa) == 1 and abs(wa[0].data).max() > 0
tr = st[0].copy()
tr.filter("bandpass", freqmin=1.0, freqmax=10.0)  # obspy.signal.filter through the stub
unused = [m for m in ("matplotlib", "obspy.signal.spectral_estimation") if m in sys.modules]
assert unused == [], unused
from obspy.signal import PPSD
import obspy.signal
from obspy.signal.trigger import trigger_onset
assert obspy.signal.PPSD is PPSD and "matplotlib" in sys.modules
assert obspy.signal.invsim is sys.modules["obspy.signal.invsim"] and callable(trigger_onset)
assert "__getattr__" not in vars(obspy.signal)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_law_from_table_and_corrections():
    """A -log A0 table interpolates; station corrections add; distances outside give NaN."""
    law = mag.AttenuationLaw(
        name="table", table=[(10, 1.5), (100, 3.0)], station_corrections={"OX.ACOM": -0.2}
    )
    ml = law.magnitude(
        [1e-3, 1e-3, 1e-3, 1e-3], [10, 55, 100, 150], ["XX.A.", "XX.A.", "OX.ACOM.", "XX.A."]
    )
    assert ml[:3] == pytest.approx([1.5, 2.25, 2.8])
    assert np.isnan(ml[3])
    hb = mag.AttenuationLaw()
    assert hb.magnitude(1e-3, 100.0) == pytest.approx(3.0)  # 1 mm at 100 km is ML 3 by definition
    assert hb.magnitude(1e-3, 17.0) == pytest.approx(3.0 + 1.11 * np.log10(0.17) + 0.00189 * -83)
    with pytest.raises(ValueError, match="increase"):
        mag.AttenuationLaw(table=[(10, 1.0), (10, 2.0)])


def test_event_magnitude_is_median_with_spread():
    """Event ML: median of station MLs, sample standard deviation, count; one station: unknown spread."""
    sm = pd.DataFrame({"event_id": ["a", "a", "a", "b"], "magnitude": [1.0, 1.2, 2.0, 3.0]})
    ev = mag.event_magnitudes(sm).set_index("event_id")
    assert ev.loc["a", "magnitude"] == pytest.approx(1.2)
    assert ev.loc["a", "magnitude_uncertainty"] == pytest.approx(np.std([1.0, 1.2, 2.0], ddof=1))
    assert ev.loc["a", "magnitude_station_count"] == 3
    assert np.isnan(ev.loc["b", "magnitude_uncertainty"])
    assert list(mag.event_magnitudes(sm, min_stations=2)["event_id"]) == ["a"]


@pytest.mark.slow
def test_associate_flow_writes_magnitudes_and_quakeml(
    shared_data, prefect_server, lake_root, tmp_path, capsys
):
    """Associate flow on the Salton Sea reference picks: events carry ML, station MLs and amplitudes land
    in the lake, a rerun computes nothing, and QuakeML holds amplitudes and station magnitudes."""
    from quakelake.archive.waveforms import archive_key, scan_archive
    from quakelake.catalogs.export import to_catalog
    from quakelake.flows.associate import associate_events
    from quakelake.lakehouse import Lake, queries, write_table

    folder = shared_data / "phasenet_saltonsea_20201001"
    scan = scan_archive(folder / "mseed")
    write_table(
        lake_root, "waveform_index", scan.index, "index", {"archive": archive_key(folder / "mseed")}
    )
    csv = folder / "DERIVED_phasenet_ref_picks_first180s.csv"
    ids = [f"ref{i}" for i in range(len(pd.read_csv(csv)))]
    picks = reference_pick_rows(csv, ids, weights="reference")
    write_table(lake_root, "picks", picks, "reference", {"day": "2020-10-01"})

    first = associate_events(lake=lake_root, station_file=folder / "stations.xml")
    assert first["magnitudes"]["done"] == 1 and first["magnitudes"]["law"] == "HB87"
    lake = Lake(lake_root)
    events = lake.read("events")
    scsn = events[
        (pd.to_datetime(events["time"], utc=True) - SCSN_EVENT["time"]).abs()
        < pd.Timedelta(seconds=2)
    ]
    assert len(scsn) == 1
    ev = scsn.iloc[0]
    assert abs(ev["magnitude"] - SCSN_EVENT["magnitude"]) <= 0.5
    assert ev["magnitude_type"] == "ML" and ev["magnitude_station_count"] >= 10
    station_ml = lake.query("SELECT * FROM station_magnitudes WHERE event_id = ?", [ev["event_id"]])
    assert len(station_ml) == ev["magnitude_station_count"]
    assert float(np.median(station_ml["magnitude"])) == pytest.approx(ev["magnitude"])
    amps = lake.query("SELECT * FROM amplitudes WHERE event_id = ?", [ev["event_id"]])
    assert set(amps["channel"]) == {"HHE", "HHN"} and set(amps["station_id"]) == set(
        station_ml["station_id"]
    )
    # every reported origin has an ML; those the quality gate rejected have none
    reported = events["evaluation_status"] != "rejected"
    assert events.loc[reported, "magnitude"].notna().all()
    assert events.loc[~reported, "magnitude"].isna().all()
    print(
        "Salton Sea events (time, ML, spread, stations):",
        events[
            ["time", "magnitude", "magnitude_uncertainty", "magnitude_station_count"]
        ].to_string(),
    )

    def outputs():
        return sorted(
            str(p)
            for table in ("events", "amplitudes", "station_magnitudes")
            for p in Lake(lake_root).files(table)
        )

    # the analyzer's magnitude residual against the SCSN catalogue (which has magnitudes)
    from quakelake.analysis.evaluation import evaluate
    from quakelake.catalogs import read_catalog

    scsn_ref = read_catalog(folder / "DERIVED_scsn_events_first10min.csv").events
    result = evaluate(pd.DataFrame(), events, scsn_ref, pd.DataFrame(columns=["event_id", "time"]))
    row = result.metrics[result.metrics["level"] == "magnitude"].iloc[0]
    assert row["associator"] == "pyocto" and row["tp"] == 1
    assert row["residual_mean"] == pytest.approx(ev["magnitude"] - SCSN_EVENT["magnitude"])
    tp = result.event_matches[result.event_matches["outcome"] == "TP"].iloc[0]
    assert tp["reference_magnitude"] == pytest.approx(2.43)

    n_amplitudes = len(lake.query("SELECT * FROM amplitudes"))
    files = outputs()
    again = associate_events(lake=lake_root, station_file=folder / "stations.xml")
    assert again["magnitudes"]["skipped"] == 1 and again["magnitudes"]["done"] == 0
    assert outputs() == files

    assignments = lake.read("assignments")
    path = tmp_path / "events.xml"
    to_catalog(
        events,
        assignments,
        amplitudes=lake.read("amplitudes"),
        station_magnitudes=lake.read("station_magnitudes"),
    ).write(str(path), format="QUAKEML")
    back = {str(e.resource_id).rsplit("/", 1)[-1]: e for e in obspy.read_events(str(path))}
    qev = back[ev["event_id"]]
    assert qev.preferred_magnitude().mag == pytest.approx(ev["magnitude"])
    assert qev.preferred_magnitude().station_count == ev["magnitude_station_count"]
    assert qev.preferred_magnitude().mag_errors.uncertainty == pytest.approx(
        ev["magnitude_uncertainty"]
    )
    assert len(qev.amplitudes) == len(amps) and len(qev.station_magnitudes) == len(station_ml)
    assert {a.waveform_id.channel_code for a in qev.amplitudes} == {"HHE", "HHN"}
    assert all(sm.amplitude_id.get_referred_object() is not None for sm in qev.station_magnitudes)
    assert len(qev.preferred_magnitude().station_magnitude_contributions) == len(station_ml)

    # one catalogue per export: GaMMA's copy of the same earthquakes is not merged in
    from quakelake.cli import main
    from quakelake.params.association import GammaConfig

    gamma = associate_events(
        lake=lake_root, station_file=folder / "stations.xml", config=GammaConfig()
    )
    assert gamma["magnitudes"]["done"] == 1
    both = Lake(lake_root).read("events")
    n_gamma = int((both["associator"] == "gamma").sum())
    assert n_gamma >= 1 and len(both) == len(events) + n_gamma
    # exports hold the reported origins only
    gamma_reported = int(
        ((both["associator"] == "gamma") & (both["evaluation_status"] != "rejected")).sum()
    )
    capsys.readouterr()
    # two catalogues and no choice: one error line listing both, nothing written
    assert main(["export", "--lake", str(lake_root), "--quakeml", str(tmp_path / "no.xml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 2 catalogues match (gamma all/all")
    assert "pyocto all/all" in err[0] and not (tmp_path / "no.xml").exists()
    for extra, associator, n in (
        (["--associator", "gamma"], "gamma", gamma_reported),
        (["--associator", "pyocto"], "pyocto", int(reported.sum())),
        (["--run-id", first["run_id"]], "pyocto", int(reported.sum())),
    ):
        out = tmp_path / f"{associator}{len(extra)}.xml"
        assert main(["export", "--lake", str(lake_root), "--quakeml", str(out), *extra]) == 0
        assert f"catalogue: {associator} " in capsys.readouterr().out
        cat = obspy.read_events(str(out))
        assert len(cat) == n
        assert all(ev.preferred_magnitude() is not None for ev in cat)
        channels = {(p.phase_hint, p.waveform_id.channel_code) for ev in cat for p in ev.picks}
        assert channels == {("P", "HHZ"), ("S", "HHN")}
    assert (
        main(
            [
                "export",
                "--lake",
                str(lake_root),
                "--quakeml",
                str(tmp_path / "x.xml"),
                "--run-id",
                "nope",
            ]
        )
        == 2
    )
    assert "--run-id nope: no association run" in capsys.readouterr().err

    # another law for the same events: the day's magnitudes are replaced, never mixed
    law = mag.AttenuationLaw(name="table-test", table=[(1.0, 1.0), (100.0, 3.0), (300.0, 4.0)])
    redo = associate_events(
        lake=lake_root, station_file=folder / "stations.xml", magnitude=mag.MagnitudeParams(law=law)
    )
    assert redo["skipped"] == 1 and redo["magnitudes"]["done"] == 1
    lake = Lake(lake_root)
    pyocto_sm = lake.query("SELECT * FROM station_magnitudes WHERE associator = 'pyocto'")
    assert set(pyocto_sm["law"]) == {"table-test"}
    assert len(lake.query("SELECT * FROM amplitudes WHERE associator = 'pyocto'")) == n_amplitudes
    redone = queries.events(lake, associators=["pyocto"]).set_index("event_id")
    medians = pyocto_sm.groupby("event_id")["magnitude"].median()
    assert np.allclose(redone.loc[medians.index, "magnitude"], medians)
    assert not np.isclose(redone.loc[ev["event_id"], "magnitude"], ev["magnitude"])


def test_law_from_configuration_and_bad_values():
    """The law comes from the run configuration; a bad table names the parameter."""
    from quakelake.config import ConfigError, build_config

    cfg = build_config(
        overrides={"magnitude": {"law": {"name": "OGS-ML", "table": [[10, 1.6], [100, 3.0]]}}}
    )
    assert cfg.magnitude.law.name == "OGS-ML"
    assert cfg.magnitude.law.magnitude(1e-3, 100.0) == pytest.approx(3.0)
    assert build_config(overrides={"magnitude": None}).magnitude is None
    with pytest.raises(ConfigError, match=r"magnitude\.law.*increase"):
        build_config(overrides={"magnitude": {"law": {"table": [[10, 1.0], [5, 2.0]]}}})
