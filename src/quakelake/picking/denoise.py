"""Denoising before picking: SeisBench DeepDenoiser / SeisDAE by name, and training one on the archive.

Plain Python: no Prefect. The pick task calls :func:`denoise_instruments` on a station-day's
streams before the picker sees them when the grid member has a denoiser; the picks then carry
the denoiser in their ``denoiser`` column and in their weights label (:func:`member_weights`), so
they sit beside the raw-data picks as their own grid member.

No pretrained denoiser weights are reachable offline; :func:`train_denoiser` trains SeisDAE on the
archive's own recordings the way DeepDenoiser was trained (Zhu et al., 2019): noise windows cut
where no pick lies, signal windows around high-confidence, high-SNR picks, mixed at random
amplitude ratios and learnt as STFT masks (SeisBench's ``STFTDenoiserLabeller``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from quakelake import ids
from quakelake.params import StationSelection, TimeWindow, denoised_weights
from quakelake.params.base import ParamModel, PlainName
from quakelake.picking.models import ModelUnavailable

log = logging.getLogger(__name__)

DENOISERS = ("DeepDenoiser", "SeisDAE")

_MODELS: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


class DenoiserUnavailable(ModelUnavailable):
    """A denoiser class or its weights cannot be loaded."""


def parse_spec(text: str) -> tuple[str, str]:
    """Return ``(class, weights)`` of a denoiser written ``Class/weights`` (or ``weights`` of DeepDenoiser).

    Raises:
        DenoiserUnavailable: the class is not a SeisBench denoiser.
    """
    model, _, weights = text.partition("/") if "/" in text else ("DeepDenoiser", "", text)
    if model not in DENOISERS or not weights:
        raise DenoiserUnavailable(
            f"--denoiser: {text!r} is not a denoiser; write Class/weights with Class one of {list(DENOISERS)} "
            f"(cached: {cached_denoisers() or 'none'})"
        )
    return model, weights


def cached_denoisers() -> list[str]:
    """Return every ``Class/weights`` denoiser in the local SeisBench cache."""
    import seisbench

    out = []
    for name in DENOISERS:
        folder = Path(seisbench.cache_model_root) / name.lower()
        if folder.is_dir():
            out += sorted({f"{name}/{p.name.split('.json')[0]}" for p in folder.glob("*.json.v*")})
    return out


def load_denoiser(spec: str, device: str = "cpu") -> Any:
    """Return the denoiser ``Class/weights`` on ``device``, loaded once per process.

    Raises:
        DenoiserUnavailable: naming the denoisers the cache holds and how to get one.
    """
    import seisbench.models as sbm

    model_name, weights = parse_spec(spec)
    key = (model_name, weights, device)
    with _LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        sb_log = logging.getLogger("seisbench")
        level = sb_log.level
        sb_log.setLevel(logging.CRITICAL)  # its download warnings would bury the one error line
        try:
            model = getattr(sbm, model_name).from_pretrained(weights)
        except Exception as exc:  # ValueError (unknown name), OSError/requests errors (offline)
            raise DenoiserUnavailable(
                f"--denoiser: weights {weights!r} of {model_name} are not available ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:100]}); the SeisBench cache holds "
                f"{cached_denoisers() or 'no denoiser'}; train one on your archive with "
                f"'quakelake train --denoiser' or copy weights into SEISBENCH_CACHE_ROOT"
            ) from None
        finally:
            sb_log.setLevel(level)
        model.to(device)
        model.eval()
        _MODELS[key] = model
        return model


def check_available(spec: str) -> None:
    """Raise :class:`DenoiserUnavailable` unless ``spec`` is cached (or SeisBench can fetch it).

    The command line calls this before any flow starts, so a bad ``--denoiser`` writes nothing.
    """
    model_name, weights = parse_spec(spec)
    if f"{model_name}/{weights}" not in cached_denoisers():
        load_denoiser(spec, "cpu")


def member_weights(weights: str, denoiser: str) -> str:
    """Return the weights label of the grid member ``weights`` on data denoised by ``denoiser``."""
    return denoised_weights(weights, denoiser)


def denoise_stream(model: Any, stream, batch_size: int = 1):
    """Return a copy of ``stream`` denoised by ``model``, with the original channel codes.

    Traces shorter than one model window are left out (the denoiser cannot see them).
    ``batch_size`` 1 keeps SeisDAE's per-batch STFT normalisation per window, as in training.
    """
    from obspy import Stream

    usable = Stream([tr for tr in stream if tr.stats.npts >= model.in_samples])
    if not len(usable):
        return Stream()
    out = model.annotate(usable, batch_size=batch_size)
    prefix = f"{model.name}_"
    for tr in out:
        if tr.stats.channel.startswith(prefix):
            tr.stats.channel = tr.stats.channel[len(prefix) :]
        tr.data = np.nan_to_num(tr.data.astype(np.float32))
    return out


def denoise_instruments(instruments: list, spec: str, device: str = "cpu") -> list:
    """Return the ``InstrumentStream`` objects with denoised streams (same instruments, same order)."""
    import dataclasses

    model = load_denoiser(spec, device)
    return [
        dataclasses.replace(inst, stream=denoise_stream(model, inst.stream)) for inst in instruments
    ]


# ------------------------------------------------------------------------------------- training
class DenoiserTrainParams(ParamModel):
    """How a denoiser is trained on the archive's own recordings."""

    model: Literal["SeisDAE"] = Field("SeisDAE", description="denoiser class to train")
    name: PlainName | None = Field(
        None, description="name of the new weights (default archive_<YYYYMMDD>)"
    )

    labels: Literal["picks", "reference"] = Field(
        "picks",
        description="where signal windows sit: the lake's picks, or a reference catalogue's picks",
    )
    reference: str | None = Field(
        None, description="reference catalogue whose picks mark signal (labels=reference)"
    )
    min_probability: float = Field(
        0.7, ge=0, le=1, description="signal: lake picks at or above this probability"
    )
    min_snr_db: float = Field(
        10.0, description="signal: windows whose P (or S) SNR on Z reaches this"
    )
    noise_margin_s: float = Field(
        30.0, ge=0, description="noise: no pick within this many seconds of the window"
    )
    max_noise_per_instrument: int = Field(
        40, ge=1, description="noise windows kept per instrument-day"
    )
    max_signal_per_instrument: int = Field(
        200, ge=1, description="signal windows kept per instrument-day"
    )
    holdout_stations: list[str] = Field(
        [], description="stations (NET.STA) kept for validation; empty: every 4th"
    )
    epochs: int = Field(5, ge=1, le=10000, description="passes over the signal windows")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(16, ge=1, le=4096, description="windows per optimisation step")
    seed: int = Field(0, description="seed of windows, mixing and PyTorch")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="torch device; auto takes CUDA when present"
    )


