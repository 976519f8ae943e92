"""Figures of an analysis (PNG through matplotlib's Agg backend, or windows one after another).

Every ``plot_*`` function returns a matplotlib Figure; :func:`save` writes it as PNG and
:func:`show_one_by_one` opens figures in windows, one after another, continuing when a window
is closed (what ``--interactive`` shows).

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from quakelake.errors import BadInput

OUTCOME_COLORS = {"TP": "tab:green", "FN": "tab:red", "FP": "tab:orange"}
OUTCOME_LABELS = {
    "TP": "matched",
    "FN": "missed (reference only)",
    "FP": "extra (not in reference)",
}


def _label(model: object, weights: object) -> str:
    return f"{model}/{weights}" if weights not in (None, "", np.nan) else str(model)


def plot_pick_residuals(pick_matches: pd.DataFrame, tolerance_s: float | None = None) -> Figure:
    """Return histograms of pick - reference time residuals, one panel per phase, one colour per model."""
    tp = pick_matches[pick_matches["outcome"] == "TP"]
    phases = sorted(tp["phase"].dropna().unique()) or ["P"]
    fig = Figure(figsize=(5 * len(phases), 3.8), layout="constrained")
    axes = fig.subplots(1, len(phases), squeeze=False)[0]
    tol = tolerance_s or (float(tp["tolerance_s"].max()) if len(tp) else 0.5)
    bins = np.linspace(-tol, tol, 41)
    for ax, phase in zip(axes, phases, strict=True):
        sub = tp[tp["phase"] == phase]
        for (model, weights), group in sub.groupby(["model", "weights"], sort=True):
            ax.hist(
                group["residual_s"],
                bins=bins,
                histtype="step",
                linewidth=1.5,
                label=f"{_label(model, weights)} (n={len(group)})",
            )
        ax.axvline(0, color="0.5", linewidth=0.8)
        ax.set(title=f"{phase} residuals", xlabel="pick - reference (s)", ylabel="picks")
        if len(sub):
            ax.legend(fontsize=8)
    return fig


def plot_precision_recall(metrics: pd.DataFrame) -> Figure:
    """Return bars of precision, recall and F1 per model x weights, split by phase, with their values."""
    picks = metrics[metrics["level"] == "pick"]
    rows = picks[picks["group_by"] == "model,weights,phase"]
    if not len(rows):
        rows = picks[picks["group_by"] == "model,weights"].assign(phase="all")
    rows = rows.sort_values(["model", "weights", "phase"], kind="stable")
    fig = Figure(figsize=(max(5.5, 1.9 * len(rows) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    labels = [
        f"{_label(m, w)}\n{p}"
        for m, w, p in zip(rows["model"], rows["weights"], rows["phase"], strict=True)
    ]
    x = np.arange(len(rows))
    for i, key in enumerate(("precision", "recall", "f1")):
        bars = ax.bar(x + (i - 1) * 0.27, rows[key].astype(float), width=0.27, label=key)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylim=(0, 1.12), ylabel="score", title="picks vs reference, per phase")
    ax.legend(fontsize=8, loc="lower right")
    return fig


ASSOCIATOR_MARKERS = ("o", "s", "D", "v", "P", "*")


def plot_event_map(
    event_matches: pd.DataFrame,
    events: pd.DataFrame,
    reference_events: pd.DataFrame,
    stations: pd.DataFrame | None = None,
) -> Figure:
    """Return a map of the reference events, each associator's matched/extra/missed events, the stations.

    Colour says the outcome, the marker shape says the associator; reference events are open
    black circles; stations are labelled with their codes.

    Args:
        event_matches: output of :func:`quakelake.analysis.evaluation.match_events` (``associator``
            column for several associators).
        events: events with ``event_id, latitude, longitude``.
        reference_events: reference events with the same columns.
        stations: optional ``latitude``/``longitude`` (and ``station``) of the stations.
    """
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax = fig.subplots()
    ev = (
        events.drop_duplicates("event_id").set_index("event_id")[["latitude", "longitude"]]
        if len(events)
        else None
    )
    ref = (
        reference_events.drop_duplicates("event_id").set_index("event_id")[
            ["latitude", "longitude"]
        ]
        if len(reference_events)
        else None
    )
    if ref is not None:
        ax.scatter(
            ref["longitude"],
            ref["latitude"],
            s=60,
            facecolors="none",
            edgecolors="k",
            linewidths=0.8,
            label=f"reference ({len(ref)})",
            zorder=2,
        )
    # one catalogue (associator x pick set) per marker: never pooled
    key = _catalogue_key(event_matches)
    associators = sorted(key.unique())
    for k, name in enumerate(associators):
        mine = event_matches[key == name]
        marker = ASSOCIATOR_MARKERS[k % len(ASSOCIATOR_MARKERS)]
        for outcome in ("TP", "FP", "FN"):
            rows = mine[mine["outcome"] == outcome]
            src, ids = (
                (ev, rows["event_id"]) if outcome != "FN" else (ref, rows["reference_event_id"])
            )
            if src is None or not len(rows):
                continue
            pos = src.reindex(ids.dropna().unique()).dropna()
            ax.scatter(
                pos["longitude"],
                pos["latitude"],
                s=18,
                marker=marker,
                c=OUTCOME_COLORS[outcome],
                label=f"{name or 'events'}: {OUTCOME_LABELS[outcome]} ({len(rows)})",
                alpha=0.85,
                edgecolors="none",
                zorder=3,
            )
    if stations is not None and len(stations):
        st = stations.drop_duplicates(subset=[c for c in ("network", "station") if c in stations])
        ax.scatter(
            st["longitude"], st["latitude"], marker="^", s=40, c="k", label="stations", zorder=4
        )
        if "station" in st:
            for code, lon, lat in zip(st["station"], st["longitude"], st["latitude"], strict=True):
                ax.annotate(
                    str(code), (lon, lat), xytext=(3, 3), textcoords="offset points", fontsize=6
                )
    ax.set(xlabel="longitude (°)", ylabel="latitude (°)", title="events vs reference")
    ax.set_aspect(1 / np.cos(np.deg2rad(np.nanmean(ax.get_ylim()))))
    ax.legend(fontsize=7)
    return fig


def _catalogue_key(frame: pd.DataFrame) -> pd.Series:
    """Return each row's catalogue label (its associator for rows written before catalogues)."""
    out = pd.Series("", index=frame.index, dtype=object)
    if "associator" in frame:
        out = frame["associator"].fillna("").astype(str)
    if "catalogue" in frame:
        out = frame["catalogue"].where(frame["catalogue"].notna() & (frame["catalogue"] != ""), out)
    return out.astype(str)


