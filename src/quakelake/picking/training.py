"""Fine-tuning pickers on the lake's own labelled picks: SeisBench dataset, training loop, named weights.

Plain Python: no Prefect. The steps, each usable from a notebook:

1. :func:`labelled_picks` -- analyst picks imported with ``import-catalog`` (``reference_picks``)
   or the lake's own picks above a probability (pseudo-labels).
2. :func:`build_dataset` -- windows of archive waveforms around those picks written as a
   SeisBench dataset (``WaveformDataWriter``: ``metadata.csv`` + ``waveforms.hdf5``) with a
   ``split`` column that holds stations (or days) out for validation.
3. :func:`fine_tune` -- PyTorch training of a model x weights with SeisBench's generators and
   augmentations; validation loss, recall and residuals per epoch, parent weights included.
4. :func:`save_weights` -- new named weights in the local SeisBench cache with a model card, so
   ``-W <name>`` picks with them like any other weights.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from quakelake.errors import BadInput
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.params.base import ParamModel, PlainName
from quakelake.picking.weights import cached_weights

if TYPE_CHECKING:
    from quakelake.config import RunConfig

log = logging.getLogger(__name__)

TRAINABLE = (
    "PhaseNet",
    "PhaseNetLight",
)  # models whose forward() returns one (batch, labels, samples) tensor
MAX_PICKS_PER_PHASE = (
    6  # label columns per phase in one window (SeisBench maps each to the same label)
)


class TrainingError(BadInput, ValueError):
    """Training cannot start: the message names the option and what to do."""


class TrainParams(ParamModel):
    """How a picker is fine-tuned on the lake's labelled picks."""

    model: str = Field(
        "PhaseNet", description="SeisBench model class to fine-tune (PhaseNet, PhaseNetLight)"
    )
    weights: str = Field("original", description="parent pretrained weights")
    name: PlainName | None = Field(
        None, description="name of the new weights (default <weights>_<labels>_<YYYYMMDD>)"
    )

    labels: Literal["reference", "picks"] = Field(
        "reference",
        description="reference: analyst picks of --reference; picks: the lake's picks (pseudo-labels)",
    )
    reference: str | None = Field(
        None, description="reference catalogue in the lake whose picks are the labels"
    )
    min_probability: float = Field(
        0.7, ge=0.0, le=1.0, description="pseudo-labels: lake picks at or above this probability"
    )
    label_models: list[str] = Field(
        [], description="pseudo-labels: only picks of these models (empty: all)"
    )
    label_weights: list[str] = Field(
        [], description="pseudo-labels: only picks of these weights (empty: all)"
    )
    window_s: float = Field(
        60.0, gt=0, description="length of each stored training window in seconds"
    )
    holdout_stations: list[str] = Field(
        [],
        description="stations (NET.STA, wildcards) kept for validation; empty: every k-th station",
    )
    holdout_days: list[dt.date] = Field(
        [], description="days kept for validation (instead of stations)"
    )
    validation_fraction: float = Field(
        0.25, gt=0, lt=1, description="share of stations held out by default"
    )
    epochs: int = Field(5, ge=1, le=10000, description="passes over the training windows")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, le=4096, description="windows per optimisation step")
    sigma_s: float = Field(
        0.2, gt=0, description="half-width of the Gaussian pick labels in seconds"
    )
    tolerance_s: float = Field(
        0.5, gt=0, description="validation: a pick within this of a label is a hit"
    )
    threshold: float = Field(
        0.3, ge=0, le=1, description="validation: probability threshold of a pick"
    )
    seed: int = Field(0, description="seed of the window crops, splits and PyTorch")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="torch device; auto takes CUDA when present"
    )


@dataclass
class DatasetSummary:
    """What :func:`build_dataset` wrote."""

    path: Path
    traces: int
    splits: dict[str, int]
    stations: dict[str, list[str]]
    labels_used: int
    labels_total: int
    days: list[str]


@dataclass
class TrainResult:
    """A fine-tuned model and how training went."""

    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    parent_validation: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0


