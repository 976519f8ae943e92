"""The analyze flow: lake picks/events vs a reference catalogue -> matches, metrics, plots, report."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from quakelake.analysis import report
from quakelake.flows.common import collect, current_flow_run_id, one_try, recover_crashed_runs
from quakelake.lakehouse.lineage import UnitResult, new_run_id, record_units, recorded_run
from quakelake.params.evaluation import MatchParams, RunSelection
from quakelake.tasks.analyze import (
    compare_with_reference,
    draw_and_report,
    import_reference,
    read_run_outputs,
)


@flow(name="analyze-run", log_prints=True)
def analyze_run(
    lake: Path = Path("lake"),
    reference: str = "reference",
    selection: RunSelection = RunSelection(),
    params: MatchParams = MatchParams(),
    reference_paths: list[Path] | None = None,
    report_dir: Path | None = None,
    run_id: str | None = None,
    groups: dict[str, list[str]] | None = None,
) -> dict:
    """Compare the lake's picks and events with a reference catalogue and report the result.

    Args:
        lake: lake root folder.
        reference: name of the reference catalogue in the lake.
        selection: which runs, models, weights, associators and time span to compare.
        params: matching tolerances (pick |dt|, event |dt| and epicentral distance).
        reference_paths: catalogue files/folders imported as ``reference`` first (optional).
        report_dir: folder of report.md/report.html and the PNG figures
            (default: ``<lake>/reports/<run_id>``).
        run_id: lineage id of this analysis (a new one when empty).
        groups: station groups {name: NET.STA patterns}: also report metrics per group.
    """
    logger = get_run_logger()
    lake = Path(lake)
    run_id = run_id or new_run_id()  # the report folder is named after it
    folder = Path(report_dir) if report_dir else lake / "reports" / run_id
    config = {
        "reference": reference,
        "selection": selection.model_dump(mode="json"),
        "params": params.model_dump(),
        "reference_paths": [str(p) for p in reference_paths or []],
        "report_dir": str(folder),
        "groups": groups or {},
    }
    recover_crashed_runs(lake)
    results: list[UnitResult] = []
    with recorded_run(
        lake,
        "analyze",
        config,
        run_id,
        current_flow_run_id(),
        before_finish=lambda run: record_units(lake, run.run_id, "analyze", results),
    ) as run:
        if reference_paths:
            counts = import_reference(lake, [Path(p) for p in reference_paths], reference)
            logger.info(
                "imported reference %s: %d events, %d picks",
                reference,
                counts["events"],
                counts["picks"],
            )
        compared = collect(
            f"compare:{reference}",
            compare_with_reference.submit(lake, reference, selection, params, run_id, groups),
            "analyze",
        )
        results.append(compared)
        if compared.status == "failed":
            raise RuntimeError(f"comparison with {reference!r} failed: {compared.error}")
        for warning in compared.extra.get("warnings", []):
            logger.warning("%s", warning)
        notes = {
            "tolerances": f"picks {params.pick_tolerance_s} s; events {params.event_max_dt_s} s, "
            f"{params.event_max_km} km",
            "compared span": compared.extra.get("span"),
            "picks / reference picks": f"{compared.extra.get('picks')} / "
            f"{compared.extra.get('reference_picks')}",
            "events per catalogue / reference events": "; ".join(
                f"{name}: {n}" for name, n in (compared.extra.get("catalogues") or {}).items()
            )
            + f" / {compared.extra.get('reference_events')}",
        }
        drawn = collect(
            f"report:{reference}",
            draw_and_report.submit(lake, run_id, reference, selection, folder, notes),
            "analyze",
        )
        results.append(drawn)
        summary = {
            "run_id": run_id,
            "reference": reference,
            "lake": str(lake),
            "report": str(folder / "report.md"),
            "figures": drawn.extra.get("figures", {}),
            **compared.extra,
        }
        with one_try():
            _publish(lake, run_id, reference, drawn)
        run.status = "completed" if drawn.status != "failed" else "completed_with_failures"
        if compared.extra.get("warnings"):
            run.status = "completed_with_warnings"
        return summary


def _publish(lake: Path, run_id: str, reference: str, drawn: UnitResult) -> None:
    try:
        metrics = read_run_outputs(lake, run_id, reference)["metrics"]
        for title, table in report.summary_tables(metrics).items():
            # Prefect keys: lowercase letters, digits and dashes only
            key = "analysis-" + re.sub(r"[^a-z0-9]+", "-", title.lower().replace(" x ", "-")).strip(
                "-"
            )
            create_table_artifact(
                table=table.astype(object).where(table.notna(), None).to_dict(orient="records"),
                key=key,
                description=f"{title}: run {run_id} vs {reference}",
            )
        markdown = drawn.extra.get("markdown") or f"# Analysis {run_id}\n\nno report was written"
        if drawn.output:
            markdown = report.embed_images(markdown, Path(drawn.output).parent)
        create_markdown_artifact(
            markdown=markdown,
            key="analysis-report",
            description=f"analysis {run_id} vs {reference}",
        )
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        logging.getLogger(__name__).warning("could not publish artifacts: %s", exc)