def plot_cumulative_events(events: pd.DataFrame, reference_events: pd.DataFrame) -> Figure:
    """Return cumulative event counts over time, per associator, against the reference.

    Every curve starts at 0 at the first time of any curve and runs to the last, so a
    catalogue of one event still shows as a step (with a marker at the event).
    """
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    all_times = [
        pd.to_datetime(df["time"], utc=True) for df in (events, reference_events) if len(df)
    ]
    lo = min(t.min() for t in all_times) if all_times else None
    hi = max(t.max() for t in all_times) if all_times else None

    def step(times: pd.Series, label: str, **kw) -> None:
        t = pd.to_datetime(times, utc=True).sort_values().dt.tz_localize(None)
        if not len(t) or lo is None or hi is None:
            return
        x = [lo.tz_localize(None), *t, hi.tz_localize(None)]
        y = [0, *np.arange(1, len(t) + 1), len(t)]
        (line,) = ax.step(x, y, where="post", label=label, **kw)
        ax.plot(t, np.arange(1, len(t) + 1), "o", ms=3, color=line.get_color())

    step(
        reference_events["time"] if len(reference_events) else pd.Series([], dtype=object),
        f"reference ({len(reference_events)})",
        color="k",
        linewidth=2,
    )
    if len(events):
        for name, group in events.groupby(_catalogue_key(events)):
            step(group["time"], f"{name or 'events'} ({len(group)})")
    ax.set(xlabel="time (UTC)", ylabel="cumulative events", title="event counts")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def plot_station_day(
    stream,
    annotations=None,
    picks: pd.DataFrame | None = None,
    reference_picks: pd.DataFrame | None = None,
    title: str = "",
) -> Figure:
    """Return waveforms, model probabilities and picks of one station over one span.

    Args:
        stream: ObsPy Stream of the station's traces (e.g. Z, N, E).
        annotations: SeisBench ``annotate`` output Stream (channels ending ``_P``, ``_S``, ...).
        picks: picks with ``time`` and ``phase`` (drawn as solid lines).
        reference_picks: reference picks (dashed lines).
        title: figure title.
    """
    n_ann = 1 if annotations is not None and len(annotations) else 0
    fig = Figure(figsize=(10, 1.6 * (len(stream) + n_ann) + 1), layout="constrained")
    axes = fig.subplots(len(stream) + n_ann, 1, sharex=True, squeeze=False)[:, 0]
    t0 = min(tr.stats.starttime for tr in stream) if len(stream) else None
    for ax, tr in zip(axes, stream, strict=False):
        ax.plot(tr.times(reftime=t0), tr.data, color="k", linewidth=0.4)
        ax.set_ylabel(tr.stats.channel)
    if n_ann:
        ax = axes[-1]
        for tr in annotations:
            label = tr.stats.channel.split("_")[-1]
            if label.upper() in ("N", "NOISE"):
                continue
            ax.plot(tr.times(reftime=t0), tr.data, linewidth=1, label=tr.stats.channel)
        ax.set(ylim=(0, 1.05), ylabel="probability")
        ax.legend(fontsize=7, loc="upper right")
    colors = {"P": "tab:blue", "S": "tab:red"}
    for frame, style in ((picks, "-"), (reference_picks, "--")):
        if frame is None or not len(frame) or t0 is None:
            continue
        offsets = pd.to_datetime(frame["time"], utc=True) - pd.Timestamp(t0.datetime, tz="UTC")
        for offset, phase in zip(
            offsets.dt.total_seconds(), frame["phase"].astype(str), strict=True
        ):
            for ax in axes:
                ax.axvline(
                    offset, color=colors.get(phase[:1].upper(), "0.4"), linestyle=style, linewidth=1
                )
    axes[-1].set_xlabel(f"seconds after {t0}" if t0 is not None else "seconds")
    fig.suptitle(title or (stream[0].id.rsplit(".", 1)[0] if len(stream) else "station"))
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG file (creating the folder) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