# ------------------------------------------------------------------------------------- labels
def labelled_picks(
    lake: Path, params: TrainParams, window: TimeWindow | None = None
) -> pd.DataFrame:
    """Return the training labels: ``station_id`` (NET.STA.LOC), ``band``, ``phase`` (P/S), ``time``.

    ``band`` is the band the pick was made on (lake picks; a reference pick's channel band), ""
    where a reference names no channel: such a label holds for every band of its station.

    Raises:
        TrainingError: no reference named, or no labelled pick at all.
    """
    from quakelake.lakehouse import Lake, queries

    lk = Lake(lake)
    if params.labels == "reference":
        if not params.reference:
            raise TrainingError(
                "--reference: name the reference catalogue whose picks label the training data "
                "(import it with quakelake import-catalog), or use --labels picks for pseudo-labels"
            )
        frame = queries.reference_picks(lk, params.reference)
        source = f"reference {params.reference!r}"
    else:
        frame = queries.picks(
            lk,
            min_probability=params.min_probability,
            models=params.label_models,
            weights=params.label_weights,
        )
        source = f"lake picks with probability >= {params.min_probability}"
    if frame.empty:
        frame = pd.DataFrame(
            {
                "station_id": pd.Series(dtype=str),
                "band": pd.Series(dtype=str),
                "phase": pd.Series(dtype=str),
                "time": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    if "band" not in frame.columns:  # reference picks: the band of their channel
        frame["band"] = frame["channel"].fillna("").astype(str).str[:2]
    frame["band"] = frame["band"].fillna("").astype(str)
    frame = frame[frame["phase"].astype(str).str.upper().isin(["P", "S"])].copy()
    frame["phase"] = frame["phase"].str.upper()
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    if window is not None:
        days = frame["time"].dt.date
        frame = frame[np.array([window.contains(d) for d in days], dtype=bool)]
    frame = (
        frame[["station_id", "band", "phase", "time"]]
        .drop_duplicates()
        .sort_values(["station_id", "band", "time"])
    )
    if frame.empty:
        raise TrainingError(
            f"--reference/--labels: the training set has no labelled pick ({source} in lake {lake} "
            f"holds no P or S pick in the chosen days); import analyst picks or lower --min-probability"
        )
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------------ windows
@dataclass
class Window:
    """One three-component window cut from the archive."""

    network: str
    station: str
    location: str
    band: str
    start: pd.Timestamp
    sampling_rate: float
    data: np.ndarray  # (3, samples) in ZNE order
    picks: pd.DataFrame  # the labels inside the window (phase, time)

    @property
    def station_id(self) -> str:
        """Return ``NET.STA.LOC`` (SeisBench's trace id; the band is :attr:`band`)."""
        return f"{self.network}.{self.station}.{self.location}"


def zne_array(stream, start, samples: int) -> np.ndarray | None:
    """Return ``(3, samples)`` ZNE data from ``start`` on, or None where a component or sample is missing."""
    from obspy import UTCDateTime

    t0 = UTCDateTime(ns=int(start.value))
    out = np.zeros((3, samples), dtype=np.float32)
    for i, comp in enumerate("ZNE"):
        traces = [tr for tr in stream if tr.stats.channel.endswith(comp)]
        got = None
        for tr in traces:
            offset = int(round((t0 - tr.stats.starttime) * tr.stats.sampling_rate))
            if offset >= 0 and offset + samples <= tr.stats.npts:
                got = tr.data[offset : offset + samples]
                break
        if got is None:
            return None
        out[i] = got.astype(np.float32)
    if not np.isfinite(out).all():
        return None
    return out


def archive_instruments(
    directory: Path, selection: StationSelection | None = None, window: TimeWindow | None = None
) -> Iterator[Any]:
    """Yield every ``InstrumentStream`` of the archive, station-day by station-day (unreadable files skipped)."""
    from quakelake.archive import waveforms

    scan = waveforms.scan_archive(Path(directory), selection=selection)
    for failure in scan.failures:
        log.warning("unreadable file skipped: %s (%s)", failure.path, failure.reason)
    for unit in waveforms.station_days(scan.index, window, selection):
        instruments, failures = waveforms.read_station_day(unit, selection=selection, pad_s=0.0)
        for failure in failures:
            log.warning("skipped %s: %s", failure.path, failure.reason)
        yield from instruments


def pick_windows(
    directory: Path,
    labels: pd.DataFrame,
    window_s: float,
    selection: StationSelection | None = None,
    days: TimeWindow | None = None,
    rng: np.random.Generator | None = None,
) -> Iterator[Window]:
    """Yield archive windows of ``window_s`` seconds around the labelled picks, each with the labels inside.

    Consecutive picks of an instrument share a window; each window starts a random 10-40 % of its
    length before its first pick, so pick positions vary.
    """
    rng = rng or np.random.default_rng(0)
    # A label holds on its band; one without a band (a reference naming no channel) on any band.
    if "band" not in labels.columns:
        labels = labels.assign(band="")
    by_trace = {k: g for k, g in labels.groupby(labels["station_id"].astype(str))}
    for inst in archive_instruments(directory, selection, days):
        picks = by_trace.get(f"{inst.network}.{inst.station}.{inst.location}")
        if picks is None or inst.components != "ZNE":
            continue
        picks = picks[picks["band"].fillna("").isin(["", inst.band])]
        if picks.empty:
            continue
        rate = float(inst.stream[0].stats.sampling_rate)
        samples = int(round(window_s * rate))
        t_start = pd.Timestamp(min(tr.stats.starttime for tr in inst.stream).datetime, tz="UTC")
        t_end = pd.Timestamp(max(tr.stats.endtime for tr in inst.stream).datetime, tz="UTC")
        times = picks["time"].sort_values().tolist()
        covered_until = t_start - pd.Timedelta(days=1)
        for t in times:
            if t <= covered_until or not (t_start <= t <= t_end):
                continue
            lead = pd.Timedelta(seconds=float(rng.uniform(0.1, 0.4)) * window_s)
            start = max(t_start, min(t - lead, t_end - pd.Timedelta(seconds=window_s)))
            start = t_start + pd.Timedelta(
                seconds=round((start - t_start).total_seconds() * rate) / rate
            )
            data = zne_array(inst.stream, start, samples)
            if data is None:
                continue
            end = start + pd.Timedelta(seconds=(samples - 1) / rate)
            inside = picks[(picks["time"] >= start) & (picks["time"] <= end)]
            covered_until = end - pd.Timedelta(seconds=0.1 * window_s)
            yield Window(
                inst.network,
                inst.station,
                inst.location,
                inst.band,
                start,
                rate,
                data,
                inside[["phase", "time"]].reset_index(drop=True),
            )


def label_columns(phase: str) -> list[str]:
    """Return the metadata columns holding the sample positions of ``phase`` picks in a window."""
    return [f"trace_{phase}_arrival_sample"] + [
        f"trace_{phase}{k}_arrival_sample" for k in range(2, MAX_PICKS_PER_PHASE + 1)
    ]


def _split_of(station: str, day: dt.date, params: TrainParams, held: set[str]) -> str:
    if params.holdout_days:
        return "dev" if day in params.holdout_days else "train"
    return "dev" if station in held else "train"


def held_out_stations(stations: list[str], params: TrainParams) -> set[str]:
    """Return the stations (``NET.STA``) kept for validation.

    Without ``holdout_stations`` every k-th station in sorted order is held out (k from
    ``validation_fraction``), at least one, never all.
    """
    from fnmatch import fnmatchcase

    stations = sorted(set(stations))
    if params.holdout_stations:
        return {s for s in stations if any(fnmatchcase(s, p) for p in params.holdout_stations)}
    if len(stations) < 2:
        return set()
    k = max(2, round(1 / params.validation_fraction))
    return {s for i, s in enumerate(stations) if i % k == k - 1}


def build_dataset(
    directory: Path,
    labels: pd.DataFrame,
    out: Path,
    params: TrainParams,
    selection: StationSelection | None = None,
    days: TimeWindow | None = None,
) -> DatasetSummary:
    """Write the windows around ``labels`` as a SeisBench dataset in ``out`` and return what it holds.

    Raises:
        TrainingError: no window could be cut (no labelled pick lies on archive data), or the
            held-out split is empty.
    """
    import seisbench.data as sbd

    rng = np.random.default_rng(params.seed)
    stations = sorted({".".join(s.split(".")[:2]) for s in labels["station_id"]})
    if selection is not None:  # hold out among the stations that can give windows
        from fnmatch import fnmatchcase

        stations = [
            s
            for s in stations
            if any(fnmatchcase(s.split(".")[0], n) for n in selection.networks)
            and any(fnmatchcase(s.split(".")[1], st) for st in selection.stations)
        ]
    held = held_out_stations(stations, params)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "dev": 0}
    split_stations: dict[str, set[str]] = {"train": set(), "dev": set()}
    used, day_set = 0, set()
    with sbd.WaveformDataWriter(out / "metadata.csv", out / "waveforms.hdf5") as writer:
        writer.data_format = {
            "dimension_order": "CW",
            "component_order": "ZNE",
            "measurement": "velocity",
            "unit": "counts",
            "instrument_response": "not restituted",
        }
        for w in pick_windows(directory, labels, params.window_s, selection, days, rng):
            station = f"{w.network}.{w.station}"
            split = _split_of(station, w.start.date(), params, held)
            meta: dict[str, Any] = {
                "station_network_code": w.network,
                "station_code": w.station,
                "station_location_code": w.location,
                "trace_channel": w.band,
                "trace_start_time": w.start.isoformat(),
                "trace_sampling_rate_hz": w.sampling_rate,
                "split": split,
            }
            for phase in ("P", "S"):
                times = w.picks.loc[w.picks["phase"] == phase, "time"].sort_values().tolist()
                for col, t in zip(label_columns(phase), times[:MAX_PICKS_PER_PHASE], strict=False):
                    meta[col] = (t - w.start).total_seconds() * w.sampling_rate
                used += min(len(times), MAX_PICKS_PER_PHASE)
            writer.add_trace(meta, w.data)
            counts[split] += 1
            split_stations[split].add(station)
            day_set.add(w.start.date().isoformat())
    if not counts["train"] and not counts["dev"]:
        raise TrainingError(
            f"-d/--directory: no labelled pick lies on three-component data in {directory}; check that the "
            f"archive holds the labelled stations and days (labels on {len(stations)} stations)"
        )
    for split in ("train", "dev"):
        if not counts[split]:
            raise TrainingError(
                f"--holdout-stations/--holdout-days: the {split} split is empty ({counts}); hold out other "
                f"stations or days so both splits hold windows"
            )
    return DatasetSummary(
        out,
        counts["train"] + counts["dev"],
        counts,
        {k: sorted(v) for k, v in split_stations.items()},
        used,
        len(labels),
        sorted(day_set),
    )


# ------------------------------------------------------------------------------------ training
def trainable_model(name: str, weights: str) -> Any:
    """Return a fresh copy of ``name`` with ``weights`` for training (not the shared picking cache).

    Raises:
        TrainingError: the class cannot be fine-tuned here, or the weights are unavailable.
    """
    from quakelake.picking import models as picking

    if name not in TRAINABLE:
        raise TrainingError(f"-M/--models: fine-tuning supports {list(TRAINABLE)}, not {name!r}")
    cls = picking.model_class(name)
    try:
        return cls.from_pretrained(weights)
    except Exception as exc:  # SeisBench raises ValueError, OSError, requests errors
        raise TrainingError(
            f"-W/--weights: parent weights {weights!r} of {name} are not available ({type(exc).__name__}: {exc}); "
            f"the cache holds {cached_weights(name)}"
        ) from None


def _generator(dataset, model, params: TrainParams):
    import seisbench.generate as sbg

    cols = {
        c: phase
        for phase in ("P", "S")
        for c in label_columns(phase)
        if c in dataset.metadata.columns
    }
    n = model.in_samples
    gen = sbg.GenericGenerator(dataset)
    gen.add_augmentations(
        [
            sbg.WindowAroundSample(
                list(cols),
                samples_before=n,
                windowlen=2 * n,
                selection="random",
                strategy="variable",
            ),
            sbg.RandomWindow(windowlen=n, strategy="pad"),
            sbg.Normalize(demean_axis=-1, amp_norm_axis=-1, amp_norm_type=model.norm),
            sbg.ChangeDtype(np.float32),
            sbg.ProbabilisticLabeller(
                label_columns=cols,
                model_labels=model.labels,
                sigma=params.sigma_s * model.sampling_rate,
                dim=0,
            ),
        ]
    )
    return gen


def _loss(pred, target):
    import torch

    return -(target * torch.log(pred + 1e-5)).mean(-1).sum(-1).mean()


def _evaluate(model, loader, params: TrainParams, device: str, seed: int) -> dict[str, float]:
    """Return validation loss, recall, precision and residuals on the same crops every time."""
    import torch
    from scipy.signal import find_peaks

    np.random.seed(seed)  # SeisBench's augmentations draw from numpy's global generator
    model.eval()
    losses, hits, residuals = [], 0, []
    n_labels = n_peaks = 0
    tol = int(params.tolerance_s * model.sampling_rate)
    with torch.no_grad():
        for batch in loader:
            x, y = batch["X"].to(device), batch["y"].to(device)
            pred = model(x)
            losses.append(float(_loss(pred, y)) * len(x))
            p, t = pred.cpu().numpy(), y.cpu().numpy()
            for i in range(len(p)):
                for j, label in enumerate(model.labels):
                    if label == "N":
                        continue
                    truth, _ = find_peaks(t[i, j], height=0.5, distance=tol)
                    peaks, _ = find_peaks(p[i, j], height=params.threshold, distance=tol)
                    n_labels += len(truth)
                    n_peaks += len(peaks)
                    for onset in truth:
                        if len(peaks) and np.min(np.abs(peaks - onset)) <= tol:
                            hits += 1
                            residuals.append(float(peaks[np.argmin(np.abs(peaks - onset))] - onset))
    n = sum(len(b["X"]) for b in loader) if losses else 0
    res = np.asarray(residuals) / model.sampling_rate
    return {
        "loss": sum(losses) / max(n, 1),
        "recall": hits / n_labels if n_labels else math.nan,
        "precision": hits / n_peaks if n_peaks else math.nan,
        "residual_median_s": float(np.median(res)) if len(res) else math.nan,
        "residual_mad_s": float(np.median(np.abs(res - np.median(res)))) if len(res) else math.nan,
        "labels": n_labels,
    }


def _train_mode(model) -> None:
    """Put ``model`` in training mode with its batch-norm statistics frozen.

    A few dozen windows in small batches would drag the parent's running means and variances
    towards one batch's; frozen, fine-tuning moves only the weights (the usual transfer recipe).
    """
    import torch

    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def fine_tune(dataset_path: Path, params: TrainParams, model: Any | None = None) -> TrainResult:
    """Fine-tune ``params.model``/``params.weights`` on the SeisBench dataset in ``dataset_path``.

    The validation split is evaluated on the same window crops before training (the parent
    weights) and after every epoch, so the loss and recall curves compare like with like.
    """
    import time

    import seisbench.data as sbd
    import torch
    from torch.utils.data import DataLoader

    from quakelake.picking import models as picking

    device = picking.resolve_device(params.device)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    model = model if model is not None else trainable_model(params.model, params.weights)
    model.to(device)
    data = sbd.WaveformDataset(
        dataset_path,
        sampling_rate=model.sampling_rate,
        component_order=model.component_order,
        dimension_order="NCW",
    )
    train, dev = data.train(), data.dev()
    train_loader = DataLoader(
        _generator(train, model, params),
        batch_size=params.batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(params.seed),
    )
    dev_loader = DataLoader(
        _generator(dev, model, params), batch_size=params.batch_size, shuffle=False, num_workers=0
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    t0 = time.perf_counter()
    parent = _evaluate(model, dev_loader, params, device, params.seed + 1)
    history = [
        {
            "epoch": 0,
            "train_loss": math.nan,
            "val_loss": parent["loss"],
            "val_recall": parent["recall"],
        }
    ]
    for epoch in range(1, params.epochs + 1):
        _train_mode(model)
        total, n = 0.0, 0
        for batch in train_loader:
            x, y = batch["X"].to(device), batch["y"].to(device)
            optimizer.zero_grad()
            loss = _loss(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            n += len(x)
        val = _evaluate(model, dev_loader, params, device, params.seed + 1)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / max(n, 1),
                "val_loss": val["loss"],
                "val_recall": val["recall"],
            }
        )
        log.info(
            "epoch %d: train loss %.4f, validation loss %.4f, recall %.3f",
            epoch,
            history[-1]["train_loss"],
            val["loss"],
            val["recall"],
        )
    model.eval()
    model.to("cpu")
    return TrainResult(model, history, parent, val, device, time.perf_counter() - t0)


# -------------------------------------------------------------------------------- saving weights
def default_name(params: TrainParams) -> str:
    """Return the default name of fine-tuned weights: ``<weights>_<labels>_<YYYYMMDD>``."""
    source = params.reference if params.labels == "reference" and params.reference else "pseudo"
    return f"{params.weights}_{source}_{dt.date.today():%Y%m%d}"


def save_weights(model: Any, name: str, card: dict[str, Any]) -> Path:
    """Save ``model`` as weights ``name`` in the local SeisBench cache with its model card; return the .pt path.

    The card is stored in the weights' JSON (``quakelake_card``, and as the docstring SeisBench
    shows) and as ``<name>.card.md`` next to it.

    Raises:
        TrainingError: ``name`` is not a plain name, or would overwrite weights SeisBench ships.
    """
    import seisbench

    if not name or any(c in name for c in "/\\ .") or name.startswith("-"):
        raise TrainingError(f"--name: {name!r} is not a weights name; use letters, digits, _ and -")
    folder = Path(seisbench.cache_model_root) / type(model).__name__.lower()
    folder.mkdir(parents=True, exist_ok=True)
    docstring = card_markdown(card)
    model.save(folder / name, weights_docstring=docstring, version_str="1")
    meta_path = folder / f"{name}.json.v1"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "1"
    meta["quakelake_card"] = card
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    (folder / f"{name}.card.md").write_text(docstring)
    return folder / f"{name}.pt.v1"


def card_markdown(card: dict[str, Any]) -> str:
    """Return a model card as Markdown (what the weights are, how they were trained, how they score)."""
    lines = [f"# {card.get('model')}/{card.get('name')}", "", card.get("summary", ""), ""]
    for key, value in card.items():
        if key in ("summary", "history"):
            continue
        lines.append(
            f"- **{key}**: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}"
        )
    if card.get("history"):
        lines += [
            "",
            "| epoch | train loss | validation loss | validation recall |",
            "|---|---|---|---|",
        ]
        for h in card["history"]:
            lines.append(
                f"| {h['epoch']} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {h['val_recall']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def train_picker(
    lake: Path,
    directory: Path,
    params: TrainParams,
    work_dir: Path | None = None,
    selection: StationSelection | None = None,
    days: TimeWindow | None = None,
) -> dict[str, Any]:
    """Fine-tune a picker on the lake's labelled picks and save it as named weights; return the model card.

    Raises:
        TrainingError: before any file is written, when the labels, archive or splits do not allow training.
    """
    from quakelake.lakehouse import lineage

    trainable_model(params.model, params.weights)  # fail on bad -M/-W before cutting any window
    name = params.name or default_name(params)
    if name in cached_weights(params.model):
        raise TrainingError(
            f"--name: weights {params.model}/{name} already exist in the SeisBench cache; "
            f"choose another name"
        )
    labels = labelled_picks(lake, params, days)
    work_dir = Path(work_dir or Path(lake) / "_training" / f"{params.model}.{name}")
    if (work_dir / "metadata.csv").exists():
        for stale in ("metadata.csv", "waveforms.hdf5"):
            (work_dir / stale).unlink(missing_ok=True)
    summary = build_dataset(directory, labels, work_dir, params, selection, days)
    result = fine_tune(summary.path, params)
    card = {
        "name": name,
        "model": params.model,
        "parent_weights": params.weights,
        "summary": f"{params.model} {params.weights!r} fine-tuned on {summary.traces} windows of {directory}",
        "labels": (
            f"reference {params.reference!r}"
            if params.labels == "reference"
            else f"lake picks with probability >= {params.min_probability}"
        ),
        "label_occurrences_in_windows": summary.labels_used,
        "labels_total": summary.labels_total,
        "dataset": str(summary.path),
        "archive": str(directory),
        "days": summary.days,
        "windows": summary.splits,
        "window_s": params.window_s,
        "split_stations": summary.stations,
        "holdout_days": [d.isoformat() for d in params.holdout_days],
        "epochs": params.epochs,
        "learning_rate": params.learning_rate,
        "batch_size": params.batch_size,
        "sigma_s": params.sigma_s,
        "seed": params.seed,
        "device": result.device,
        "seconds": round(result.seconds, 1),
        "validation_parent": result.parent_validation,
        "validation": result.validation,
        "history": result.history,
        "created": lineage.utcnow().isoformat(),
        "versions": lineage.package_versions(),
    }
    card["weights_path"] = str(save_weights(result.model, name, card))
    run_id = lineage.new_run_id()
    lineage.record_run(
        Path(lake),
        run_id,
        "train",
        card,
        "completed",
        lineage.utcnow(),
        lineage.utcnow(),
        weights={f"{params.model}/{name}": weights_checksum(params.model, name)},
    )
    card["run_id"] = run_id
    return card


def weights_checksum(model: str, name: str) -> str:
    """Return the sha256 of cached weights ``model``/``name`` ("" when absent)."""
    from quakelake.picking import models as picking

    return picking.weights_checksum(model, name)


def pick_params_with(params: PickParams, weights: str) -> PickParams:
    """Return ``params`` with ``weights`` added to the grid (the fine-tuned weights beside their parents)."""
    if weights in params.weights:
        return params
    return params.model_copy(update={"weights": [*params.weights, weights]})


def train_params(
    given: dict[str, Any], model: str, weights: str, reference: str | None = None
) -> TrainParams:
    """Return the training parameters: those ``given`` (None: not given), the defaults for the rest.

    Labels default to the reference catalogue's picks when a reference is named (``given`` or
    the run's ``reference``), else to the lake's own picks.

    Raises:
        ConfigError: naming every invalid parameter.
    """
    from quakelake.config import build_config

    values = {
        k: v for k, v in label_defaults(given, reference).items() if k in TrainParams.model_fields
    }
    return build_config(None, {"model": model, "weights": weights, **values}, model=TrainParams)


def label_defaults(given: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    """Return the options ``given`` (None values dropped) with the reference and labels defaults.

    Labels are the reference catalogue's picks when a reference is named (in ``given`` or as
    the run's ``reference``), else the lake's own picks; the denoiser's training shares this.
    """
    values = {k: v for k, v in given.items() if v is not None}
    reference = values.get("reference") or reference
    if reference:
        values["reference"] = reference
    values.setdefault("labels", "reference" if reference else "picks")
    return values


def fine_tune_for_picking(cfg: RunConfig, given: dict[str, Any]) -> tuple[dict, RunConfig]:
    """Fine-tune the run's first model x weights; return the card and ``cfg`` with the new weights.

    The run's reference files (``analyze.reference_paths``) are imported first so the training
    can take its labels from them.

    Raises:
        TrainingError: no usable labelled windows (and the other errors of :func:`train_picker`).
    """
    if cfg.directory is None or not Path(cfg.directory).is_dir():
        raise TrainingError(
            "-T/--train: -d/--directory must be the archive to cut training windows from"
        )
    params = train_params(given, cfg.pick.models[0], cfg.pick.weights[0], cfg.analyze.reference)
    if cfg.analyze.reference and cfg.analyze.reference_paths:
        from quakelake.catalogs import import_catalog

        import_catalog(cfg.lake, cfg.analyze.reference_paths, cfg.analyze.reference)
    card = train_picker(cfg.lake, cfg.directory, params, selection=cfg.selection, days=cfg.window)
    return card, cfg.model_copy(update={"pick": pick_params_with(cfg.pick, card["name"])})
