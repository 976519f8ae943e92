"""Stage 3, analysis: the lake's picks, events and reference in and results back (compare),
matching and metrics (evaluation), per-group metrics (groups), figures (plotting), the report
(report) and interactive review (review). Plain Python: no Prefect.

Public names are re-exported lazily (:mod:`quakelake.exports`): ``from quakelake.analysis import X``
imports only the submodule that defines ``X``.
"""

from __future__ import annotations

from quakelake.exports import lazy_exports

_EXPORTS = {
    "COVERAGE_GAP_S": "compare",
    "Evaluation": "evaluation",
    "analysis_figures": "plotting",
    "assign_pairs": "evaluation",
    "embed_images": "report",
    "epicentral_km": "evaluation",
    "evaluate": "evaluation",
    "event_metrics": "evaluation",
    "group_metrics": "groups",
    "keep_event_types": "evaluation",
    "load_coverage": "compare",
    "load_events": "compare",
    "load_picks": "compare",
    "load_reference": "compare",
    "magnitude_metrics": "evaluation",
    "magnitude_residuals": "evaluation",
    "markdown_table": "report",
    "match_events": "evaluation",
    "match_picks": "evaluation",
    "merge_intervals": "evaluation",
    "metrics_table": "evaluation",
    "normalise_phase": "evaluation",
    "pick_metrics": "evaluation",
    "plot_cumulative_events": "plotting",
    "plot_event_map": "plotting",
    "plot_pick_residuals": "plotting",
    "plot_precision_recall": "plotting",
    "plot_station_day": "plotting",
    "render_html": "report",
    "render_markdown": "report",
    "require_display": "plotting",
    "save": "plotting",
    "save_figures": "plotting",
    "scores": "evaluation",
    "show_one_by_one": "plotting",
    "station_day_views": "review",
    "station_key": "evaluation",
    "station_level": "evaluation",
    "summary_tables": "report",
    "with_day": "evaluation",
    "write_evaluation": "compare",
    "write_report": "report",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