HINT = "close the window or press q for the next one"


def require_display(option: str = "--interactive") -> None:
    """Refuse to open windows where there is no display (unless a matplotlib backend was chosen).

    Raises:
        BadInput: naming ``option`` and what to do instead.
    """
    if os.environ.get("MPLBACKEND") or sys.platform != "linux":
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BadInput(
            f"{option} needs a display and DISPLAY is not set: run it on a desktop or through ssh -X, "
            f"or leave out {option} and open the report (--report-dir) instead"
        )


def show_one_by_one(figures: Iterable[Figure], hint: str = HINT) -> int:
    """Show figures in windows one at a time, each as soon as it is made; each blocks until closed.

    Each window is titled with its figure's title and carries ``hint`` at the bottom.

    Returns:
        The number of figures shown.
    """
    import matplotlib.pyplot as plt

    count = 0
    for fig in figures:
        title = fig.get_suptitle()
        if not title and fig.axes:
            title = fig.axes[0].get_title()
        fig.text(0.5, 0.005, hint, ha="center", va="bottom", fontsize=8, color="0.4")
        manager = plt.figure().canvas.manager  # a pyplot-managed window to host ``fig``
        if manager is None:  # pyplot figures always have one; a non-interactive backend too
            continue
        manager.canvas.figure = fig
        fig.set_canvas(manager.canvas)
        if title:
            manager.set_window_title(title)
        if count == 0:
            print(f"showing one window at a time: {hint}", file=sys.stderr)
        plt.show(block=True)
        plt.close("all")
        count += 1
    return count


def analysis_figures(
    pick_matches: pd.DataFrame,
    event_matches: pd.DataFrame,
    metrics: pd.DataFrame,
    events: pd.DataFrame,
    reference_events: pd.DataFrame,
    stations: pd.DataFrame | None = None,
) -> dict[str, Figure]:
    """Return the standard figures of an analysis keyed by file stem (empty inputs skipped)."""
    figs: dict[str, Figure] = {}
    if len(pick_matches):
        figs["pick_residuals"] = plot_pick_residuals(pick_matches)
    if len(metrics) and ((metrics["level"] == "pick").any()):
        figs["precision_recall"] = plot_precision_recall(metrics)
    if len(event_matches):
        figs["event_map"] = plot_event_map(event_matches, events, reference_events, stations)
        figs["cumulative_events"] = plot_cumulative_events(events, reference_events)
    return figs


def save_figures(figures: dict[str, Figure], folder: str | Path) -> dict[str, Path]:
    """Save figures as ``<folder>/<key>.png`` and return their paths."""
    return {key: save(fig, Path(folder) / f"{key}.png") for key, fig in figures.items()}


__all__: Sequence[str] = (
    "analysis_figures",
    "plot_cumulative_events",
    "plot_event_map",
    "plot_pick_residuals",
    "plot_precision_recall",
    "plot_station_day",
    "save",
    "save_figures",
    "show_one_by_one",
)
