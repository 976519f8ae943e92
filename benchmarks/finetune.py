"""Fine-tuned vs parent weights on held-out real picks (station cross-validation), side by side.

For each fold a quarter of the stations is held out: the picker is fine-tuned (``quakelake.picking.training``)
on windows of the other stations around the reference picks, then parent and fine-tuned weights
pick the held-out stations' full recordings (SeisBench ``classify``, same thresholds) and are
matched to the reference picks within the tolerance. Prints recall, precision and residuals per
fold and over all folds, and the ratio fine-tuned/parent.

Default data: Salton Sea 2020-10-01, 16 CI stations x 180 s, reference = the 184 picks of the
original PhaseNet (``DERIVED_phasenet_ref_picks_first180s.csv``; automatic picks, not analyst
picks: fine-tuning here teaches PhaseNetLight to pick like PhaseNet on this network).

    .venv/bin/python benchmarks/finetune.py [--model PhaseNetLight --weights ethz] [--epochs 5] [--folds 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))


def _setup_env(tmp: Path) -> None:
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        if (SHARED / "seisbench_cache").is_dir():
            shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


def score(picks, ref, tolerance: float) -> dict:
    """Return TP/FP/FN, recall, precision and residuals of ``picks`` against ``ref`` (one pick per reference)."""
    import numpy as np

    used: set[int] = set()
    residuals = []
    for row in ref.itertuples():
        cand = picks[(picks["station_id"] == row.station_id) & (picks["phase"] == row.phase)]
        cand = cand[~cand.index.isin(used)]
        if not len(cand):
            continue
        dt = (cand["time"] - row.time).dt.total_seconds()
        best = dt.abs().idxmin()
        if abs(dt[best]) <= tolerance:
            used.add(best)
            residuals.append(dt[best])
    tp = len(used)
    fp, fn = len(picks) - tp, len(ref) - tp
    res = np.asarray(residuals)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "recall": tp / max(len(ref), 1),
        "precision": tp / max(len(picks), 1),
        "residual_median": float(np.median(res)) if len(res) else float("nan"),
        "residual_mad": float(np.median(np.abs(res - np.median(res))))
        if len(res)
        else float("nan"),
    }


def pick_stations(model, spec, files: list[Path], threshold: float):
    """Return the picks ``model`` makes on each file (one station's 3-C recording each)."""
    import obspy
    import pandas as pd

    from quakelake.picking import models as picking

    frames = []
    for path in files:
        st = obspy.read(str(path))
        tr = st[0].stats
        out = model.classify(st, P_threshold=threshold, S_threshold=threshold)
        frames.append(
            picking.picks_frame(
                list(out.picks), spec, {f"{tr.network}.{tr.station}.{tr.location}": tr.channel[:2]}
            )
        )
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    salton = SHARED / "data" / "phasenet_saltonsea_20201001"
    p.add_argument(
        "--data", type=Path, default=salton / "mseed", help="one miniSEED file per station"
    )
    p.add_argument(
        "--reference", type=Path, default=salton / "DERIVED_phasenet_ref_picks_first180s.csv"
    )
    p.add_argument("--model", default="PhaseNetLight")
    p.add_argument("--weights", default="ethz")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--window", type=float, default=40.0)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--threshold", type=float, default=0.3)
    p.add_argument("--tolerance", type=float, default=0.5)
    args = p.parse_args(argv)
    if not args.data.is_dir() or not args.reference.is_file():
        print(
            f"error: --data {args.data} / --reference {args.reference} not found (set QUAKELAKE_SHARED)",
            file=sys.stderr,
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-finetune-"))
    _setup_env(tmp)
    import pandas as pd
    import torch

    from quakelake.catalogs import import_catalog
    from quakelake.picking import models as picking
    from quakelake.picking import training

    lake = tmp / "lake"
    import_catalog(lake, [args.reference], "ref")
    ref = pd.read_csv(args.reference)
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    files = {".".join(f.name.split(".")[:2]): f for f in sorted(args.data.glob("*.mseed"))}
    stations = sorted(files)
    parent = picking.load_model(args.model, args.weights, "cpu")
    print(
        f"{args.model}/{args.weights} fine-tuned on {args.reference.name}: {len(stations)} stations, "
        f"{args.folds} folds, {args.epochs} epochs, lr {args.learning_rate}, window {args.window} s, "
        f"threshold {args.threshold}, tolerance {args.tolerance} s, torch threads {torch.get_num_threads()}"
    )
    rows, all_parent, all_tuned, all_ref = [], [], [], []
    all_parent_low, all_tuned_low = [], []
    for fold in range(args.folds):
        held = stations[fold :: args.folds]
        params = training.TrainParams(
            model=args.model,
            weights=args.weights,
            reference="ref",
            name=f"bench_fold{fold}_{int(time.time())}",
            holdout_stations=held,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            window_s=args.window,
            device="cpu",
        )
        t0 = time.perf_counter()
        card = training.train_picker(lake, args.data, params)
        seconds = time.perf_counter() - t0
        tuned = picking.load_model(args.model, card["name"], "cpu")
        held_files = [files[s] for s in held]
        held_ref = ref[ref["station_id"].str.rsplit(".", n=2).str[0].isin(held)]
        pp = pick_stations(
            parent, picking.ModelSpec(args.model, args.weights), held_files, args.threshold
        )
        tp = pick_stations(
            tuned, picking.ModelSpec(args.model, card["name"]), held_files, args.threshold
        )
        sp, st_ = score(pp, held_ref, args.tolerance), score(tp, held_ref, args.tolerance)
        all_parent_low.append(
            pick_stations(parent, picking.ModelSpec(args.model, args.weights), held_files, 0.1)
        )
        all_tuned_low.append(
            pick_stations(tuned, picking.ModelSpec(args.model, card["name"]), held_files, 0.1)
        )
        all_parent.append(pp)
        all_tuned.append(tp)
        all_ref.append(held_ref)
        h = card["history"]
        rows.append(
            (
                fold,
                ",".join(s.split(".")[1] for s in held),
                card["windows"],
                h[0]["val_loss"],
                h[-1]["val_loss"],
                sp,
                st_,
                seconds,
            )
        )
    print(
        f"\n{'fold':<5}{'held-out':<22}{'windows':<24}{'val loss':<18}{'parent R/P':<16}{'tuned R/P':<16}"
        f"{'train s':>8}"
    )
    for fold, held, windows, l0, l1, sp, st_, seconds in rows:
        print(
            f"{fold:<5}{held:<22}{str(windows):<24}{l0:.4f}->{l1:.4f}    {sp['recall']:.3f}/{sp['precision']:.3f}"
            f"     {st_['recall']:.3f}/{st_['precision']:.3f}     {seconds:8.1f}"
        )
    ap = score(pd.concat(all_parent, ignore_index=True), pd.concat(all_ref), args.tolerance)
    at = score(pd.concat(all_tuned, ignore_index=True), pd.concat(all_ref), args.tolerance)
    print(f"\nall held-out stations ({len(pd.concat(all_ref))} reference picks):")
    for name, s in (("parent", ap), ("fine-tuned", at)):
        print(
            f"  {name:<11} TP {s['tp']:4d} FP {s['fp']:4d} FN {s['fn']:4d}  recall {s['recall']:.3f}  "
            f"precision {s['precision']:.3f}  residual median {s['residual_median']:+.3f} s  "
            f"MAD {s['residual_mad']:.3f} s"
        )
    print(
        f"  ratio fine-tuned/parent: recall {at['recall'] / max(ap['recall'], 1e-9):.2f}, "
        f"precision {at['precision'] / max(ap['precision'], 1e-9):.2f}"
    )
    # thresholds move recall against precision: compare at every threshold, and at best F1
    print("\nthreshold sweep over all held-out stations (picks made at 0.1, kept at >= threshold):")
    print(f"{'threshold':>10}{'parent R/P/F1':>22}{'tuned R/P/F1':>22}")
    every_p = pd.concat(all_parent_low, ignore_index=True)
    every_t = pd.concat(all_tuned_low, ignore_index=True)
    refs = pd.concat(all_ref)
    best = {"parent": (0.0, 0.0), "fine-tuned": (0.0, 0.0)}
    for thr in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        cells = []
        for name, frame in (("parent", every_p), ("fine-tuned", every_t)):
            s = score(
                frame[frame["probability"] >= thr].reset_index(drop=True), refs, args.tolerance
            )
            f1 = 2 * s["recall"] * s["precision"] / max(s["recall"] + s["precision"], 1e-9)
            best[name] = max(best[name], (f1, thr))
            cells.append(f"{s['recall']:.3f}/{s['precision']:.3f}/{f1:.3f}")
        print(f"{thr:10.1f}{cells[0]:>22}{cells[1]:>22}")
    print(
        f"  best F1: parent {best['parent'][0]:.3f} at {best['parent'][1]:.1f}, "
        f"fine-tuned {best['fine-tuned'][0]:.3f} at {best['fine-tuned'][1]:.1f}; "
        f"ratio {best['fine-tuned'][0] / max(best['parent'][0], 1e-9):.2f}"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
