"""Local magnitude validation on real data: INGV station MLs, the Salton Sea SCSN event, Mesetas 2019.

Data (``../shared/data``):

* ``ingv_quakeml_20210101``: INGV's station MLs recomputed from their own Wood-Anderson
  amplitudes and arrival distances with our Hutton & Boore (1987) law (INGV's law).
* ``ingv_quakeml_20210101`` again (``ingv-corrections``): ML station corrections estimated on
  half the events, the event ML residual (ours - INGV) on the other half before and after.
* ``phasenet_saltonsea_20201001``: ML of the one SCSN event (M 2.43) from the 16-station
  waveforms and StationXML responses, windows placed by the reference PhaseNet picks.
* ``seismonitor_mesetas_2019``: SeisMonitor's PhaseNet picks associated with PyOcto (relaxed pick
  counts for a 7-station regional network), ML of every event from the waveforms and the SGC
  StationXML (overall sensitivities only); the Mw 6.0 mainshock, which the association misses
  (its coda hides the S picks), measured at the aftershock centroid with its first P picks.

Usage::

    python benchmarks/magnitudes.py [ingv|ingv-corrections|salton|mesetas ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
from obspy.geodetics import degrees2kilometers

from quakelake.archive.stations import read_stations
from quakelake.archive.waveforms import scan_archive
from quakelake.association import associate as asc
from quakelake.association import magnitudes as mag
from quakelake.params.association import AreaParams, PyOctoConfig, VelocityParams

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared")) / "data"


def ingv() -> None:
    rows = []
    for path in sorted((DATA / "ingv_quakeml_20210101").glob("*.qml")):
        ev = obspy.read_events(str(path))[0]
        amps = {str(a.resource_id): a for a in ev.amplitudes}
        origins = {str(o.resource_id): o for o in ev.origins}
        for sm in ev.station_magnitudes:
            amp, origin = amps.get(str(sm.amplitude_id)), origins.get(str(sm.origin_id))
            if amp is None or origin is None:
                continue
            dist = {
                (p.waveform_id.network_code, p.waveform_id.station_code): a.distance
                for a in origin.arrivals
                if a.distance is not None
                for p in [a.pick_id.get_referred_object()]
                if p is not None
            }
            key = (sm.waveform_id.network_code, sm.waveform_id.station_code)
            if key in dist:
                epi = degrees2kilometers(dist[key])
                r = float(np.hypot(epi, origin.depth / 1000.0))
                rows.append((sm.mag, amp.generic_amplitude, r, epi))
    df = pd.DataFrame(rows, columns=["ml", "amplitude_m", "distance_km", "epicentral_km"])
    ours = mag.AttenuationLaw().magnitude(df["amplitude_m"], df["distance_km"])
    d = ours - df["ml"]
    print(
        f"INGV station MLs ({len(df)} with amplitude and distance, 8 events), law HB87 hypocentral: "
        f"mean diff {d.mean():+.3f}, std {d.std():.3f}, max |diff| {d.abs().max():.3f}, "
        f"same after rounding to 0.1: {np.mean(np.round(ours, 1) == df['ml']):.1%}, "
        f"|diff| <= 0.05: {np.mean(d.abs() <= 0.0501):.1%}"
    )
    d_epi = mag.AttenuationLaw().magnitude(df["amplitude_m"], df["epicentral_km"]) - df["ml"]
    print(
        f"  the same law with epicentral distance: mean diff {d_epi.mean():+.3f}, std {d_epi.std():.3f}"
    )


def _salton_picks(folder: Path, stations: pd.DataFrame, origin: dict) -> pd.DataFrame:
    picks = pd.read_csv(folder / "DERIVED_phasenet_ref_picks_first180s.csv")
    picks["time"] = pd.to_datetime(picks["time"], utc=True, format="ISO8601")
    picks["station_id"] = picks["station_id"].str.rsplit(".", n=1).str[0]
    coords = stations.drop_duplicates(["network", "station", "location"])
    hypo, _ = mag.hypocentral_km(
        origin["latitude"],
        origin["longitude"],
        origin["depth_km"],
        coords["latitude"].to_numpy(),
        coords["longitude"].to_numpy(),
    )
    keep = []
    for (net, sta, loc), r in zip(
        coords[["network", "station", "location"]].itertuples(index=False), hypo, strict=True
    ):
        for phase, speed in (("P", 6.0), ("S", 3.46)):
            expected = origin["time"] + pd.Timedelta(seconds=r / speed)
            mine = picks[(picks["station_id"] == f"{net}.{sta}.{loc}") & (picks["phase"] == phase)]
            keep.append(
                mine[(mine["time"] - expected).abs() < pd.Timedelta(seconds=2.0 + 0.02 * r)].head(1)
            )
    return pd.concat(keep, ignore_index=True)


def salton() -> None:
    folder = DATA / "phasenet_saltonsea_20201001"
    origin = {
        "event_id": "scsn",
        "time": pd.Timestamp("2020-10-01T00:02:21.07", tz="UTC"),
        "latitude": 33.092,
        "longitude": -115.585,
        "depth_km": 2.51,
    }
    t0 = time.perf_counter()
    inventory = obspy.read_inventory(str(folder / "stations.xml"))
    stream = obspy.Stream()
    for path in sorted((folder / "mseed").glob("*.mseed")):
        stream += obspy.read(str(path))
    stations = read_stations(folder / "stations.xml")
    picks = _salton_picks(folder, stations, origin)
    amps, _ = mag.measure_amplitudes("scsn", picks, stream, inventory, origin_time=origin["time"])
    sm = mag.station_magnitudes(amps, pd.DataFrame([origin]), stations)
    ev = mag.event_magnitudes(sm).iloc[0]
    print(
        f"Salton Sea SCSN event 2020-10-01T00:02:21.07 M 2.43: ours ML {ev['magnitude']:.2f} "
        f"+- {ev['magnitude_uncertainty']:.2f} from {ev['magnitude_station_count']} stations "
        f"(diff {ev['magnitude'] - 2.43:+.2f}), {time.perf_counter() - t0:.1f} s"
    )
    print(
        "  station MLs:",
        ", ".join(
            f"{s.station} {s.magnitude:.2f} @{s.distance_km:.0f} km" for s in sm.itertuples()
        ),
    )


def mesetas() -> None:
    folder = DATA / "seismonitor_mesetas_2019"
    raw = pd.read_csv(folder / "seismonitor_outputs" / "pnet_seismonitor_picks.csv")
    picks = pd.DataFrame(
        {
            "pick_id": raw["pick_id"],
            "station_id": raw["network"]
            + "."
            + raw["station"]
            + "."
            + raw["location"].astype(str).str.zfill(2),
            "phase": raw["phasehint"],
            "time": pd.to_datetime(raw["arrival_time"], utc=True),
            "probability": raw["probability"],
        }
    )
    stations = read_stations(folder / "inv.xml")
    config = PyOctoConfig(
        n_picks=6,
        n_p_picks=3,
        n_s_picks=2,
        n_p_and_s_picks=2,
        time_before_s=150,
        area=AreaParams(depth_km=(0, 40)),
        velocity=VelocityParams(kind="0d", vp=6.2, vs=3.6),
    )
    t0 = time.perf_counter()
    res = asc.associate_day(picks, stations, dt.date(2019, 12, 24), config)
    t1 = time.perf_counter()
    index = scan_archive(folder / "mseed").index
    inventory = obspy.read_inventory(str(folder / "inv.xml"))
    out = mag.day_magnitudes(res.events, res.assignments, stations, inventory, index)
    t2 = time.perf_counter()
    ev = out.events.dropna(subset=["magnitude"]).sort_values("magnitude", ascending=False)
    print(
        f"Mesetas 2019-12-24: {len(res.events)} events associated ({t1 - t0:.1f} s), {len(ev)} with ML "
        f"({t2 - t1:.1f} s for amplitudes on {index['station'].nunique()} stations)"
    )
    print("| origin (UTC) | lat | lon | depth km | ML | spread | stations |")
    print("|---|---|---|---|---|---|---|")
    for r in ev.head(10).itertuples():
        print(
            f"| {pd.Timestamp(r.time):%H:%M:%S} | {r.latitude:.3f} | {r.longitude:.3f} | {r.depth_km:.0f} | "
            f"{r.magnitude:.2f} | {r.magnitude_uncertainty:.2f} | {r.magnitude_station_count} |"
        )
    print(
        f"ML range of the {len(ev)} events: {ev['magnitude'].min():.2f} .. {ev['magnitude'].max():.2f}"
    )

    # The mainshock: no event (PhaseNet finds its P picks, the S picks drown in the coda).
    centroid = {
        "latitude": float(ev["latitude"].median()),
        "longitude": float(ev["longitude"].median()),
        "depth_km": float(ev["depth_km"].median()),
    }
    first = picks[
        (picks["time"] >= pd.Timestamp("2019-12-24T19:03:50", tz="UTC"))
        & (picks["time"] < pd.Timestamp("2019-12-24T19:04:40", tz="UTC"))
    ]
    first = first.sort_values("time").drop_duplicates(["station_id", "phase"])
    coords = stations.drop_duplicates(["network", "station", "location"])
    coords = coords.assign(
        station_id=coords["network"] + "." + coords["station"] + "." + coords["location"]
    )
    coords = coords.set_index("station_id").loc[first["station_id"]]
    hypo, _ = mag.hypocentral_km(
        centroid["latitude"],
        centroid["longitude"],
        centroid["depth_km"],
        coords["latitude"].to_numpy(),
        coords["longitude"].to_numpy(),
    )
    is_p = (first["phase"] == "P").to_numpy()
    origin_time = (first["time"][is_p] - pd.to_timedelta(hypo[is_p] / 6.2, unit="s")).median()
    main = {"event_id": "mainshock", "time": origin_time, **centroid}
    stream = obspy.Stream()
    for sid in first["station_id"].unique():
        st, _ = mag.read_waveforms(
            index,
            sid,
            origin_time - pd.Timedelta(seconds=60),
            origin_time + pd.Timedelta(seconds=240),
        )
        stream += st
    amps, notes = mag.measure_amplitudes(
        "mainshock", first, stream, inventory, origin_time=origin_time
    )
    sm = mag.station_magnitudes(amps, pd.DataFrame([main]), stations)
    me = mag.event_magnitudes(sm).iloc[0]
    print(
        f"Mainshock (Mw 6.0, origin {origin_time:%H:%M:%S.%f} from {int(is_p.sum())} P picks at the centroid): "
        f"ML {me['magnitude']:.2f} +- {me['magnitude_uncertainty']:.2f} from {me['magnitude_station_count']} "
        "stations"
    )
    for s in sm.sort_values("distance_km").itertuples():
        peak = amps[amps["station_id"] == s.station_id]
        print(
            f"  {s.station:5s} {s.distance_km:5.0f} km  ML {s.magnitude:.2f}  WA peak {s.amplitude_m * 1000:.0f} mm "
            f"(period {peak['period_s'].max():.2f} s)"
        )
    if notes:
        print("  notes:", "; ".join(notes))


def _event_ml(station_ml: pd.DataFrame, column: str) -> pd.Series:
    return station_ml.groupby("event_id")[column].median()


def ingv_corrections() -> None:
    """Station corrections estimated on half of INGV's events, tested on the other half.

    Our station MLs: INGV's Wood-Anderson amplitudes and hypocentral distances through HB87
    (as :func:`ingv`). Events are sorted by origin time and split alternately (1st, 3rd, ...
    estimate; 2nd, 4th, ... test). The residual is our event ML (median of station MLs) minus
    INGV's event ML, on the test events, before and after the corrections of the estimating half.
    """
    from quakelake.association.station_corrections import (
        apply_corrections,
        estimate_corrections,
        read_quakeml_station_magnitudes,
    )

    paths = sorted((DATA / "ingv_quakeml_20210101").glob("*.qml"))
    events, sm = read_quakeml_station_magnitudes(paths)
    sm = sm.dropna(subset=["amplitude_m", "distance_km"])
    law = mag.AttenuationLaw()
    sm = sm.assign(
        reference_ml=sm["magnitude"], magnitude=law.magnitude(sm["amplitude_m"], sm["distance_km"])
    )
    used = sorted(set(sm["event_id"]))  # the events with station amplitudes, in origin-time order
    order = {e: i for i, e in enumerate(sorted(used, key=lambda e: paths_order(paths, e)))}
    estimate = [e for e in used if order[e] % 2 == 0]
    test = [e for e in used if order[e] % 2 == 1]
    ref = events.set_index("event_id")["magnitude"]
    theirs = sm[["event_id", "station_id", "reference_ml"]].rename(
        columns={"reference_ml": "magnitude"}
    )
    for against, reference, min_events in (
        ("event", events, 2),
        ("event", events, 1),
        ("station", theirs, 1),
    ):
        corr = estimate_corrections(
            sm[sm["event_id"].isin(estimate)],
            reference[reference["event_id"].isin(estimate)],
            against=against,
            min_events=min_events,
        )
        held = sm[sm["event_id"].isin(test)]
        covered = (
            held["station_id"]
            .map(lambda s: ".".join(s.split(".")[:2]))
            .isin(set(corr["station_id"]))
        )
        after = held.assign(corrected=apply_corrections(held, corr))
        before_r = _event_ml(after, "magnitude") - ref.reindex(test)
        after_r = _event_ml(after, "corrected") - ref.reindex(test)
        print(
            f"INGV station corrections against the {against} ML: {len(corr)} stations corrected "
            f"(>= {min_events} events; median support {corr['n_events'].median():.0f} events, median spread "
            f"{corr['spread'].median():.3f}) from {len(estimate)} events; tested on {len(test)} events "
            f"({len(held)} station MLs, {covered.mean():.0%} at corrected stations): "
            f"event ML - INGV mean {before_r.mean():+.3f} std {before_r.std():.3f} before, "
            f"mean {after_r.mean():+.3f} std {after_r.std():.3f} after; "
            f"station ML - INGV event ML std {(held['magnitude'] - held['event_id'].map(ref)).std():.3f} before, "
            f"{(after['corrected'] - after['event_id'].map(ref)).std():.3f} after"
        )


def paths_order(paths: list[Path], event_id: str) -> str:
    """Return the file name (it starts with the origin time) of an INGV event id."""
    for path in paths:
        if f"__{event_id.rsplit('=', 1)[-1]}__" in path.name:
            return path.name
    return event_id


SETS = {"ingv": ingv, "ingv-corrections": ingv_corrections, "salton": salton, "mesetas": mesetas}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", help=f"which sets ({', '.join(SETS)}; default all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sets) - set(SETS))
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    for name in args.sets or SETS:
        SETS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
