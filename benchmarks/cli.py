"""Command latency of ``quakelake``: help, a bad input, the 180 s Salton Sea pick, run, associate, no-ops.

Each command runs in its own process, as a user types it, in three set-ups side by side:

- ``baseline``: the code of ``--baseline-src`` (e.g. the main branch before issue 10) with
  Prefect's temporary server per command (what every command paid before);
- ``temporary``: this code, no Prefect server configured (Prefect's temporary server per command);
- ``local``: this code with the server of ``quakelake server start`` running (started once, its
  start-up reported separately);
- ``warm`` (on request): ``quakelake server start --workers 1``: the pick units run on a worker
  that keeps the model stack loaded; its CPU is not the command's, so read the wall column;
- ``local-cold`` (on request): this code with ``quakelake server start --cold``: no warm process,
  every command imports its stack itself (what ``local`` was before warm start).

Since warm start (issue 26) ``local`` and ``warm`` commands run in a fork of the warm process
that ``server start`` keeps: their work's CPU is that process's, not the command's (the CPU
column shows the command's own ~0.3 s); read the wall column.

"cold" is the first pick into an empty lake (station-days computed), "warm" the identical
rerun that finds nothing to do (since issue 10's third pass answered from the lake before
Prefect is imported, so it needs no server); then ``run -F stations.xml`` over the same lake
(picks found done, the day associated and its magnitudes measured; the first repeat with an
empty user cache, ``$XDG_CACHE_HOME`` of the set-up: numba compiles GaMMA's kernels and the
eikonal tables are solved, shown as its own row; later repeats find them), and the identical ``run``
and ``associate`` reruns (answered from the lake too since issue 10h). Wall seconds and the CPU seconds of the command's processes
are printed, then the ratios against the baseline. On a shared machine read the CPU column
and the ratios; wall seconds grow with the machine's load (printed too).

    .venv/bin/python benchmarks/cli.py
    .venv/bin/python benchmarks/cli.py --baseline-src ../main/src --repeat 3
    .venv/bin/python benchmarks/cli.py --baseline-src OLD/src --setups baseline-local,local
    .venv/bin/python benchmarks/cli.py --baseline-src OLD/src --setups baseline-local,local \
        --repeat 3 --only run      # issue 26: run -F with a warm user cache, median of 2
    .venv/bin/python benchmarks/cli.py --baseline-src OLD/src --interleave 5
        # issue 26: run -F, the baseline, this code on its own (QUAKELAKE_COLD_START=1) and
        # this code in a fork of the warm process, in turn (same load), medians
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
SALTON = SHARED / "data" / "phasenet_saltonsea_20201001" / "mseed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run ``python -m quakelake.cli ARGS``; return wall s, CPU s of the child, exit status, stderr tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, proc.stderr.strip()[-300:]


def _env(src: Path, work: Path, setup: Path) -> dict[str, str]:
    """Return the environment of a set-up's commands: its code, Prefect home and user cache.

    The user cache (numba kernels, eikonal and travel-time tables, StationXML) is the set-up's
    own: empty at its first command, filled by it for the next ones. The weights are one copy
    of the shared cache in ``work``.
    """
    (setup / "prefect").mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PREFECT_HOME": str(setup / "prefect"),
        "MPLBACKEND": "Agg",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Prefect's default (20 s) is too short for its temporary server on a loaded machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "XDG_CACHE_HOME": str(setup / "cache"),
    }
    env.pop("PREFECT_API_URL", None)
    if not env.get("SEISBENCH_CACHE_ROOT") and (SHARED / "seisbench_cache").is_dir():
        cache = work / "seisbench"
        if not cache.exists():
            shutil.copytree(SHARED / "seisbench_cache", cache)
        env["SEISBENCH_CACHE_ROOT"] = str(cache)
    return env


def measure(
    name: str,
    src: Path,
    work: Path,
    repeat: int,
    server: bool,
    workers: int = 0,
    only: str | None = None,
    cold: bool = False,
) -> dict[str, tuple[float, float]]:
    """Return (wall, cpu) medians per command for one set-up (``cold``: ``server start --cold``)."""
    env = _env(src, work, work / name)
    out: dict[str, tuple[float, float]] = {}
    port = _free_port()
    if server:
        start = ["server", "start", "--port", str(port), "--silent", *(["--cold"] if cold else [])]
        wall, cpu, code, err = timed(start + (["--workers", str(workers)] if workers else []), env)
        if code:
            raise SystemExit(f"server start failed: {err}")
        out["server start (once)"] = (wall, cpu)
    try:
        rows: dict[str, list[tuple[float, float]]] = {}
        for i in range(repeat):
            lake = work / name / f"lake{i}"
            pick = [
                "pick",
                "-d",
                str(SALTON),
                "--lake",
                str(lake),
                "-M",
                "PhaseNet",
                "-W",
                "original",
                "--silent",
            ]
            run = ["run", *pick[1:], "-F", str(SALTON.parent / "stations.xml")]
            associate = ["associate", "--lake", str(lake), "-F", run[-1], "--silent"]
            first = " (empty cache)" if i == 0 and repeat > 1 else ""
            for label, args, want in (
                ("--help", ["--help"], 0),
                ("bad input (-p 1.5)", [*pick, "-p", "1.5"], 2),
                ("pick 180 s, cold", pick, 0),
                ("no-op rerun, warm", pick, 0),
                # the same picks: run associates them (and measures magnitudes) once
                (f"run -F (associate){first}", run, 0),
                ("run no-op, warm", run, 0),
                ("associate no-op, warm", associate, 0),
            ):
                if only == "run" and not (
                    label == "pick 180 s, cold" or label.startswith("run -F")
                ):
                    continue  # the pick only makes the lake that run -F associates
                wall, cpu, code, err = timed(args, env)
                if code != want:
                    raise SystemExit(f"{name}: {label} exited {code}: {err}")
                rows.setdefault(label, []).append((wall, cpu))
        for label, values in rows.items():
            out[label] = (
                statistics.median(v[0] for v in values),
                statistics.median(v[1] for v in values),
            )
    finally:
        if server:
            timed(["server", "stop", "--silent"], env)
    return out


def interleaved(base_src: Path, src: Path, work: Path, repeat: int) -> None:
    """Time ``run -F`` with ``base_src``, this code on its own and this code warm-started, in
    turn, each into a fresh copy of one picked lake, against one local server: all three see the
    same machine load (issue 26). The server's warm process runs this code; the baseline's
    commands (another ``PYTHONPATH``) and ``QUAKELAKE_COLD_START=1`` ones run on their own."""
    env = _env(src, work, work / "interleaved")
    picked = work / "picked"
    pick = ["pick", "-d", str(SALTON), "--lake", str(picked), "-M", "PhaseNet", "-W", "original"]
    start = ["server", "start", "--port", str(_free_port()), "--silent"]
    for args in (start, [*pick, "--silent"]):
        wall, cpu, code, err = timed(args, env)
        if code:
            raise SystemExit(f"{args[0]} failed: {err}")
    stations = str(SALTON.parent / "stations.xml")
    arms = (
        ("baseline", {**env, "PYTHONPATH": str(base_src)}),
        ("this code, cold", {**env, "QUAKELAKE_COLD_START": "1"}),
        ("this code", env),
    )
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in arms}
    try:
        # the first round fills the user cache (numba kernels, eikonal tables) and .pyc files
        for i in range(repeat + 1):
            # each round starts with the next arm: a command runs while the server still files
            # the previous one's events, and a fixed order charged that to the same arm each time
            for name, arm_env in arms[i % len(arms) :] + arms[: i % len(arms)]:
                lake = work / "lake"
                shutil.rmtree(lake, ignore_errors=True)
                shutil.copytree(picked, lake)
                run = ["run", *pick[1:3], "--lake", str(lake), *pick[5:], "-F", stations]
                wall, cpu, code, err = timed([*run, "--silent"], arm_env)
                if code:
                    raise SystemExit(f"{name}: run -F exited {code}: {err}")
                if i:
                    rows[name].append((wall, cpu))
                    print(
                        f"{name:>15}: run -F {wall:5.2f} s wall, {cpu:5.2f} s CPU "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    finally:
        timed(["server", "stop", "--silent"], env)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in rows.items()
    }
    for name, (wall, cpu) in med.items():
        print(f"{name:>15}: median {wall:.2f} s wall, {cpu:.2f} s CPU ({repeat} runs)")
    w0, c0 = med["baseline"]
    for name in ("this code, cold", "this code"):
        w1, c1 = med[name]
        print(f"ratio baseline / {name}: wall {w0 / w1:.2f}x, CPU of the command {c0 / c1:.2f}x")
    print("(this code: run in a fork of the warm process, whose CPU is not the command's)")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="src folder of the code to compare with, e.g. ../main/src (default: none)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each command, median shown (default 1)"
    )
    parser.add_argument(
        "--setups",
        default="baseline,temporary,local",
        help="comma-separated set-ups to run: baseline (needs --baseline-src), baseline-local "
        "(the baseline code with a local server), temporary, local, warm (local server with "
        "one warm worker: its CPU is not the command's, read the wall column), local-cold "
        "(server start --cold: no warm process) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        choices=["run"],
        default=None,
        help="run: only the pick that makes the lake and `run -F` (default: every command)",
    )
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="N",
        help="time `run -F` N times with --baseline-src and this code alternately, one local "
        "server, one picked lake copied for each run (default: off)",
    )
    args = parser.parse_args()
    if not SALTON.is_dir():
        raise SystemExit(f"the Salton Sea sample {SALTON} is absent (set QUAKELAKE_SHARED)")
    work = Path(tempfile.mkdtemp(prefix="quakelake-bench-cli-"))
    if args.interleave:
        if args.baseline_src is None:
            raise SystemExit("error: --interleave needs --baseline-src")
        try:
            interleaved(args.baseline_src.resolve(), ROOT / "src", work, args.interleave)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    known = {
        "baseline": (args.baseline_src, False),
        "baseline-local": (args.baseline_src, True),
        "temporary": (ROOT / "src", False),
        "local": (ROOT / "src", True),
        "warm": (ROOT / "src", True),  # local server + `--workers 1`: model stack kept loaded
        "local-cold": (ROOT / "src", True),  # local server --cold: no warm process
    }
    setups = []
    for name in args.setups.split(","):
        if name not in known:
            raise SystemExit(f"error: --setups: unknown set-up {name!r}; use {', '.join(known)}")
        src, server = known[name]
        if src is None:
            if name == "baseline" and "--setups" not in sys.argv:
                continue  # the default list without --baseline-src: compare temporary and local
            raise SystemExit(f"error: --setups {name} needs --baseline-src")
        setups.append((name, Path(src).resolve(), server))
    results = {}
    try:
        for name, src, server in setups:
            load = os.getloadavg()[0]
            workers = 1 if name == "warm" else 0
            results[name] = measure(
                name, src, work, args.repeat, server, workers, args.only, name == "local-cold"
            )
            print(f"# {name}: src {src}, load average at start {load:.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels = list(dict.fromkeys(label for r in results.values() for label in r))
    width = max(22, *(len(label) + 1 for label in labels))
    print(f"\n{'command':<{width}}" + "".join(f"{n + ' wall/cpu s':>24}" for n in results))
    for label in labels:
        cells = "".join(
            f"{results[n][label][0]:>14.2f} /{results[n][label][1]:>7.2f}"
            if label in results[n]
            else f"{'-':>24}"
            for n in results
        )
        print(f"{label:<{width}}{cells}")
    names = list(results)
    ref, new = names[0], names[-1]
    if ref != new:
        print(f"\nratio {ref} / {new} (wall, CPU):")
        for label in labels:
            if label in results[ref] and label in results[new]:
                (w0, c0), (w1, c1) = results[ref][label], results[new][label]
                print(f"  {label:<{width}} {w0 / max(w1, 1e-9):6.2f}x {c0 / max(c1, 1e-9):6.2f}x")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
