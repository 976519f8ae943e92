"""Markdown and HTML report of one analysis run: summary tables and figures.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from quakelake.analysis.evaluation import METRIC_COLUMNS

SUMMARY_COLUMNS = METRIC_COLUMNS
RESIDUAL_COLUMNS = [c for c in METRIC_COLUMNS if c.startswith("residual_")]


def _with_units(table: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Return ``table`` with its residual columns named with their unit, e.g. ``residual_mean (s)``."""
    return table.rename(columns={c: f"{c} ({unit})" for c in RESIDUAL_COLUMNS})


def summary_tables(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return the report's tables: picks per model x weights, per phase, events per catalogue."""
    out: dict[str, pd.DataFrame] = {}
    if not len(metrics):
        return out
    sel = {
        "Picks per model x weights": ("pick", "model,weights", ["model", "weights"]),
        "Picks per model x weights x phase": (
            "pick",
            "model,weights,phase",
            ["model", "weights", "phase"],
        ),
        "Events per catalogue (associator x model x weights)": (
            "event",
            "associator",
            ["associator", "model", "weights"],
        ),
        "Picks per group x model x weights": (
            "pick",
            "group,model,weights",
            ["group_value", "model", "weights"],
        ),
        "Events per group x catalogue": (
            "event",
            "group,associator",
            ["group_value", "associator", "model", "weights"],
        ),
    }
    for title, (level, group_by, keys) in sel.items():
        rows = metrics[(metrics["level"] == level) & (metrics["group_by"] == group_by)]
        if len(rows):
            # pick residuals: pick - reference time; event residuals: origin time difference
            out[title] = _with_units(
                rows[keys + SUMMARY_COLUMNS]
                .reset_index(drop=True)
                .rename(columns={"group_value": "group"}),
                "s",
            )
    rows = metrics[metrics["level"] == "magnitude"]
    if len(rows):
        table = rows[["associator", "model", "weights", "tp", *RESIDUAL_COLUMNS]].rename(
            columns={"tp": "matched events with magnitudes"}
        )
        out["Magnitude residuals per catalogue (ours - reference)"] = _with_units(
            table.reset_index(drop=True), "magnitude units"
        )
    return out


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """Return ``df`` as a GitHub-flavoured Markdown table (floats with 3 decimals)."""
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def render_markdown(
    run_id: str,
    reference: str,
    metrics: pd.DataFrame,
    figures: dict[str, Path] | None = None,
    notes: dict[str, object] | None = None,
    relative_to: Path | None = None,
) -> str:
    """Return the Markdown report of an analysis run.

    Args:
        run_id: the analysis run id.
        reference: the reference catalogue's name.
        metrics: rows of the ``metrics`` table of the run.
        figures: PNG paths by key (linked relative to ``relative_to`` when given).
        notes: extra facts listed under the title (tolerances, span, counts).
        relative_to: the report's folder.
    """
    lines = [f"# Analysis `{run_id}` against `{reference}`", ""]
    for key, value in (notes or {}).items():
        lines.append(f"- **{key}**: {value}")
    lines.append("")
    tables = summary_tables(metrics)
    if not tables:
        lines += ["No picks or events were compared.", ""]
    for title, table in tables.items():
        lines += [f"## {title}", "", markdown_table(table), ""]
    for key, path in (figures or {}).items():
        link = _link(path, relative_to)
        lines += [
            f"## {key.replace('_', ' ').capitalize()}",
            "",
            f"![{key}]({link.as_posix()})",
            "",
        ]
    return "\n".join(lines)


def _link(path: str | Path, relative_to: Path | None) -> Path:
    """Return ``path`` relative to the report folder when it lies inside it."""
    link = Path(path)
    if relative_to is not None:
        try:
            return link.relative_to(relative_to)
        except ValueError:
            pass
    return link


def render_html(
    markdown_text: str,
    metrics: pd.DataFrame,
    figures: dict[str, Path] | None,
    relative_to: Path | None = None,
    title: str = "QuakeLake analysis",
) -> str:
    """Return a self-standing simple HTML page with the same tables and figures."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for line in markdown_text.splitlines():
        if line.startswith("- "):
            parts.append(f"<p>{html.escape(line[2:].replace('**', ''))}</p>")
    for name, table in summary_tables(metrics).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))
    for key, path in (figures or {}).items():
        link = _link(path, relative_to)
        parts.append(f"<h2>{html.escape(key)}</h2><img src='{html.escape(link.as_posix())}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    folder: str | Path,
    run_id: str,
    reference: str,
    metrics: pd.DataFrame,
    figures: dict[str, Path] | None = None,
    notes: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = render_markdown(run_id, reference, metrics, figures, notes, relative_to=folder)
    md_path = folder / "report.md"
    md_path.write_text(md, encoding="utf-8")
    html_path = folder / "report.html"
    html_path.write_text(
        render_html(md, metrics, figures, folder, title=f"Analysis {run_id} vs {reference}"),
        encoding="utf-8",
    )
    return {"markdown": md_path, "html": html_path}


def embed_images(markdown_text: str, folder: Path) -> str:
    """Return ``markdown_text`` with its local PNG links replaced by inline ``data:`` images.

    The Prefect UI renders an artifact's Markdown in the browser, which cannot follow links to
    files on the flow's machine; inline images show wherever the artifact is opened.
    """
    import base64
    import re

    def inline(match: re.Match) -> str:
        path = Path(match.group(2))
        path = path if path.is_absolute() else Path(folder) / path
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return re.sub(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)", inline, markdown_text)