def snr_db(
    data: np.ndarray, onset: int, rate: float, before_s: float = 5.0, after_s: float = 2.0
) -> float:
    """Return 20 log10 of RMS(after onset) / RMS(before onset) of one trace (NaN when a side is empty)."""
    pre = data[max(0, onset - int(before_s * rate)) : onset]
    post = data[onset : onset + int(after_s * rate)]
    if len(pre) < 10 or len(post) < 10:
        return math.nan
    pre, post = pre - pre.mean(), post - pre.mean()
    noise = np.sqrt(np.mean(pre**2))
    return 20 * math.log10(np.sqrt(np.mean(post**2)) / noise) if noise > 0 else math.inf


def _pick_table(lake: Path, params: DenoiserTrainParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (signal picks, every known pick) as NET.STA.LOC trace ids, phase, time."""
    from quakelake.lakehouse import Lake, queries
    from quakelake.picking.training import TrainingError

    lk = Lake(lake)
    every = []
    for table in ("picks", "reference_picks"):
        if lk.has_files(table):
            every.append(
                lk.query(
                    f"SELECT {queries.PICK_STATION_ID} AS station_id, phase, time FROM {table}"
                )
            )
    if params.labels == "reference":
        if not params.reference:
            raise TrainingError(
                "--reference: name the reference catalogue whose picks mark signal windows"
            )
        signal = queries.reference_picks(lk, params.reference)
    else:
        signal = queries.picks(lk, min_probability=params.min_probability)
    if signal.empty:
        raise TrainingError(
            f"--labels/--min-probability: the training set has no labelled pick in lake {lake} "
            f"({'reference ' + repr(params.reference) if params.labels == 'reference' else 'lake picks'}); "
            f"pick the archive first (quakelake pick) or import a reference catalogue"
        )
    everything = (
        pd.concat(every, ignore_index=True) if every else signal[["station_id", "phase", "time"]]
    )
    for frame in (signal, everything):
        frame["trace"] = frame["station_id"].astype(str)  # NET.STA.LOC, SeisBench's trace id
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return signal, everything


def _windows(directory, lake, params, selection, days, samples_of):
    """Yield ``(kind, station, window start, rate, data)`` for signal and noise windows of the archive."""
    from quakelake.picking.training import archive_instruments, zne_array

    signal, everything = _pick_table(lake, params)
    rng = np.random.default_rng(params.seed)
    sig_by = {k: g for k, g in signal.groupby("trace")}
    epoch = pd.Timestamp(0, tz="UTC")
    all_by = {
        k: np.sort((g["time"] - epoch).dt.total_seconds().to_numpy())
        for k, g in everything.groupby("trace")
    }
    for inst in archive_instruments(directory, selection, days):
        if inst.components != "ZNE":
            continue
        rate = float(inst.stream[0].stats.sampling_rate)
        samples = samples_of(rate)
        if samples is None:
            continue
        trace = ids.station_id(inst.network, inst.station, inst.location)
        station = ids.station_code(inst.network, inst.station)
        t_start = pd.Timestamp(min(tr.stats.starttime for tr in inst.stream).datetime, tz="UTC")
        t_end = pd.Timestamp(max(tr.stats.endtime for tr in inst.stream).datetime, tz="UTC")
        length = pd.Timedelta(seconds=samples / rate)
        kept = 0
        for pick in sig_by.get(trace, pd.DataFrame(columns=["time", "phase"])).itertuples():
            if kept >= params.max_signal_per_instrument:
                break
            lead = pd.Timedelta(seconds=float(rng.uniform(0.15, 0.5)) * samples / rate)
            start = pick.time - lead
            if start < t_start or start + length > t_end:
                continue
            start = t_start + pd.Timedelta(
                seconds=round((start - t_start).total_seconds() * rate) / rate
            )
            data = zne_array(inst.stream, start, samples)
            if data is None:
                continue
            onset = int(round((pick.time - start).total_seconds() * rate))
            if not snr_db(data[0], onset, rate) >= params.min_snr_db:
                continue
            kept += 1
            yield "signal", station, start, rate, data
        picks = all_by.get(trace, np.array([]))
        span = length.total_seconds()
        starts = (
            pd.date_range(t_start, t_end - length, freq=length) if t_end - t_start > length else []
        )
        free = []
        for s in starts:
            lo = (s - epoch).total_seconds() - params.noise_margin_s
            hi = lo + span + 2 * params.noise_margin_s
            if not ((picks >= lo) & (picks <= hi)).any():
                free.append(s)
        if len(free) > params.max_noise_per_instrument:
            free = [
                free[i]
                for i in sorted(
                    rng.choice(len(free), params.max_noise_per_instrument, replace=False)
                )
            ]
        for start in free:
            data = zne_array(inst.stream, start, samples)
            if data is not None and np.std(data) > 0:
                yield "noise", station, start, rate, data


def build_denoiser_datasets(
    directory: Path,
    lake: Path,
    out: Path,
    params: DenoiserTrainParams,
    in_samples: int,
    sampling_rate: float,
    selection: StationSelection | None = None,
    days: TimeWindow | None = None,
) -> dict[str, Any]:
    """Write ``out/signal`` and ``out/noise`` SeisBench datasets (split column: held-out stations = dev).

    Raises:
        TrainingError: no signal or no noise window in one of the splits.
    """
    import seisbench.data as sbd

    from quakelake.picking.training import TrainingError, held_out_stations

    def samples_of(rate: float) -> int | None:
        return in_samples if abs(rate - sampling_rate) < 1e-6 else None

    out = Path(out)
    rows: list[tuple[str, str, pd.Timestamp, float, np.ndarray]] = list(
        _windows(directory, lake, params, selection, days, samples_of)
    )
    stations = sorted({r[1] for r in rows})
    held = held_out_stations(stations, _holdout(params))
    counts = {f"{kind}_{split}": 0 for kind in ("signal", "noise") for split in ("train", "dev")}
    for kind in ("signal", "noise"):
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        with sbd.WaveformDataWriter(folder / "metadata.csv", folder / "waveforms.hdf5") as writer:
            writer.data_format = {
                "dimension_order": "CW",
                "component_order": "ZNE",
                "measurement": "velocity",
                "unit": "counts",
                "instrument_response": "not restituted",
            }
            for k, station, start, rate, data in rows:
                if k != kind:
                    continue
                split = "dev" if station in held else "train"
                net, sta = station.split(".")
                writer.add_trace(
                    {
                        "station_network_code": net,
                        "station_code": sta,
                        "split": split,
                        "trace_start_time": start.isoformat(),
                        "trace_sampling_rate_hz": rate,
                    },
                    data,
                )
                counts[f"{kind}_{split}"] += 1
    empty = [k for k, v in counts.items() if not v]
    if empty:
        raise TrainingError(
            f"--min-snr/--noise-margin: no window for {', '.join(empty)} ({counts}) in {directory} at "
            f"{sampling_rate:g} Hz; lower --min-snr, pick more data first, or hold out other stations"
        )
    return {
        "path": str(out),
        "windows": counts,
        "stations": {"train": sorted(set(stations) - held), "dev": sorted(held)},
    }


def _holdout(params: DenoiserTrainParams):
    from quakelake.picking.training import TrainParams

    return TrainParams(holdout_stations=params.holdout_stations)


def _denoise_generator(signal, noise, model, seed: int):
    import seisbench.generate as sbg

    gen = sbg.GenericGenerator(signal)
    gen.add_augmentations(
        [
            sbg.STFTDenoiserLabeller(
                noise_dataset=noise,
                scale=(0, 1),
                scaling_type="peak",
                nfft=model.nfft,
                nperseg=model.nperseg,
            ),
            sbg.ChangeDtype(np.float32, key="X"),
            sbg.ChangeDtype(np.float32, key="y"),
        ]
    )
    return gen


def _mask_loss(pred, target):
    import torch

    return -(target * torch.log(pred + 1e-6)).sum(1).mean()


def _val_loss(model, loader, device: str, seed: int) -> float:
    import torch

    np.random.seed(
        seed
    )  # the labeller mixes with numpy's global generator: same mixtures every time
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            x, y = batch["X"].to(device), batch["y"].to(device)
            total += _mask_loss(model(x), y).item() * len(x)
            n += len(x)
    return total / max(n, 1)


def train_denoiser(
    lake: Path,
    directory: Path,
    params: DenoiserTrainParams,
    selection: StationSelection | None = None,
    days: TimeWindow | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Train a denoiser on the archive's signal and noise windows, save it as named weights; return its card.

    Raises:
        TrainingError: before anything is saved, when the lake or archive give no training windows.
    """
    import time

    import seisbench.data as sbd
    import seisbench.models as sbm
    import torch
    from torch.utils.data import DataLoader

    from quakelake.lakehouse import lineage
    from quakelake.picking import models as picking
    from quakelake.picking.training import (
        TrainingError,
        cached_weights,
        card_markdown,
        save_weights,
    )

    name = params.name or f"archive_{dt.date.today():%Y%m%d}"
    if name in cached_weights(params.model):
        raise TrainingError(
            f"--name: weights {params.model}/{name} already exist in the SeisBench cache; "
            f"choose another name"
        )
    device = picking.resolve_device(params.device)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    model = getattr(sbm, params.model)()
    work_dir = Path(work_dir or Path(lake) / "_training" / f"{params.model}.{name}")
    for kind in ("signal", "noise"):
        for stale in ("metadata.csv", "waveforms.hdf5"):
            (work_dir / kind / stale).unlink(missing_ok=True)
    data = build_denoiser_datasets(
        directory, lake, work_dir, params, model.in_samples, model.sampling_rate, selection, days
    )
    signal = sbd.WaveformDataset(work_dir / "signal", component_order="ZNE", dimension_order="NCW")
    noise = sbd.WaveformDataset(work_dir / "noise", component_order="ZNE", dimension_order="NCW")
    model.to(device)
    train_loader = DataLoader(
        _denoise_generator(signal.train(), noise.train(), model, params.seed),
        batch_size=params.batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(params.seed),
    )
    dev_loader = DataLoader(
        _denoise_generator(signal.dev(), noise.dev(), model, params.seed),
        batch_size=params.batch_size,
        shuffle=False,
        num_workers=0,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    t0 = time.perf_counter()
    history = [
        {
            "epoch": 0,
            "train_loss": math.nan,
            "val_loss": _val_loss(model, dev_loader, device, params.seed + 1),
            "val_recall": math.nan,
        }
    ]
    for epoch in range(1, params.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for batch in train_loader:
            x, y = batch["X"].to(device), batch["y"].to(device)
            optimizer.zero_grad()
            loss = _mask_loss(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            n += len(x)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / max(n, 1),
                "val_loss": _val_loss(model, dev_loader, device, params.seed + 1),
                "val_recall": math.nan,
            }
        )
        log.info(
            "denoiser epoch %d: train loss %.4f, validation loss %.4f",
            epoch,
            history[-1]["train_loss"],
            history[-1]["val_loss"],
        )
    model.eval()
    model.to("cpu")
    card = {
        "name": name,
        "model": params.model,
        "parent_weights": "none (trained from scratch)",
        "summary": f"{params.model} trained on signal and noise windows of {directory}",
        "signal": (
            f"reference {params.reference!r}"
            if params.labels == "reference"
            else f"lake picks with probability >= {params.min_probability}"
        )
        + f", SNR >= {params.min_snr_db} dB",
        "noise": f"windows with no pick within {params.noise_margin_s} s",
        "mixing": "STFTDenoiserLabeller: signal and noise peak-normalised, scaled by U(0,1) each (random SNR)",
        "windows": data["windows"],
        "split_stations": data["stations"],
        "dataset": data["path"],
        "window_samples": model.in_samples,
        "sampling_rate": model.sampling_rate,
        "epochs": params.epochs,
        "learning_rate": params.learning_rate,
        "batch_size": params.batch_size,
        "seed": params.seed,
        "device": device,
        "seconds": round(time.perf_counter() - t0, 1),
        "history": history,
        "created": lineage.utcnow().isoformat(),
        "versions": lineage.package_versions(),
    }
    card["weights_path"] = str(save_weights(model, name, card))
    card["card_markdown"] = card_markdown(card)
    run_id = lineage.new_run_id()
    lineage.record_run(
        Path(lake),
        run_id,
        "train-denoiser",
        {k: v for k, v in card.items() if k != "card_markdown"},
        "completed",
        lineage.utcnow(),
        lineage.utcnow(),
        weights={f"{params.model}/{name}": picking.weights_checksum(params.model, name)},
    )
    card["run_id"] = run_id
    return card
