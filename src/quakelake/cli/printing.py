"""What the command line prints: run summaries, tables and timings in seismology's words.

No dict, list or datetime reprs reach the user: phase counts read ``P 90, S 85``, channel
selections ``CI.*.*.HH?``. Used by :mod:`quakelake.cli` and :mod:`quakelake.cli.demo`; imports
nothing heavy at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quakelake.params.text import counts_text


def warn(message: str) -> None:
    """Print a ``warning:`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def format_table(frame, max_rows: int = 100) -> str:
    """Return ``frame`` as an aligned text table with a row count."""
    import pandas as pd

    with pd.option_context(
        "display.max_rows",
        max_rows,
        "display.max_columns",
        None,
        "display.width",
        200,
        "display.max_colwidth",
        60,
    ):
        body = frame.to_string(index=False, max_rows=max_rows) if len(frame) else "(no rows)"
    return f"{body}\n({len(frame)} row{'s' if len(frame) != 1 else ''})"


def print_timing(stages: Mapping[str, float], total: float | None = None) -> None:
    """Print one aligned line per stage in seconds, then the total."""
    for stage, seconds in stages.items():
        print(f"  {stage:<24} {seconds:8.2f} s")
    if total is not None:
        print(f"  {'total':<24} {total:8.2f} s")


def print_summary(summary: dict, lake: Path | str) -> None:
    """Print the summary line of a pick run and a warning per model x weights it skipped.

    A summary without a run id is that of a rerun that found every unit in the lake and ran
    no flow (:func:`quakelake.picking.plan.nothing_to_do`).
    """
    run = f"run {summary['run_id']}" if summary.get("run_id") else "nothing to do"
    print(
        f"{run}: {summary['units']} units (done {summary['done']}, skipped "
        f"{summary['skipped']}, failed {summary['failed']}), picks "
        f"{counts_text(summary.get('picks_per_phase'))}, unreadable files "
        f"{summary['unreadable_files']} -> lake {lake}"
    )
    if summary.get("ensemble"):
        print(f"ensemble picks: model 'ensemble', weights {summary['ensemble']}")
    skipped = summary.get("skipped_weights", [])
    for w in skipped:
        warn(w)
    if skipped:
        ran = summary.get("models", [])
        warn(
            f"ran {len(ran)} of {len(ran) + len(skipped)} model x weights combinations "
            f"({', '.join(ran)}); the skipped ones are listed above"
        )


def lake_ml(lake_root: Path | str, summary: dict, window: Any = None) -> str | None:
    """Return the ML line of an association summary's catalogue: range, median, spread, stations."""
    from quakelake.lakehouse import Lake

    lake = Lake(lake_root)
    if not lake.has_files("events"):
        return None
    where, values = _catalogue_where(summary, window)
    row = lake.query(
        "SELECT count(magnitude) AS n, min(magnitude) AS lo, median(magnitude) AS mid, "
        "max(magnitude) AS hi, median(magnitude_uncertainty) AS spread, "
        f"median(magnitude_station_count) AS stations FROM events WHERE {where}",
        values,
    ).iloc[0]
    if not row["n"]:
        return None
    spread = "" if row["spread"] is None or row["spread"] != row["spread"] else row["spread"]
    return (
        f"ML of these events: {int(row['n'])} events, ML {row['lo']:.1f} to {row['hi']:.1f} "
        f"(median {row['mid']:.1f}); per event: median of its station MLs"
        + (f", spread (std) median {spread:.2f}" if spread != "" else "")
        + f", {row['stations']:.0f} stations (median)"
    )


def _catalogue_where(summary: dict, window: Any = None) -> tuple[str, list[Any]]:
    """Return the SQL condition (and its values) of a summary's reported events (no rejected origin)."""
    from quakelake.catalogs.evaluation import REPORTED_SQL

    where = f"config_fingerprint = ? AND pick_source = ? AND {REPORTED_SQL}"
    values: list[Any] = [summary["config_fingerprint"], summary["pick_source"]]
    if window is not None and window.start is not None:
        where += " AND day >= ?"
        values.append(window.start)
    if window is not None and window.end is not None:
        where += " AND day <= ?"
        values.append(window.end)
    return where, values


def lake_events(lake_root: Path | str, summary: dict, window: Any = None) -> int | None:
    """Return the reported events the lake holds for an association summary's configuration and pick source.

    Counts every committed event of the same associator configuration and picks over the window
    (all days when open), so days skipped because an earlier run made them are counted too.
    None when the lake has no events table yet.
    """
    from quakelake.lakehouse import Lake

    lake = Lake(lake_root)
    if not lake.has_files("events"):
        return None
    where, values = _catalogue_where(summary, window)
    return int(lake.query(f"SELECT count(*) AS n FROM events WHERE {where}", values)["n"][0])


def print_association(
    summary: dict, lake_root: Path | str | None = None, window: Any = None
) -> None:
    """Print an association summary line: days by status, events written and events the lake holds."""
    held = lake_events(lake_root, summary, window) if lake_root is not None else None
    # no run id: a rerun that found every day in the lake (quakelake.association.plan)
    run = f"associate {summary['run_id']}" if summary.get("run_id") else "nothing to do: associate"
    line = (
        f"{run} ({summary['associator']}, {summary['pick_source']}): "
        f"{summary['days']} days (done {summary['done']}, skipped {summary['skipped']}, failed "
        f"{summary['failed']}), {summary['events']} events written"
    )
    if held is not None:
        line += f", lake holds {held} events for these days"
    if summary.get("origins") is not None:
        from quakelake.association.quality import describe

        line += (
            f" ({describe(summary['origins'], summary['rejected'], summary['rejected_reasons'])})"
        )
    print(line)
    if summary.get("settings"):
        from quakelake.association.settings import format_settings

        print(
            f"derived association settings ({format_settings(summary['settings'])}); "
            "set any of them in the config file to override"
        )
    mags = summary.get("magnitudes")
    if mags:
        why = f" ({'; '.join(mags['why_none'])})" if mags.get("why_none") else ""
        print(
            f"magnitudes ({mags['law']}): {mags['events_with_ml']} events with ML, days done {mags['done']}, "
            f"skipped {mags['skipped']}, failed {mags['failed']}, without data {mags['no_data']}{why}"
        )
        ml = lake_ml(lake_root, summary, window) if lake_root is not None else None
        if ml:
            print(ml)
    qc = summary.get("metadata_qc")
    if qc:
        print(
            f"metadata QC: {qc['channels']} channels ({qc['without_metadata']} sites with picks "
            f"but no metadata, {qc['without_response']} channels without a valid response; "
            f"{qc['used_for_location']} used for location, {qc['used_for_magnitude']} for "
            'magnitude): quakelake sql "SELECT * FROM metadata_qc"'
        )
    if summary.get("origins") and summary.get("origins") == summary.get("rejected"):
        warn(
            f"the quality gate rejected all {summary['origins']} origins "
            f"({', '.join(summary.get('rejected_reasons') or {})}): check the station metadata "
            "(metadata_qc) or relax associate.gate in the config file"
        )
    if summary.get("unknown_stations"):
        warn(f"picks on stations without coordinates: {', '.join(summary['unknown_stations'])}")


def print_download(summary: dict) -> None:
    """Print a download summary line and a warning per FDSN client that failed."""
    print(
        f"download {summary['run_id']}: {summary['units']} station-days (ok {summary['ok']}, skipped "
        f"{summary['skipped']}, partial {summary.get('partial', 0)}, no data {summary['no_data']}, failed "
        f"{summary['failed']}), {summary['bytes'] / 1e6:.1f} MB -> {summary['archive']}"
    )
    for unit, gap in (summary.get("gaps") or {}).items():
        warn(f"{unit} is partial: {gap}; the next run fetches the missing part")
    errors = summary.get("client_errors") or {}
    items = errors.items() if isinstance(errors, Mapping) else ((None, e) for e in errors)
    for name, err in items:
        warn(f"FDSN client {name}: {err}" if name else str(err))


def print_analysis(summary: dict, lake: Path | str) -> None:
    """Print the metrics of an analysis run (precision, recall, residuals per model x weights)."""
    from quakelake.lakehouse import Lake

    store = Lake(lake)
    metrics = None
    if store.has_files("metrics"):
        metrics = store.query(
            "SELECT level, CASE WHEN group_by LIKE 'group,%' THEN group_value ELSE '' END AS \"group\", "
            "model, weights, associator, phase, tp, fp, fn, round(precision, 3) AS precision, "
            "round(recall, 3) AS recall, round(residual_median, 3) AS residual_median FROM metrics "
            "WHERE run_id = ? AND group_by IN ('model,weights', 'model,weights,phase', 'associator', "
            "'group,model,weights', 'group,model,weights,phase', 'group,associator') ORDER BY ALL",
            [summary["run_id"]],
        )
    print(f"analysis {summary['run_id']} against reference {summary.get('reference')}:")
    if metrics is not None and len(metrics):
        print(format_table(metrics))
    for warning in summary.get("warnings") or []:
        warn(warning)
    if summary.get("report"):
        print(f"report: {summary['report']}")


def print_card(card: dict[str, Any]) -> None:
    """Print what a training run produced: weights name, windows, loss curve, validation."""
    first, last = card["history"][0], card["history"][-1]
    print(
        f"trained {card['model']}/{card['name']} (parent {card['parent_weights']}) on {card['windows']} "
        f"windows in {card['seconds']} s on {card['device']}: validation loss {first['val_loss']:.4f} -> "
        f"{last['val_loss']:.4f}"
    )
    for key in ("validation_parent", "validation"):
        if key in card:
            v = card[key]
            print(
                f"  {key:<18} recall {v['recall']:.3f}  precision {v['precision']:.3f}  "
                f"residual median {v['residual_median_s']:+.3f} s"
            )
    print(f"  weights: {card['weights_path']}")
