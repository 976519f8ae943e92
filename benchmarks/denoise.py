"""Denoising: SNR gain and pick recall/precision with and without the denoiser, on data not used in training.

1. Train SeisDAE (``quakelake.picking.denoise.train_denoiser``) on Mesetas 2019 (CM network, Colombia):
   signal windows around SeisMonitor's PhaseNet picks with P/S SNR >= ``--min-snr``, noise windows
   with no pick within 30 s, on ``--train-stations``.
2. SNR gain on Salton Sea (CI network, California; never seen in training): 30 s windows around
   each station's highest-SNR reference P pick, plus real noise cut from a Mesetas station not used
   in training (no SeisMonitor pick within 60 s), scaled to a known SNR (power ratio over the
   window, Z/N/E each); SNR after = 10 log10(P_signal / P_(denoised - signal)).
3. Picking: PhaseNet on the Salton Sea 180 s recordings with that real noise added at each level,
   raw vs denoised, matched to the 184 reference picks within 0.5 s (recall, precision).
4. Cost: seconds to denoise vs seconds to pick the same data.

    .venv/bin/python benchmarks/denoise.py [--epochs 3] [--snr -5 0 5 10] [--picker PhaseNet/original]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune import _setup_env, score  # noqa: E402  (same folder, same helpers)


def seismonitor_reference(csv: Path, out: Path) -> Path:
    """Write SeisMonitor's picks as a station_id/phase/time/probability CSV that import-catalog reads."""
    import pandas as pd

    df = pd.read_csv(csv)
    table = pd.DataFrame(
        {
            "station_id": df["network"]
            + "."
            + df["station"]
            + "."
            + df["location"].fillna("").astype(str).str.zfill(2)
            + "."
            + df["instrument_type"],
            "phase": df["phasehint"],
            "time": pd.to_datetime(df["arrival_time"], utc=True).dt.strftime(
                "%Y-%m-%dT%H:%M:%S.%f"
            ),
            "probability": df["probability"],
        }
    )
    table.to_csv(out, index=False)
    return out


def noise_segments(mesetas: Path, station: str, picks, seconds: float, count: int):
    """Return ``count`` real noise streams of ``seconds`` from ``station`` with no pick within 60 s."""
    import obspy
    import pandas as pd

    st = obspy.Stream()
    for path in sorted((mesetas / "mseed").glob(f"CM.{station}.00.HH?__*")):
        st += obspy.read(str(path))
    st.merge(method=1, fill_value=0)
    times = pd.to_datetime(picks.loc[picks["station"] == station, "arrival_time"], utc=True)
    t = st[0].stats.starttime + 60
    out = []
    while len(out) < count and t + seconds < st[0].stats.endtime:
        lo, hi = pd.Timestamp(t.datetime, tz="UTC"), pd.Timestamp((t + seconds).datetime, tz="UTC")
        if not (
            (times > lo - pd.Timedelta(seconds=60)) & (times < hi + pd.Timedelta(seconds=60))
        ).any():
            seg = st.slice(t, t + seconds - 0.01).copy()
            if len(seg) == 3 and all(np.std(tr.data) > 0 for tr in seg):
                out.append({tr.stats.channel[-1]: tr.data.astype(np.float64) for tr in seg})
        t += seconds
    return out


def add_noise(stream, noise: dict, snr_db: float):
    """Return (noisy copy of ``stream``, per-channel clean data) with ``noise`` scaled to ``snr_db`` per channel."""
    noisy = stream.copy()
    clean = {}
    for tr in noisy:
        s = tr.data.astype(np.float64) - tr.data.mean()
        n = noise[tr.stats.channel[-1]][: len(s)]
        n = n - n.mean()
        scale = np.sqrt(np.mean(s**2) / (np.mean(n**2) * 10 ** (snr_db / 10)))
        clean[tr.stats.channel] = s
        tr.data = (s + scale * n).astype(np.float32)
    return noisy, clean


