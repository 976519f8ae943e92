"""``quakelake demo``: the whole available pipeline on a small real data set.

Real data only: a folder given with ``--data`` or ``$QUAKELAKE_DEMO_DATA``. Never synthetic.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from quakelake.cli.printing import (
    format_table,
    print_analysis,
    print_association,
    print_summary,
    print_timing,
)
from quakelake.config import PickParams, RunConfig
from quakelake.errors import BadInput, FailedWork
from quakelake.picking.weights import cache_root, has_weights, seed_from_folder, seed_from_sdist

HOW_TO = (
    "--data: no demo data; give a folder of real miniSEED/SAC recordings with quakelake demo --data DIR "
    "(or export QUAKELAKE_DEMO_DATA=DIR, or make demo DEMO_DATA=DIR), e.g. the Salton Sea sample of the "
    "shared data ../shared/data/phasenet_saltonsea_20201001/mseed or any day of continuous data from your "
    "network (SDS tree or flat folder)"
)


def demo_weights() -> PickParams:
    """Return the picking parameters of the demo, seeding the SeisBench cache if it lacks weights.

    PhaseNet "original" when available (a shared weights folder given by $QUAKELAKE_WEIGHTS), else
    the PhaseNetLight "ethz" weights shipped in SeisBench's PyPI source distribution.
    """
    source = os.environ.get("QUAKELAKE_WEIGHTS")
    if source and Path(source).is_dir():
        seed_from_folder(Path(source))
    if has_weights("PhaseNet", "original"):
        return PickParams(models=["PhaseNet"], weights=["original"])
    if has_weights("PhaseNetLight", "ethz") or seed_from_sdist():
        return PickParams(models=["PhaseNetLight"], weights=["ethz"])
    raise FailedWork(
        f"no pretrained weights in the SeisBench cache {cache_root()} and none could be fetched: set "
        "QUAKELAKE_WEIGHTS to a SeisBench cache folder with models/v3/... (e.g. ../shared/seisbench_cache)"
    )


def run_demo(data: Path | None, cfg: RunConfig, reference_files: list[Path] | None = None) -> int:
    """Run the pipeline on the demo data into ``cfg.lake`` (compared with ``reference_files`` if given)."""
    folder = data or (
        Path(os.environ["QUAKELAKE_DEMO_DATA"]) if os.environ.get("QUAKELAKE_DEMO_DATA") else None
    )
    if folder is None:
        raise BadInput(HOW_TO)
    if not folder.is_dir():
        raise BadInput(
            f"--data: demo data folder {folder} does not exist; {HOW_TO.removeprefix('--data: ')}"
        )
    missing = [str(p) for p in reference_files or [] if not p.exists()]
    if missing:
        raise BadInput(f"--reference-file: no such file {', '.join(missing)}")
    pick = demo_weights()
    update: dict = {"directory": folder, "pick": pick}
    if reference_files:
        update["analyze"] = cfg.analyze.model_copy(
            update={
                "reference": cfg.analyze.reference or "demo-reference",
                "reference_paths": list(reference_files),
                "report_dir": cfg.analyze.report_dir or Path(cfg.lake) / "reports" / "demo",
            }
        )
    cfg = cfg.model_copy(update=update)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from quakelake.flows.pipeline import run_pipeline
    from quakelake.lakehouse import Lake

    t0 = time.perf_counter()
    out = run_pipeline(cfg)
    print_summary(out["pick"], cfg.lake)
    if cfg.timing:
        print_timing(out["pick"]["seconds"], time.perf_counter() - t0)
    for summary in out.get("associate", []):
        print_association(summary)
    lake = Lake(cfg.lake)
    queries = [
        "SELECT model, weights, phase, count(*) AS picks FROM picks GROUP BY ALL ORDER BY ALL"
    ]
    if lake.has_files("events"):
        queries.append(
            "SELECT associator, pick_source, time, round(latitude, 3) AS lat, "
            "round(longitude, 3) AS lon, round(depth_km, 1) AS depth_km, n_p, n_s, "
            "round(magnitude, 1) AS ML, round(magnitude_uncertainty, 2) AS ML_spread, "
            "magnitude_station_count AS ML_stations, evaluation_status AS status "
            "FROM events ORDER BY pick_source, time"
        )
    for query in queries:
        print(f'\nquakelake sql --lake {cfg.lake} "{query}"')
        print(format_table(lake.query(query)))
    if "analyze" in out:
        print()
        print_analysis(out["analyze"], cfg.lake)
    return 0
