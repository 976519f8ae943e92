"""A Dask cluster that outlives one command, its workers holding the picking stack already loaded.

A cold ``quakelake pick`` spends most of its seconds before the first window reaches the network:
importing torch and SeisBench (~6 s on a 2-core machine), loading the weights and building the
engine's runtime (~1-3 s), in every command. ``quakelake server start --workers N`` starts, next
to the local Prefect server, this module as a process of its own: a ``distributed.LocalCluster`` of
``N`` worker processes (one thread each, BLAS capped, loopback only) that import the picking stack
and load the default model once when they start. The commands then send their pick units to it
(:func:`quakelake.cli.startup.use_warm_workers`) when the user chose no runner, so only the first command
after ``server start`` pays the start-up. ``quakelake server stop`` ends it with the server.

Run as ``python -m quakelake.service.warm --workers N --record FILE``: the cluster's scheduler address is
written to ``FILE`` (JSON, atomically) once every worker is up and warmed; the process then waits
until it is terminated. Prefect is imported once the cluster is up (the scheduler unpickles the
flow's context of each submission).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

from quakelake.flows.compute import blas_env
from quakelake.lakehouse.atomic import atomic_write

#: Modules a worker imports before its first task: the pick task's own import chain, and the
#: flow's module, which Prefect's context names in every submission.
WARM_MODULES = (
    "seisbench.models",
    "quakelake.picking.engine",
    "quakelake.tasks.pick",
    "quakelake.flows.pick",
)
#: Modules the scheduler (this process) imports to unpickle a submission's graph: without them the
#: first command after ``server start`` waits ~3 s for the scheduler to import Prefect.
SCHEDULER_MODULES = ("quakelake.flows.pick",)
#: Model and weights loaded (and the engine built) on each worker when the cache has them.
WARM_MODELS = (("PhaseNet", "original"),)


def warm_up() -> dict[str, str]:
    """Import the picking stack and load :data:`WARM_MODELS` in this process; return what failed.

    Missing weights are not an error: the first task that needs a model loads it as usual.
    """
    import importlib

    failed: dict[str, str] = {}
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional import must not stop the cluster
            failed[name] = f"{type(exc).__name__}: {exc}"
    from quakelake.params import PickParams
    from quakelake.picking import engine
    from quakelake.picking import models as picking

    for model_name, weights in WARM_MODELS:
        try:
            model = picking.load_model(model_name, weights, "cpu")
            if engine.accelerated(model, PickParams()):
                engine.get_engine(model, PickParams())
        except Exception as exc:  # e.g. weights not in SEISBENCH_CACHE_ROOT
            failed[f"{model_name}/{weights}"] = f"{type(exc).__name__}: {exc}"
    return failed


def _write(record_file: Path, record: dict) -> None:
    atomic_write(record_file, json.dumps(record))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quakelake.service.warm", description=__doc__)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--record", type=Path, required=True, help="JSON file for the address")
    args = parser.parse_args(argv)

    os.environ.update(blas_env(args.threads))
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env=blas_env(args.threads),
    )
    with Client(cluster) as client:
        failed = client.run(warm_up)
    import importlib

    for name in SCHEDULER_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the first submission imports it (and says what is wrong)
            failed["scheduler"] = {f"scheduler: {name}": f"{type(exc).__name__}: {exc}"}
    _write(
        args.record,
        {
            "address": cluster.scheduler_address,
            "workers": args.workers,
            "threads": args.threads,
            "pid": os.getpid(),
            "not_warmed": sorted({k for f in failed.values() for k in f}),
        },
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    cluster.close(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