def snr_after(denoised, clean: dict) -> float:
    """Return the mean over channels of 10 log10(P_signal / P_error) of ``denoised`` against ``clean``."""
    values = []
    for tr in denoised:
        s = clean[tr.stats.channel]
        d = tr.data[: len(s)].astype(np.float64)
        s = s[: len(d)]
        values.append(10 * np.log10(np.mean(s**2) / np.mean((d - s) ** 2)))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-stations", nargs="+", default=["URMC", "PRA", "ORTC", "CHI"])
    p.add_argument(
        "--noise-station", default="YOT", help="Mesetas station the added noise comes from"
    )
    p.add_argument("--min-snr", type=float, default=10.0)
    p.add_argument(
        "--max-signal", type=int, default=60, help="signal windows per training instrument"
    )
    p.add_argument("--snr", nargs="+", type=float, default=[-5.0, 0.0, 5.0, 10.0])
    p.add_argument("--picker", default="PhaseNet/original")
    p.add_argument("--denoiser", help="use these cached weights (Class/name) instead of training")
    args = p.parse_args(argv)
    mesetas = SHARED / "data" / "seismonitor_mesetas_2019"
    salton = SHARED / "data" / "phasenet_saltonsea_20201001"
    if not mesetas.is_dir() or not salton.is_dir():
        print(
            f"error: real data not found under {SHARED / 'data'} (set QUAKELAKE_SHARED)",
            file=sys.stderr,
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-denoise-"))
    _setup_env(tmp)
    import obspy
    import pandas as pd
    import torch

    from quakelake.catalogs import import_catalog
    from quakelake.params import StationSelection
    from quakelake.picking import denoise
    from quakelake.picking import models as picking

    sm_csv = mesetas / "seismonitor_outputs" / "pnet_seismonitor_picks.csv"
    sm = pd.read_csv(sm_csv)
    print(f"torch threads {torch.get_num_threads()}, device cpu")
    if args.denoiser:
        spec = args.denoiser
    else:
        lake = tmp / "lake"
        import_catalog(
            lake, [seismonitor_reference(sm_csv, tmp / "seismonitor.csv")], "seismonitor"
        )
        params = denoise.DenoiserTrainParams(
            labels="reference",
            reference="seismonitor",
            name="bench_mesetas",
            epochs=args.epochs,
            min_snr_db=args.min_snr,
            max_signal_per_instrument=args.max_signal,
            holdout_stations=[f"CM.{args.train_stations[-1]}"],
            device="cpu",
        )
        t0 = time.perf_counter()
        card = denoise.train_denoiser(
            lake,
            mesetas / "mseed",
            params,
            selection=StationSelection(stations=args.train_stations, channels=["HH?"]),
        )
        print(
            f"trained SeisDAE/bench_mesetas in {time.perf_counter() - t0:.0f} s: windows {card['windows']}, "
            f"validation loss {card['history'][0]['val_loss']:.4f} -> {card['history'][-1]['val_loss']:.4f}"
        )
        spec = "SeisDAE/bench_mesetas"
    dn = denoise.load_denoiser(spec, "cpu")
    pm, pw = args.picker.split("/")
    picker = picking.load_model(pm, pw, "cpu")

    ref = pd.read_csv(salton / "DERIVED_phasenet_ref_picks_first180s.csv")
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    files = sorted((salton / "mseed").glob("*.mseed"))
    streams = {f.name.split(".")[1]: obspy.read(str(f)) for f in files}
    noise = noise_segments(mesetas, args.noise_station, sm, 181.0, len(streams))
    if len(noise) < len(streams):
        noise = (noise * len(streams))[: len(streams)]

    # 2. SNR gain on 30 s windows around each station's strongest reference P
    print(
        f"\nSNR gain on Salton Sea 30 s P windows + real {args.noise_station} noise ({len(streams)} stations):"
    )
    print(f"{'SNR in dB':>10}{'SNR out dB':>12}{'gain dB':>10}")
    for level in args.snr:
        outs = []
        for k, (sta, st) in enumerate(streams.items()):
            p_ref = ref[(ref["station_id"] == f"CI.{sta}..HH") & (ref["phase"] == "P")]
            if p_ref.empty:
                continue
            t = obspy.UTCDateTime(p_ref["time"].iloc[0].to_pydatetime())
            start = max(st[0].stats.starttime, t - 10)
            win = st.slice(start, start + 29.995).copy()
            if any(tr.stats.npts < 3000 for tr in win):
                continue
            for tr in win:
                tr.data = tr.data[:3000]
            noisy, clean = add_noise(win, noise[k], level)
            outs.append(snr_after(denoise.denoise_stream(dn, noisy), clean))
        print(f"{level:10.1f}{np.mean(outs):12.2f}{np.mean(outs) - level:10.2f}")

    # 3. picks with and without the denoiser, on the whole recordings with noise added
    print(
        f"\nPicking {args.picker} on Salton Sea 180 s + real noise, vs the 184 reference picks (0.5 s):"
    )
    print(f"{'noise':>10}{'input':>10}{'recall':>9}{'precision':>11}{'TP':>5}{'FP':>5}{'FN':>5}")
    spec_raw = picking.ModelSpec(pm, pw)
    t_pick = t_denoise = 0.0
    for level in [None, *args.snr]:
        frames = {"raw": [], "denoised": []}
        for k, (sta, st) in enumerate(streams.items()):
            noisy = st.copy() if level is None else add_noise(st, noise[k], level)[0]
            t0 = time.perf_counter()
            clean = denoise.denoise_stream(dn, noisy)
            t_denoise += time.perf_counter() - t0
            for name, data in (("raw", noisy), ("denoised", clean)):
                t0 = time.perf_counter()
                out = picker.classify(data, P_threshold=0.3, S_threshold=0.3)
                t_pick += time.perf_counter() - t0
                frames[name].append(
                    picking.picks_frame(list(out.picks), spec_raw, {f"CI.{sta}.": "HH"})
                )
        for name, fr in frames.items():
            s = score(pd.concat(fr, ignore_index=True), ref, 0.5)
            label = "none" if level is None else f"{level:g} dB"
            print(
                f"{label:>10}{name:>10}{s['recall']:9.3f}{s['precision']:11.3f}{s['tp']:5d}{s['fp']:5d}{s['fn']:5d}"
            )
    n_runs = len(args.snr) + 1
    print(
        f"\ncost per 180 s x 16 stations: denoise {t_denoise / n_runs:.2f} s, pick (raw + denoised) "
        f"{t_pick / n_runs / 2:.2f} s per input; ratio denoise/pick {t_denoise / (t_pick / 2):.2f}"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
