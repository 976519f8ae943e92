"""Batched picking engine: SeisBench's own pre- and post-processing around a faster network call.

SeisBench ``classify`` runs one stream at a time through an asyncio pipeline that builds one
Python object per window, copies every window twice, keeps every window's prediction until the
stream is done and calls the network through torch eager mode. The engine keeps the parts that
define the picks (the model's stream preprocessing, grouping, ``stream_to_array``, window offsets,
``annotate_batch_pre``/``annotate_batch_post``, stacking rules and ``classify_aggregate``) and
replaces the rest:

* windows of every instrument (of one or several station-days) are cut as views and filled into
  batches across instruments, so batches are full (a GPU batch spans stations);
* the network runs on an optimised runtime chosen per device and model by measurement
  (:func:`choose_runtime`, :data:`CPU_RUNTIMES`): on CPU OpenVINO or ONNX Runtime (fp32, both
  from one ONNX export checked against the SeisBench model at load), torch with
  ``inference_mode`` on CUDA (optionally fp16/bf16);
* predictions are stacked into one running float32 buffer per instrument as batches come back
  (the same float operations in the same order as SeisBench's ``stack_windows``), so memory holds
  one unit's waveform and one prediction trace, not every window;
* one lock per engine: concurrent tasks in threads (the ``threads`` runner) overlap their decoding
  with the one running network call instead of oversubscribing the cores.

Models the engine does not accelerate (:data:`ACCELERATED` lists the ones checked against SeisBench
on real data in ``tests/test_engine.py``) go through SeisBench ``classify`` unchanged. Plain Python:
no Prefect. Synchronous: no asyncio.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quakelake import ids
from quakelake.lakehouse.atomic import atomic_write
from quakelake.params import PickParams
from quakelake.picking.models import (
    PICK_COLUMNS,
    ModelSpec,
    classify_kwargs,
    pick_streams,
    picks_frame,
)

log = logging.getLogger(__name__)

#: SeisBench classes whose engine output is checked against ``classify`` on real data.
ACCELERATED = ("PhaseNet", "PhaseNetLight", "EQTransformer")
#: Largest difference allowed between the optimised runtime and the SeisBench model at load.
RUNTIME_TOLERANCE = 1e-4
#: CPU runtimes to try per model class, fastest first (seconds of the network per station-day,
#: 5,760 windows, batch 256 split over one-thread streams on 2 cores, ``benchmarks/README.md``):
#: PhaseNet OpenVINO 4.3 / ONNX Runtime 5.1 / torch 13.8 (one thread); EQTransformer ONNX Runtime
#: 29.0 (one session of two threads: 34.7). OpenVINO 2026.4 computes EQTransformer's P output
#: wrongly (0.15 from SeisBench's), so it is not offered for that model.
CPU_RUNTIMES: dict[str, tuple[str, ...]] = {
    "PhaseNet": ("openvino", "onnx"),
    "PhaseNetLight": ("openvino", "onnx"),
    "EQTransformer": ("onnx",),
}
_IMPORTS = {"onnx": "onnxruntime", "openvino": "openvino"}
#: ONNX opset of the export (ONNX Runtime and OpenVINO both read it).
ONNX_OPSET = 17
#: Windows per batch on a CUDA device when the configured batch size is the CPU default.
GPU_BATCH_SIZE = 4096

_ENGINES: dict[tuple[int, str, str, str], PickEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_name(model: Any, params: PickParams) -> str:
    """Return what picks with ``model``: ``engine-openvino``, ``engine-onnx``, ``engine-torch`` or ``seisbench``."""
    if not accelerated(model, params):
        return "seisbench"
    return f"engine-{choose_runtime(_device_of(model), params.engine, type(model).__name__)}"


def accelerated(model: Any, params: PickParams) -> bool:
    """Return True when the engine (not SeisBench ``classify``) picks with ``model`` under ``params``."""
    if params.engine == "seisbench" or type(model).__name__ not in ACCELERATED:
        return False
    return (
        getattr(model, "output_type", None) == "array"
        and getattr(model, "_grouping", None) is not None
        and model._grouping.grouping == "instrument"
        and not getattr(model, "allow_padding", False)
    )


def choose_runtime(device: str, preference: str = "auto", model_class: str = "PhaseNet") -> str:
    """Return the network runtime: ``torch`` on CUDA; on CPU the fastest installed one for the model.

    Args:
        device: torch device string (``cpu``, ``cuda``, ``cuda:1`` ...).
        preference: ``auto``, ``openvino``, ``onnx`` or ``torch`` (``PickParams.engine``); a runtime
            that is not installed falls back to the next one of :data:`CPU_RUNTIMES`, then torch.
        model_class: the SeisBench class name (its order in :data:`CPU_RUNTIMES`).
    """
    if preference == "torch" or device.startswith("cuda"):
        return "torch"
    order = CPU_RUNTIMES.get(model_class, ("onnx", "openvino"))
    if preference in _IMPORTS:
        order = (preference, *(r for r in order if r != preference))
    for runtime in order:
        try:
            __import__(_IMPORTS[runtime])
        except ImportError:
            continue
        return runtime
    return "torch"


def batch_size_for(device: str, params: PickParams) -> int:
    """Return windows per batch: the configured size on CPU; on CUDA at least :data:`GPU_BATCH_SIZE`."""
    if (
        device.startswith("cuda")
        and params.batch_size == PickParams.model_fields["batch_size"].default
    ):
        return GPU_BATCH_SIZE
    return params.batch_size


def _device_of(model: Any) -> str:
    try:
        return str(next(model.parameters()).device)
    except (StopIteration, AttributeError):
        return "cpu"


# --------------------------------------------------------------------------- runtimes


class _TorchRuntime:
    """The SeisBench module itself under ``inference_mode`` (CUDA, or CPU without ONNX Runtime)."""

    name = "torch"

    def __init__(self, model: Any, precision: str = "fp32") -> None:
        import torch

        self.model = model
        self.device = next(model.parameters()).device
        self.autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def __call__(self, batch):
        import torch

        batch = batch.to(self.device, non_blocking=True)
        if self.autocast is not None and self.device.type == "cuda":
            with torch.autocast("cuda", dtype=self.autocast):
                out = self.model(batch)
            return _to_float(out)
        return self.model(batch)


def _to_float(out):
    if isinstance(out, (tuple, list)):
        return type(out)(o.float() for o in out)
    return out.float()


def _onnx_export(model: Any) -> tuple[bytes, bool]:
    """Return the SeisBench module as ONNX bytes (dynamic batch) and whether it outputs a tuple.

    The export (seconds for PhaseNet, ~30 s for EQTransformer) is kept in
    ``<SEISBENCH_CACHE_ROOT>/quakelake-engine/``, keyed by the class, the weights' bytes, the
    input shape and the torch version, so every later worker process of any run reuses it.
    """
    import torch

    with torch.inference_mode():
        reference = model(torch.zeros(1, len(model.component_order), model.in_samples))
    tuple_output = isinstance(reference, (tuple, list))
    path = _export_path(model)
    if path.is_file():
        return path.read_bytes(), tuple_output
    example = torch.zeros(2, len(model.component_order), model.in_samples)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,  # type: ignore[arg-type]  # a file object works too
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    data = buf.getvalue()
    try:  # atomically: a concurrent worker reads either nothing or the whole file
        atomic_write(path, data)
    except OSError as exc:  # a read-only cache: export again next time
        log.debug("engine export not cached in %s: %s", path.parent, exc)
    return data, tuple_output


def _export_path(model: Any) -> Path:
    """Return where the ONNX export of ``model`` (class, weights, shape, torch version) is kept."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    digest.update(f"{type(model).__name__}|{model.in_samples}|{model.component_order}|".encode())
    digest.update(f"{torch.__version__}|{ONNX_OPSET}|".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return _export_cache() / f"{type(model).__name__}-{digest.hexdigest()[:24]}.onnx"


def _export_cache() -> Path:
    from quakelake.picking.weights import cache_root

    return cache_root() / "quakelake-engine"


class _OnnxRuntime:
    """The SeisBench module exported to ONNX and run by ONNX Runtime on the CPU (fp32).

    With ``threads`` > 1 a batch is split into ``threads`` parts run at once by one-thread
    sessions' ``run`` calls (ONNX Runtime releases the GIL), as OpenVINO's streams do.
    """

    name = "onnx"

    def __init__(self, model: Any, threads: int) -> None:
        import onnxruntime as ort

        onnx, self.tuple_output = _onnx_export(model)
        self.streams = max(1, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Spinning pool threads steal the cores from decoding threads and from other workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self.pool = ThreadPoolExecutor(self.streams) if self.streams > 1 else None

    def _run(self, x: np.ndarray) -> list:
        return self.session.run(None, {"x": x})

    def __call__(self, batch):
        import torch

        x = batch.numpy()
        if self.pool is None or len(x) < 2:
            outputs = self._run(x)
        else:
            parts = [p for p in np.array_split(x, min(self.streams, len(x))) if len(p)]
            results = list(self.pool.map(self._run, parts))
            outputs = [np.concatenate(o) for o in zip(*results, strict=True)]
        tensors = tuple(torch.from_numpy(o) for o in outputs)
        return tensors if self.tuple_output else tensors[0]


class _OpenVinoRuntime:
    """The same ONNX export compiled by OpenVINO for the CPU, fp32 (no bf16/fp16 inference hint).

    With ``threads`` > 1 the compiled model runs ``threads`` streams of one thread each and a
    batch is split among them (throughput mode): independent single-thread streams keep both
    cores busy where one stream of two threads waits at every layer's barrier. One thread is
    one stream, as a Dask worker with one thread per process gets.
    """

    name = "openvino"

    def __init__(self, model: Any, threads: int) -> None:
        import openvino as ov

        onnx, self.tuple_output = _onnx_export(model)
        core = ov.Core()
        self.streams = max(1, threads)
        config = {
            "INFERENCE_NUM_THREADS": self.streams,
            "NUM_STREAMS": self.streams,
            "PERFORMANCE_HINT": "THROUGHPUT" if self.streams > 1 else "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",  # never the CPU's bf16/fp16 fast path
            "CACHE_DIR": str(
                _export_cache() / "openvino"
            ),  # compiled blobs, reused by later workers
        }
        self.compiled = core.compile_model(core.read_model(onnx), "CPU", config)
        self.requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        self.outputs = self.compiled.outputs

    def __call__(self, batch):
        import torch

        x = batch.numpy()
        parts = [p for p in np.array_split(x, min(self.streams, len(x))) if len(p)]
        requests = self.requests[: len(parts)]
        for request, part in zip(requests, parts, strict=True):
            request.start_async({0: part})
        for request in requests:
            request.wait()
        # copies: a request reuses its output buffers on the next call
        tensors = tuple(
            torch.from_numpy(np.concatenate([np.array(r.get_tensor(o).data) for r in requests]))
            for o in self.outputs
        )
        return tensors if self.tuple_output else tensors[0]


def _max_difference(a, b) -> float:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    return max(
        float((x.float().cpu() - y.float().cpu()).abs().max()) for x, y in zip(a, b, strict=True)
    )


# --------------------------------------------------------------------------- engine


def stack_window(
    acc: np.ndarray,
    count: np.ndarray | None,
    start: int,
    pred: np.ndarray,
    method: str,
    has_nan: bool,
) -> None:
    """Stack one window's prediction ``(channels, samples)`` into ``acc[:, start:]`` in place.

    The same float32 operations as SeisBench's ``stack_windows``: ``max`` ignores NaN, ``avg``
    sums the non-NaN values (``count`` counts them; the caller divides at the end). ``count``
    may be None for ``max``. The batch engine and the streaming picker both stack through here,
    so their curves are the same floats.
    """
    stop = start + pred.shape[1]
    target = acc[:, start:stop]
    if method == "max":
        np.fmax(target, pred, out=target)
        if count is not None:
            count[:, start:stop] += 1
    elif has_nan:
        finite = ~np.isnan(pred)
        np.add(target, np.where(finite, pred, np.float32(0)), out=target)
        assert count is not None
        count[:, start:stop] += finite
    else:
        target += pred
        assert count is not None
        count[:, start:stop] += 1


@dataclass
class _Group:
    """One contiguous block of one instrument (SeisBench ``GroupedTraceData``) and its stacking buffer."""

    stream_index: int
    data: Any  # GroupedTraceData with float32 data
    offsets: np.ndarray
    in_samples: int
    pred_sample: tuple[int, int]
    factor: float
    method: str
    acc: Any = None  # np.ndarray, allocated with the first window
    count: Any = None  # np.ndarray of contributions per sample (avg only)
    done: int = 0

    def add(self, offset: int, pred: np.ndarray, has_nan: bool = True) -> None:
        """Stack one window's prediction ``(channels, samples)``, as SeisBench's ``stack_windows`` does.

        The same float32 operations in the same window order: ``max`` ignores NaN, ``avg`` sums the
        non-NaN values and divides by their count at the end.
        """
        if self.acc is None:
            length = int(np.round(self.offsets.max() * self.factor)) + pred.shape[1]
            if self.method == "max":
                self.acc = np.full((pred.shape[0], length), np.nan, dtype=np.float32)
            else:
                self.acc = np.zeros((pred.shape[0], length), dtype=np.float32)
                self.count = np.zeros((pred.shape[0], length), dtype=np.uint8)
        start = int(np.round(offset * self.factor))
        stack_window(self.acc, self.count, start, pred, self.method, has_nan)
        self.done += 1

    def stacked(self) -> np.ndarray:
        """Return the stacked predictions ``(samples, channels)`` (NaN where no window contributed)."""
        if self.method == "max":
            return self.acc.T
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.acc / self.count
        out[self.count == 0] = np.nan
        return out.T


@dataclass
class EngineStats:
    """Seconds spent per stage by one engine since it was made (for profiles and benchmarks)."""

    seconds: dict[str, float] = field(
        default_factory=lambda: {
            "preprocess": 0.0,
            "batch assembly": 0.0,
            "network": 0.0,
            "stacking": 0.0,
            "peaks": 0.0,
        }
    )
    windows: int = 0

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class PickEngine:
    """Picks streams with one loaded SeisBench model, batching windows across streams.

    Args:
        model: a loaded SeisBench ``WaveformModel`` in eval mode (one of :data:`ACCELERATED`).
        runtime: ``onnx`` or ``torch`` (see :func:`choose_runtime`).
        precision: ``fp32`` (CPU always), ``fp16`` or ``bf16`` on CUDA.
        threads: intra-op threads of the runtime (default: torch's setting in this process).
        runtime: ``openvino``, ``onnx`` or ``torch``; an optimised runtime that fails its export or
            its load-time agreement check falls back to torch (logged).
    """

    def __init__(
        self,
        model: Any,
        runtime: str = "torch",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        import torch

        self.model = model
        self.device = _device_of(model)
        threads = threads or torch.get_num_threads()
        self.runtime: Any = None
        runtimes = {"onnx": _OnnxRuntime, "openvino": _OpenVinoRuntime}
        for attempt in range(2 if runtime in runtimes else 0):
            try:
                self.runtime = runtimes[runtime](model, threads)
                self._check_runtime()
                break
            except Exception as exc:  # an export or agreement failure: torch gives the same picks
                self.runtime = None
                cached = _export_path(model)
                if attempt == 0 and cached.is_file():  # a damaged cached export: export again
                    log.warning("re-exporting %s: cached %s failed (%s)", runtime, cached, exc)
                    cached.unlink(missing_ok=True)
                    continue
                log.warning(
                    "%s unavailable for %s (%s); using torch", runtime, type(model).__name__, exc
                )
                break
        if self.runtime is None:
            self.runtime = _TorchRuntime(
                model, precision if self.device.startswith("cuda") else "fp32"
            )
        self.lock = threading.Lock()
        self.stats = EngineStats()

    @property
    def name(self) -> str:
        """Return ``engine-openvino``, ``engine-onnx`` or ``engine-torch``."""
        return f"engine-{self.runtime.name}"

    def _check_runtime(self) -> None:
        import torch

        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4, len(self.model.component_order), self.model.in_samples, generator=gen)
        with torch.inference_mode():
            x = self.model.annotate_batch_pre(x, {})
            diff = _max_difference(self.model(x), self.runtime(x.contiguous()))
        if not diff <= RUNTIME_TOLERANCE:
            raise ValueError(f"outputs differ from the SeisBench model by {diff:.2e}")

    # ---------------------------------------------------------------- stages

    def _groups(self, index: int, stream, argdict: dict, copy: bool = True) -> list[_Group]:
        """Return the blocks of one stream after the model's own stream preprocessing and grouping."""
        model = self.model
        stream = model.classify_stream_pre(stream, argdict)
        if copy:
            stream = stream.copy()
        stream.merge(-1)
        if len(stream) == 0:
            return []
        model.annotate_stream_pre(stream, argdict)
        stream = model.annotate_stream_validate(stream, argdict)
        if len(stream) == 0:
            return []
        sampling_rate = stream[0].stats.sampling_rate
        argdict["sampling_rate"] = sampling_rate
        comp_dict, _ = model._build_comp_dict(
            stream, model._argdict_get_with_default(argdict, "flexible_horizontal_components")
        )
        traces = model._grouping.group_stream(
            stream,
            strict=model._argdict_get_with_default(argdict, "strict"),
            min_length_s=(model.in_samples - 1) / sampling_rate,
            comp_dict=comp_dict,
        )
        method = model._argdict_get_with_default(argdict, "stacking").lower()
        groups = []
        for group in traces:
            data = model.stream_to_array(group, argdict)
            data = data._replace(data=data.data.astype(np.float32))
            in_samples, pred_sample = model._get_in_pred_samples(data)
            overlap = model._get_overlap(in_samples, argdict)
            offsets = np.arange(0, data.n_samples - in_samples + 1, in_samples - overlap)
            if len(offsets) == 0:
                continue
            if offsets[-1] + in_samples < data.n_samples:
                offsets = np.concatenate([offsets, [data.n_samples - in_samples]])
            factor = in_samples / (pred_sample[1] - pred_sample[0])
            groups.append(_Group(index, data, offsets, in_samples, pred_sample, factor, method))
        return groups

    def _run_batches(self, groups: list[_Group], argdict: dict, batch_size: int) -> None:
        """Cut windows of every group into full batches, run the network, stack predictions per group."""
        import time

        import torch

        jobs = [(g, int(o)) for g in groups for o in g.offsets]
        for start in range(0, len(jobs), batch_size):
            t0 = time.perf_counter()
            chunk = jobs[start : start + batch_size]
            size = chunk[0][0].in_samples
            windows = np.stack([g.data.data[..., o : o + size] for g, o in chunk])
            batch = torch.from_numpy(windows)
            if self.runtime.name == "torch":  # normalise on the device the network runs on
                batch = batch.to(self.runtime.device, non_blocking=True)
            t1 = time.perf_counter()
            with torch.inference_mode():
                pre = self.model.annotate_batch_pre(batch, argdict=argdict)
                piggyback = None
                if isinstance(pre, tuple):
                    pre, piggyback = pre
                out = self.runtime(pre.contiguous())
                post = self.model.annotate_batch_post(out, piggyback=piggyback, argdict=argdict)
                pred = post.cpu().numpy()
            t2 = time.perf_counter()
            if pred.ndim == 2:
                pred = pred[..., np.newaxis]
            pred = np.ascontiguousarray(pred.transpose(0, 2, 1))  # (window, channel, sample) rows
            has_nan = bool(np.isnan(pred).any())
            for (g, o), p in zip(chunk, pred, strict=True):
                g.add(o, p, has_nan)
            t3 = time.perf_counter()
            self.stats.add("batch assembly", t1 - t0)
            self.stats.add("network", t2 - t1)
            self.stats.add("stacking", t3 - t2)
            self.stats.windows += len(chunk)

    def classify(self, streams: list, batch_size: int = 256, copy: bool = True, **kwargs) -> list:
        """Return one SeisBench ``ClassifyOutput`` per stream, as ``model.classify(stream, **kwargs)`` would.

        Args:
            streams: ObsPy streams (one instrument each, e.g. ``InstrumentStream.stream``).
            batch_size: windows per network call, filled across streams.
            copy: work on copies of the streams; ``False`` lets the model's stream preprocessing
                (merge, filter, resample) change them in place and saves one copy of the data.
            kwargs: SeisBench classify arguments (thresholds, overlap, stacking ...).
        """
        import time

        from seisbench.models.utils import PredictionsStacked
        from seisbench.util import ClassifyOutput

        argdicts, groups = [], []
        t0 = time.perf_counter()
        for i, stream in enumerate(streams):
            argdict = self.model.default_args.copy()
            argdict.update(kwargs)
            argdict["batch_size"] = batch_size
            groups.extend(self._groups(i, stream, argdict, copy) if len(stream) else [])
            argdicts.append(argdict)
        self.stats.add("preprocess", time.perf_counter() - t0)
        with self.lock:
            self._run_batches(groups, argdicts[0] if argdicts else {}, batch_size)
        t0 = time.perf_counter()
        outputs = []
        import obspy

        for i, argdict in enumerate(argdicts):
            annotations = obspy.Stream()
            for g in (g for g in groups if g.stream_index == i):
                stacked = PredictionsStacked(
                    data=g.stacked(),
                    stations=g.data.stations,
                    start_time=g.data.start_time + g.pred_sample[0] / g.data.sampling_rate,
                    sampling_rate=g.data.sampling_rate * g.factor,
                )
                g.acc = g.count = None
                annotations += self.model._predictions_to_stream(stacked)
            if len(annotations):
                outputs.append(self.model.classify_aggregate(annotations, argdict))
            else:
                outputs.append(ClassifyOutput(self.model.name, picks=[]))
        self.stats.add("peaks", time.perf_counter() - t0)
        return outputs


def get_engine(model: Any, params: PickParams) -> PickEngine:
    """Return the engine of ``model`` for ``params`` (one per model, runtime and precision per process)."""
    runtime = choose_runtime(_device_of(model), params.engine, type(model).__name__)
    key = (id(model), runtime, params.precision, _device_of(model))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = PickEngine(model, runtime, params.precision)
            _ENGINES[key] = engine
        return engine


def pick_instruments(
    model: Any, instruments: list, spec: ModelSpec, params: PickParams
) -> tuple[pd.DataFrame, str]:
    """Return the picks ``model`` makes on ``instruments`` and what made them (see :func:`engine_name`).

    The engine picks the models it accelerates; any other SeisBench model goes through
    :func:`quakelake.picking.models.pick_streams` (SeisBench ``classify``, one stream at a time).
    """
    if not accelerated(model, params):
        return pick_streams(model, instruments, spec, params), "seisbench"
    engine = get_engine(model, params)
    kept = [inst for inst in instruments if len(inst.stream)]
    kwargs = classify_kwargs(params)
    batch_size = batch_size_for(engine.device, params)
    kwargs.pop("batch_size")
    # The task drops the instruments after picking: no copy of a day's data.
    outputs = engine.classify(
        [inst.stream for inst in kept], batch_size=batch_size, copy=False, **kwargs
    )
    frames = []
    for inst, output in zip(kept, outputs, strict=True):
        trace_id = ids.station_id(inst.network, inst.station, inst.location)
        frame = picks_frame(list(output.picks), spec, {trace_id: inst.band})
        if len(frame):
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=PICK_COLUMNS), engine.name
    picks = pd.concat(frames, ignore_index=True)
    return picks.sort_values(["time", "station_id", "phase"], ignore_index=True), engine.name
