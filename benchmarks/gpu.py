"""GPU picking throughput of the engine: station-days per hour on one CUDA device, checked against the CPU.

One prepared script for a GPU machine. It builds full 24-h station-days from the real Mesetas
recordings (:mod:`daydata`), decodes them once into memory (decoding is CPU work that other
workers or threads overlap), then times the engine with the model resident on the GPU, batches
filled across stations (``--per-call`` station-days per engine call, ``--batch`` windows per
batch) for each precision asked. It prints the device name, station-days/hour per GPU, the
decode rate per CPU core (what feeding the GPU costs) and the agreement of the GPU picks with the
CPU path (SeisBench ``classify`` on a few of the same station-days, fp32 on the CPU).

    python benchmarks/gpu.py [--stations 7 --days 2] [--precision fp32 bf16 fp16] [--batch 4096]

Without CUDA it says so and exits 0 (so it can be run anywhere); ``--allow-cpu`` runs the same
code on the CPU (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daydata import FIRST_DAY, MESETAS, build_day_archive  # noqa: E402
from picking import agreement, setup_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=MESETAS)
    parser.add_argument("--stations", type=int, default=7)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--model", default="PhaseNet")
    parser.add_argument("--weights", default="original")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=4096, help="windows per GPU batch")
    parser.add_argument("--per-call", type=int, default=7, help="station-days per engine call")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the station-days")
    parser.add_argument(
        "--check", type=int, default=2, help="station-days checked against CPU classify"
    )
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run on the CPU when there is no GPU"
    )
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            "no CUDA device visible to torch: nothing to measure (run on a GPU machine, or --allow-cpu)"
        )
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-gpu-"))
    setup_env(tmp)

    import datetime as dt

    import pandas as pd
    import seisbench.models as sbm

    from quakelake.archive import waveforms
    from quakelake.config import TimeWindow
    from quakelake.picking import engine

    t0 = time.perf_counter()
    archive = build_day_archive(tmp / "archive", args.days, args.source, stations=args.stations)
    window = TimeWindow(start=FIRST_DAY, end=FIRST_DAY + dt.timedelta(days=args.days - 1))
    units = waveforms.station_days(waveforms.scan_archive(archive).index, window)
    t1 = time.perf_counter()
    days = []
    for unit in units:
        days.append((unit, waveforms.read_station_day(unit)[0]))
    decode_s = (time.perf_counter() - t1) / len(units)
    print(
        f"device: {name} ({device}), torch {torch.__version__}; {len(units)} station-days of 24 h built in "
        f"{t1 - t0:.0f} s; decode (read_station_day) {decode_s:.2f} s/station-day on one core "
        f"= {3600 / decode_s:.0f} station-days/hour per core"
    )

    base = getattr(sbm, args.model).from_pretrained(args.weights)
    base.eval()
    cpu_model = base
    kwargs = {"P_threshold": 0.3, "S_threshold": 0.3}

    # Reference: SeisBench classify on the CPU, fp32, for the first --check station-days.
    ref = []
    t0 = time.perf_counter()
    for _, instruments in days[: args.check]:
        for inst in instruments:
            for p in cpu_model.classify(inst.stream.copy(), **kwargs).picks:
                ref.append(
                    (
                        p.trace_id,
                        p.phase,
                        pd.Timestamp(p.peak_time.datetime, tz="UTC"),
                        float(p.peak_value),
                    )
                )
    cpu_s = (time.perf_counter() - t0) / max(1, args.check)
    print(
        f"CPU reference (SeisBench classify, {torch.get_num_threads()} threads): {cpu_s:.2f} s/station-day"
    )

    import copy

    gpu_model = copy.deepcopy(base).to(device)
    gpu_model.eval()
    for precision in args.precision:
        eng = engine.PickEngine(gpu_model, "torch", precision=precision)
        streams = [inst.stream for _, instruments in days for inst in instruments]
        eng.classify(
            streams[: args.per_call], batch_size=args.batch, **kwargs
        )  # warm-up, cuDNN autotune
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        eng.stats = engine.EngineStats()
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            for i in range(0, len(streams), args.per_call):
                eng.classify(streams[i : i + args.per_call], batch_size=args.batch, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        n = args.repeat * len(days)
        rate = n / seconds * 3600
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        stages = ", ".join(f"{k} {v / n:.3f}" for k, v in eng.stats.seconds.items())
        outs = eng.classify(
            [inst.stream for _, instruments in days[: args.check] for inst in instruments],
            batch_size=args.batch,
            **kwargs,
        )
        ours = [
            (p.trace_id, p.phase, pd.Timestamp(p.peak_time.datetime, tz="UTC"), float(p.peak_value))
            for out in outs
            for p in out.picks
        ]
        ok, detail = agreement(ours, ref)
        print(
            f"{precision}: {rate:.0f} station-days/hour per GPU ({seconds / n:.3f} s/station-day, batch "
            f"{args.batch}, {args.per_call} station-days per call, peak GPU memory {mem:.1f} GiB); "
            f"stages s/station-day: {stages}"
        )
        print(f"{precision}: picks agree with CPU classify: {ok}  ({detail})")
        print(f"{precision}: decode cores needed to feed this rate: {rate / (3600 / decode_s):.1f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
