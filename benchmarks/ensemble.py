"""Ensemble picks vs their best member on real labelled recordings, in one run.

Every member (model x weights) annotates each instrument once; its picks, and the consensus picks
of the ensembles (mean, median, semblance of the members' curves, exactly as the pick flow's
ensemble stage computes them), are then made at a sweep of thresholds and matched one-to-one with
the reference picks (same station and phase, within the tolerance; the analyzer's matcher).

Printed per data set: TP/FP/FN, precision, recall and residuals at the run thresholds (0.3), the
best F1 over the sweep, and the recall each ensemble reaches at the precision of the best member
(the highest recall over the thresholds whose precision is at least the best member's) with the ratio
to that member's recall; plus the seconds each stage costs on this machine.

    .venv/bin/python benchmarks/ensemble.py [--datasets saltonsea elep] [--members PhaseNet/original ...]

Reference picks: ``phasenet_saltonsea_20201001`` holds original-PhaseNet picks (an automatic
reference, biased towards the PhaseNet/original member); ``elep_pnw`` holds PNSN analyst picks
(few inside the 4 h of waveforms).
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
DEFAULT_MEMBERS = [
    "PhaseNet/original",
    "PhaseNet/volpick",
    "EQTransformer/original",
    "EQTransformer/conservative",
    "EQTransformer/volpick",
]
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]
RUN_THRESHOLD = 0.3
EDGE_S = 3.0  # picks this close to the ends of a recording are window artefacts for every model


def _setup_env(tmp: Path) -> None:
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        if (SHARED / "seisbench_cache").is_dir():
            shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


def saltonsea():
    """Return (archive folder, reference picks) of the Salton Sea sample."""
    import pandas as pd

    folder = SHARED / "data" / "phasenet_saltonsea_20201001"
    ref = pd.read_csv(folder / "DERIVED_phasenet_ref_picks_first180s.csv")
    ref["time"] = pd.to_datetime(ref["time"], utc=True, format="ISO8601")
    ref["station"] = ref["station_id"].str.split(".").str[:2].str.join(".")
    return folder / "mseed", ref[["station", "phase", "time"]]


def elep():
    """Return (archive folder, PNSN analyst picks) of the ELEP Pacific Northwest sample."""
    import pandas as pd

    folder = SHARED / "data" / "elep_pnw"
    parts = []
    for path in sorted(folder.glob("*.csv")):
        df = pd.read_csv(path)
        parts.append(
            pd.DataFrame(
                {
                    "station": df["network"] + "." + df["station"],
                    "phase": df["phase"].str[:1].str.upper(),
                    "time": pd.to_datetime(df["timestamp"], unit="s", utc=True),
                }
            )
        )
    return folder, pd.concat(parts, ignore_index=True)


DATASETS = {"saltonsea": saltonsea, "elep": elep}


def annotate_all(folder: Path, members: list[str], batch_size: int):
    """Return {(trace id, band): [annotation stream per member]}, data spans, seconds per member."""
    from quakelake.archive import waveforms
    from quakelake.params import StationSelection, TimeWindow
    from quakelake.picking import models as picking

    scan = waveforms.scan_archive(folder)
    units = waveforms.station_days(scan.index, TimeWindow(), StationSelection())
    models = [picking.load_model(*m.split("/"), "cpu") for m in members]
    out, spans, seconds = {}, {}, dict.fromkeys(members, 0.0)
    for unit in units:
        instruments, _ = waveforms.read_station_day(unit)
        for inst in instruments:
            key = (f"{inst.network}.{inst.station}.{inst.location}", inst.band)
            anns = []
            for label, model in zip(members, models, strict=True):
                t0 = time.perf_counter()
                anns.append(model.annotate(inst.stream, batch_size=batch_size))
                seconds[label] += time.perf_counter() - t0
            out[key] = anns
            spans[key] = (
                min(tr.stats.starttime for tr in inst.stream),
                max(tr.stats.endtime for tr in inst.stream),
            )
    return out, spans, seconds


def pick_sets(annotations, spans, members, method_sets):
    """Return {name: {threshold: picks frame}} for every member and ensemble, and ensemble seconds."""
    import pandas as pd

    from quakelake.picking import ensemble

    sets: dict[str, dict[float, list]] = {}
    seconds = 0.0
    for (trace_id, band), anns in annotations.items():
        lo, hi = (float(t.timestamp) for t in spans[(trace_id, band)])
        for phase in ensemble.PHASES:
            grid = ensemble.phase_grid(anns, phase)
            if grid is None:
                continue
            variants = [(m, [i], "mean") for i, m in enumerate(members)]
            variants += [(name, idx, method) for name, idx, method in method_sets]
            for name, idx, method in variants:
                sub = ensemble.PhaseGrid(grid.start, grid.delta, grid.curves[idx])
                labels = [members[i] for i in idx]
                params = ensemble.EnsembleParams(method=method)
                for thr in THRESHOLDS:
                    t0 = time.perf_counter()
                    picks, rows = ensemble.consensus(
                        sub, phase, labels, thr, thr, params, trace_id, band, name
                    )
                    if len(idx) > 1 and thr == RUN_THRESHOLD:
                        seconds += time.perf_counter() - t0
                    inside = [
                        (p, r)
                        for p, r in zip(picks, rows, strict=True)
                        if lo + EDGE_S <= p["time"].timestamp() <= hi - EDGE_S
                    ]
                    sets.setdefault(name, {}).setdefault(thr, []).extend(p for p, _ in inside)
                    if len(idx) > 1 and method == "mean":
                        # the same consensus, kept only where two members or more agree (ensemble_picks.n_agree)
                        agreed = [p for p, r in inside if r["n_agree"] >= 2]
                        sets.setdefault(f"{name} n_agree>=2", {}).setdefault(thr, []).extend(agreed)
    frames = {}
    for name, by_thr in sets.items():
        frames[name] = {}
        for thr, rows in by_thr.items():
            if rows:
                df = pd.DataFrame(rows)[["pick_id", "station_id", "phase", "time"]]
                df["station"] = df["station_id"].str.split(".").str[:2].str.join(".")
            else:
                df = pd.DataFrame(
                    {
                        "pick_id": [],
                        "station": [],
                        "phase": [],
                        "time": pd.to_datetime([], utc=True),
                    }
                )
            frames[name][thr] = df
    return frames, seconds


def score(picks, reference, tolerance: float):
    """Return (tp, fp, fn, precision, recall, f1, median residual, MAE) of ``picks`` vs ``reference``."""
    from quakelake.analysis import evaluation

    ref = reference.assign(pick_id=[f"r{i}" for i in range(len(reference))])
    m = evaluation.match_picks(
        picks[["pick_id", "station", "phase", "time"]], ref, tolerance, station_key="station"
    )
    row = evaluation.pick_metrics(m, by=[]).iloc[0]
    return (
        int(row.tp),
        int(row.fp),
        int(row.fn),
        row.precision,
        row.recall,
        row.f1,
        row.residual_median,
        row.residual_mae,
    )


def report(name: str, frames, reference, tolerance: float, members: list[str]) -> list[str]:
    """Print one data set's figures; return the lines of its Markdown table."""
    import math

    lines = []
    run = {k: score(v[RUN_THRESHOLD], reference, tolerance) for k, v in frames.items()}
    sweep = {
        k: {thr: score(df, reference, tolerance) for thr, df in v.items()}
        for k, v in frames.items()
    }
    best_member = max(members, key=lambda m: run[m][5] if not math.isnan(run[m][5]) else -1)
    bp, br = run[best_member][3], run[best_member][4]
    print(
        f"\n== {name}: {len(reference)} reference picks, tolerance {tolerance} s, run threshold {RUN_THRESHOLD}"
    )
    head = (
        f"{'pick set':<34} {'tp':>4} {'fp':>4} {'fn':>4} {'prec':>6} {'recall':>6} {'f1':>6} {'med_res':>8} "
        f"{'mae':>6} {'bestF1':>6}@thr {'recall@P>=best':>14} {'ratio':>6}"
    )
    print(head)
    for key in frames:
        tp, fp, fn, p, r, f1, med, mae = run[key]
        bf1, bthr = max(
            ((s[5] if not math.isnan(s[5]) else -1), thr) for thr, s in sweep[key].items()
        )
        ok = [
            (thr, s) for thr, s in sorted(sweep[key].items()) if not math.isnan(s[3]) and s[3] >= bp
        ]
        at = max(s[4] for _, s in ok) if ok else float("nan")
        ratio = at / br if br else float("nan")
        print(
            f"{key:<34} {tp:>4} {fp:>4} {fn:>4} {p:>6.3f} {r:>6.3f} {f1:>6.3f} {med:>8.3f} {mae:>6.3f} "
            f"{bf1:>6.3f}@{bthr:<4} {at:>14.3f} {ratio:>6.2f}"
        )
        lines.append(
            f"| {name} | {key} | {tp}/{fp}/{fn} | {p:.3f} | {r:.3f} | {f1:.3f} | {mae:.3f} | "
            f"{bf1:.3f} @ {bthr} | {at:.3f} | {ratio:.2f} |"
        )
    print(
        f"best member at the run threshold (F1): {best_member} (precision {bp:.3f}, recall {br:.3f})"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(DATASETS), default=["saltonsea", "elep"]
    )
    parser.add_argument(
        "--members", nargs="+", default=DEFAULT_MEMBERS, help="Model/weights members"
    )
    parser.add_argument("--tolerance", type=float, default=0.5, help="pick match tolerance (s)")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-bench-ensemble-"))
    _setup_env(tmp)
    sys.path.insert(0, str(ROOT / "src"))
    try:
        members = args.members
        all_idx = list(range(len(members)))
        method_sets = [
            (f"ensemble-{m}(all {len(members)})", all_idx, m)
            for m in ("mean", "median", "semblance")
        ]
        pn = [i for i, m in enumerate(members) if m.startswith("PhaseNet/")]
        eqt = [i for i, m in enumerate(members) if m.startswith("EQTransformer/")]
        if pn and eqt:
            pair = [pn[0], eqt[0]]
            method_sets.append(
                (f"ensemble-mean({members[pair[0]]}+{members[pair[1]]})", pair, "mean")
            )
        table = []
        for name in args.datasets:
            folder, reference = DATASETS[name]()
            t0 = time.perf_counter()
            annotations, spans, member_s = annotate_all(folder, members, args.batch)
            lo = min(s[0] for s in spans.values()).datetime
            hi = max(s[1] for s in spans.values()).datetime
            import pandas as pd

            t = reference["time"]
            reference = reference[
                (t >= pd.Timestamp(lo, tz="UTC") + pd.Timedelta(seconds=EDGE_S))
                & (t <= pd.Timestamp(hi, tz="UTC") - pd.Timedelta(seconds=EDGE_S))
            ]
            reference = reference[
                reference["station"].isin({k[0].rsplit(".", 1)[0] for k in annotations})
            ]
            frames, ens_s = pick_sets(annotations, spans, members, method_sets)
            table += report(name, frames, reference, args.tolerance, members)
            print(
                f"seconds: annotate per member {', '.join(f'{k} {v:.1f}' for k, v in member_s.items())}; "
                f"all members {sum(member_s.values()):.1f}; aggregation+picking of {len(method_sets)} "
                f"ensembles {ens_s:.2f}; data set total {time.perf_counter() - t0:.1f}"
            )
        print(
            "\n| data | pick set | TP/FP/FN @0.3 | precision | recall | F1 | MAE s | best F1 @ thr | "
            "recall @ precision >= best member | ratio to best member |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(table))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
