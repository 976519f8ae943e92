"""Phase picking with SeisBench models: model loading (cached per process) and picks as rows.

Plain Python: no Prefect. The pick tasks call :func:`quakelake.tasks.pick.pick_one` once per
unit of work.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quakelake import ids
from quakelake.errors import BadInput
from quakelake.params import PickParams, denoised_weights
from quakelake.picking.weights import cache_root, has_weights, offline_weights

log = logging.getLogger(__name__)

# One model per (class, weights, device) per process: loading costs far more than a unit's picks.
_MODELS: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()
_LOADS = {"count": 0}

PICK_COLUMNS = [
    "pick_id",
    "model",
    "weights",
    "network",
    "station",
    "location",
    "band",
    "station_id",
    "phase",
    "time",
    "start_time",
    "end_time",
    "probability",
    "denoiser",
]


class ModelUnavailable(BadInput, LookupError):
    """A model class or its pretrained weights cannot be loaded."""


@dataclass(frozen=True)
class ModelSpec:
    """One model x weights combination to run, on raw data or on data denoised by ``denoiser``."""

    model: str
    weights: str
    denoiser: str = ""

    @property
    def member_weights(self) -> str:
        """Return the weights label of the picks: ``weights``, or ``weights+Class:weights`` when denoised."""
        return denoised_weights(self.weights, self.denoiser)

    @property
    def label(self) -> str:
        """Return ``Model/weights`` (``Model/weights+Denoiser:weights`` on denoised data)."""
        return f"{self.model}/{self.member_weights}"


def resolve_device(preference: str = "auto") -> str:
    """Return the torch device to use: CUDA when available and allowed, else CPU."""
    import torch

    if preference == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if preference == "cuda":
        raise ModelUnavailable(
            "device 'cuda' was requested but torch sees no CUDA device; use --device auto or cpu"
        )
    return "cpu"


@functools.lru_cache(maxsize=1)
def _seisbench_model_names() -> frozenset[str]:
    """Return the names ``seisbench.models`` exports, read from its source without importing it.

    Importing SeisBench (and torch) costs seconds; a rerun that finds every unit done, or the
    flow process that only coordinates, needs no more than to know the name is SeisBench's.
    """
    spec = importlib.util.find_spec("seisbench")
    if spec is None or spec.origin is None:
        return frozenset()
    source = Path(spec.origin).parent / "models" / "__init__.py"
    try:
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError):
        return frozenset()
    return frozenset(
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    )


def known_model(name: str, weights: str) -> bool:
    """Return True when ``name`` is exported by SeisBench and its ``weights`` are cached (no import)."""
    return name in _seisbench_model_names() and has_weights(name, weights)


def model_class(name: str) -> Any:
    """Return the ``seisbench.models`` class called ``name``.

    Raises:
        ModelUnavailable: naming the picking models SeisBench offers.
    """
    import seisbench.models as sbm

    cls = getattr(sbm, name, None)
    if not (isinstance(cls, type) and issubclass(cls, sbm.WaveformModel)):
        choices = sorted(
            n
            for n in dir(sbm)
            if isinstance(getattr(sbm, n), type)
            and issubclass(getattr(sbm, n), sbm.WaveformModel)
            and n not in {"WaveformModel", "WaveformPipeline", "SeisBenchModel"}
        )
        raise ModelUnavailable(
            f"-M/--models: {name!r} is not a SeisBench waveform model; choose from {', '.join(choices)}"
        )
    return cls


def load_model(name: str, weights: str, device: str = "cpu") -> Any:
    """Return the model ``name`` with pretrained ``weights`` on ``device``, loaded once per process.

    Raises:
        ModelUnavailable: the class does not exist, or the weights are neither in the SeisBench cache nor
            downloadable.
    """
    key = (name, weights, device)
    with _LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        cls = model_class(name)
        try:
            model = cls.from_pretrained(weights)
        except Exception as exc:  # SeisBench raises ValueError, requests errors, OSError ...
            raise ModelUnavailable(
                f"-W/--weights: weights {weights!r} are not available for {name}: not in "
                f"SEISBENCH_CACHE_ROOT={cache_root()} and SeisBench could not fetch them "
                f"({type(exc).__name__}); available offline: {', '.join(offline_weights(name)) or 'none'}"
            ) from None
        model.to(device)
        model.eval()
        _MODELS[key] = model
        _LOADS["count"] += 1
        return model


def model_loads() -> int:
    """Return how many models this process has loaded (a cache hit does not count)."""
    return _LOADS["count"]


def weights_checksum(name: str, weights: str) -> str:
    """Return the sha256 of the cached weights file of ``name``/``weights`` ("" when not cached)."""
    folder = cache_root() / "models" / "v3" / name.lower()
    files = sorted(folder.glob(f"{weights}.pt.v*"))
    if not files:
        return ""
    return hashlib.sha256(files[-1].read_bytes()).hexdigest()


def available_specs(params: PickParams, device: str) -> tuple[list[ModelSpec], list[str]]:
    """Return every loadable model x weights combination and a warning for each one skipped.

    Raises:
        ModelUnavailable: when no combination at all can be loaded (nothing to pick with).
    """
    specs, warnings = [], []
    for name in params.models:
        if not all(known_model(name, w) for w in params.weights):
            model_class(name)  # an unknown class is an error, not a skip
        for weights in params.weights:
            if known_model(name, weights):
                # Cached: the tasks load it where they run (the flow process never needs it,
                # and a rerun whose units are all done loads nothing).
                specs.append(ModelSpec(name, weights))
                continue
            try:
                load_model(name, weights, resolve_device(device))
            except ModelUnavailable as exc:
                warnings.append(str(exc))
                continue
            specs.append(ModelSpec(name, weights))
    if not specs:
        raise ModelUnavailable(
            "no model x weights combination could be loaded:\n" + "\n".join(warnings)
        )
    if params.denoiser:  # checked by the caller (quakelake.picking.denoise.check_available)
        specs += [ModelSpec(s.model, s.weights, params.denoiser) for s in specs]
    return specs, warnings


def pick_key(station_id: str, band: str) -> str:
    """Return what a pick id hashes as its instrument: ``NET.STA.LOC.BAND``.

    Two bands of one station (``HH`` and ``HN``) pick the same onset: the band keeps their ids
    apart. (The same text lakes hashed when ``station_id`` itself carried the band, so pick ids
    did not change when the band moved to its own column.)

    >>> pick_key("CI.IMP.", "HH")
    'CI.IMP..HH'
    """
    return f"{station_id}.{band}"


def _pick_id(spec: ModelSpec, station_id: str, band: str, phase: str, time: pd.Timestamp) -> str:
    text = f"{spec.model}|{spec.member_weights}|{pick_key(station_id, band)}|{phase}|{time.value}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def classify_kwargs(params: PickParams) -> dict[str, object]:
    """Return the keyword arguments given to SeisBench ``classify`` for ``params``."""
    return {
        "P_threshold": params.p_threshold,
        "S_threshold": params.s_threshold,
        "batch_size": params.batch_size,
    }


def picks_frame(picks: list, spec: ModelSpec, band_of: dict[str, str]) -> pd.DataFrame:
    """Return SeisBench ``Pick`` objects as rows with the lake's pick columns.

    Args:
        picks: SeisBench picks (``ClassifyOutput.picks``).
        spec: the model x weights that made them.
        band_of: instrument band code per SeisBench trace id ``NET.STA.LOC``.
    """
    rows = []
    for p in picks:
        net, sta, loc = (p.trace_id.split(".") + ["", "", ""])[:3]
        band = band_of.get(p.trace_id, "")
        station_id = ids.station_id(
            net, sta, loc
        )  # SeisBench's trace id; the band has its own column
        time = pd.Timestamp(p.peak_time.datetime, tz="UTC")
        rows.append(
            {
                "pick_id": _pick_id(spec, station_id, band, p.phase, time),
                "model": spec.model,
                "weights": spec.member_weights,
                "network": net,
                "station": sta,
                "location": loc,
                "band": band,
                "station_id": station_id,
                "phase": p.phase,
                "time": time,
                "start_time": pd.Timestamp(p.start_time.datetime, tz="UTC")
                if p.start_time
                else pd.NaT,
                "end_time": pd.Timestamp(p.end_time.datetime, tz="UTC") if p.end_time else pd.NaT,
                "probability": np.float32(p.peak_value) if p.peak_value is not None else np.nan,
                "denoiser": spec.denoiser,
            }
        )
    frame = pd.DataFrame(rows, columns=PICK_COLUMNS)
    order = ["time", "station_id", "band", "phase"]
    return frame.sort_values(order, ignore_index=True) if rows else frame


def pick_streams(
    model: Any, instruments: list, spec: ModelSpec, params: PickParams
) -> pd.DataFrame:
    """Return the picks ``model`` makes on each instrument stream (one SeisBench ``classify`` each).

    Args:
        model: a loaded SeisBench ``WaveformModel``.
        instruments: ``quakelake.archive.waveforms.InstrumentStream`` objects.
        spec: model x weights label for the rows.
        params: thresholds and batch size.
    """
    frames = []
    kwargs = classify_kwargs(params)
    for inst in instruments:
        if not len(inst.stream):
            continue
        output = model.classify(inst.stream, **kwargs)
        trace_id = ids.station_id(inst.network, inst.station, inst.location)
        frames.append(picks_frame(list(output.picks), spec, {trace_id: inst.band}))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=PICK_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(
        ["time", "station_id", "band", "phase"], ignore_index=True
    )


def within_day(picks: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Return the picks whose time falls in the UTC ``day`` (the padding around it is for context only)."""
    start = pd.Timestamp(day, tz="UTC")
    keep = (picks["time"] >= start) & (picks["time"] < start + pd.Timedelta(days=1))
    return picks[keep].reset_index(drop=True)


def check_models(models: list[str], weights: list[str], root: Path | None = None) -> list[str]:
    """Check model and weights names before any work starts; return a warning per weights not cached.

    Cheap when the cache holds every combination (no SeisBench import). Otherwise SeisBench is
    imported to tell an unknown model class (an error) from weights that are only not cached
    (SeisBench may still download them; the pick stage skips them when it cannot).

    Raises:
        ModelUnavailable: a name is not a SeisBench waveform model.
    """
    names = _seisbench_model_names()
    missing = [
        (m, w) for m in models for w in weights if not (m in names and has_weights(m, w, root))
    ]
    if not missing:
        return []
    for model in dict.fromkeys(m for m, _ in missing):
        model_class(model)
    where = f"SEISBENCH_CACHE_ROOT={root or cache_root()}"
    return [
        f"-W/--weights: {m} {w!r} is not in {where}; available offline: "
        f"{', '.join(offline_weights(m, root)) or 'none'} (SeisBench will try to download it)"
        for m, w in missing
    ]
