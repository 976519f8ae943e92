"""The batched picking engine against SeisBench ``classify`` on real recordings, real weights."""

from __future__ import annotations

import json

import numpy as np
import obspy
import pandas as pd
import pytest

from quakelake.archive import waveforms
from quakelake.config import PickParams, StationSelection
from quakelake.lakehouse import Lake
from quakelake.picking import engine
from quakelake.picking import models as picking

SALTON_STATIONS = ["BOM", "COA"]
MODELS = [("PhaseNet", "original"), ("EQTransformer", "original"), ("PhaseNetLight", "ethz")]
# each model on the CPU runtime "auto" chooses for it, and PhaseNet also on the other one
RUNS = [(m, w, "auto") for m, w in MODELS] + [("PhaseNet", "original", "onnx")]


@pytest.fixture(scope="module")
def instruments(shared_data, salton) -> list:
    """Two Salton Sea station-days (180 s) and the Mesetas mainshock half hour at URMC, read the production way."""
    out = []
    sel = StationSelection(stations=SALTON_STATIONS)
    for unit in waveforms.station_days(
        waveforms.scan_archive(salton / "mseed", selection=sel).index
    ):
        out.extend(waveforms.read_station_day(unit, selection=sel)[0])
    mesetas = shared_data / "seismonitor_mesetas_2019" / "mseed"
    st = obspy.Stream()
    for path in sorted(mesetas.glob("CM.URMC.00.HH?__20191224T185959Z__*.mseed")):
        st += obspy.read(str(path))
    st.merge(method=1)
    st.trim(obspy.UTCDateTime("2019-12-24T19:00:00"), obspy.UTCDateTime("2019-12-24T19:30:00"))
    out.append(waveforms.InstrumentStream("CM", "URMC", "00", "HH", st))
    return out


def _rows(picks: list) -> pd.DataFrame:
    return pd.DataFrame(
        [(p.trace_id, p.phase, p.peak_time.timestamp, float(p.peak_value)) for p in picks],
        columns=["trace_id", "phase", "t", "p"],
    ).sort_values(["trace_id", "phase", "t"], ignore_index=True)


def _assert_same_picks(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same picks: count within 0.5 %, matched times within 10 ms, probabilities within 0.01."""
    assert abs(len(ours) - len(ref)) <= 0.005 * len(ref)
    assert len(ref) > 0
    for (tid, phase), theirs in ref.groupby(["trace_id", "phase"]):
        mine = ours[(ours["trace_id"] == tid) & (ours["phase"] == phase)]
        for row in theirs.itertuples():
            dt = (mine["t"] - row.t).abs()
            assert dt.min() <= 0.010, f"{tid} {phase} pick at {row.t} missing"
            assert abs(mine.loc[dt.idxmin(), "p"] - row.p) <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize(("name", "weights", "runtime"), RUNS, ids=["-".join(r) for r in RUNS])
def test_engine_gives_seisbench_picks_for_every_accelerated_model(
    name, weights, runtime, instruments, weights_cache
):
    model = picking.load_model(name, weights, "cpu")
    params = PickParams(
        models=[name], weights=[weights], p_threshold=0.3, s_threshold=0.3, engine=runtime
    )
    eng = engine.get_engine(model, params)
    expected = engine.CPU_RUNTIMES[name][0] if runtime == "auto" else runtime
    assert eng.name == f"engine-{expected}"  # the optimised runtime passed its load-time check
    kwargs = picking.classify_kwargs(params)
    ref = _rows([p for inst in instruments for p in model.classify(inst.stream, **kwargs).picks])
    kwargs.pop("batch_size")
    outputs = eng.classify([inst.stream for inst in instruments], batch_size=256, **kwargs)
    _assert_same_picks(_rows([p for out in outputs for p in out.picks]), ref)


def test_batches_span_instruments_and_give_each_its_own_picks(instruments, weights_cache):
    model = picking.load_model("PhaseNet", "original", "cpu")
    eng = engine.PickEngine(model, "torch")
    kwargs = {"P_threshold": 0.3, "S_threshold": 0.3}
    streams = [inst.stream for inst in instruments[:2]]
    mesetas = instruments[-1].stream
    streams.append(mesetas.slice(mesetas[0].stats.starttime, mesetas[0].stats.starttime + 300))
    alone = [eng.classify([st], batch_size=256, **kwargs)[0] for st in streams]
    windows_alone = eng.stats.windows
    # 5 windows per batch: the 180-s streams have 11 windows, so batches mix the end of one with the next.
    together = eng.classify(streams, batch_size=5, **kwargs)
    assert eng.stats.windows == 2 * windows_alone
    assert len(together) == len(streams)
    for a, b in zip(alone, together, strict=True):
        ra, rb = _rows(a.picks), _rows(b.picks)
        assert len(ra) == len(rb) and len(ra) > 0
        assert np.abs(ra["t"].to_numpy() - rb["t"].to_numpy()).max() <= 1e-6
        assert np.abs(ra["p"].to_numpy() - rb["p"].to_numpy()).max() <= 1e-5


def test_device_selection_and_gpu_batch_size():
    assert engine.choose_runtime("cpu") == "openvino"  # PhaseNet: the fastest measured
    assert engine.choose_runtime("cpu", "auto", "EQTransformer") == "onnx"
    assert engine.choose_runtime("cpu", "onnx") == "onnx"
    assert engine.choose_runtime("cpu", "onnx", "EQTransformer") == "onnx"
    assert engine.choose_runtime("cpu", "torch") == "torch"
    assert engine.choose_runtime("cuda") == "torch"
    assert engine.choose_runtime("cuda:1", "onnx") == "torch"  # no ONNX Runtime GPU build here
    assert engine.batch_size_for("cpu", PickParams()) == 256
    assert engine.batch_size_for("cuda", PickParams()) == engine.GPU_BATCH_SIZE
    assert engine.batch_size_for("cuda:0", PickParams(batch_size=1024)) == 1024


def test_export_is_cached_and_a_damaged_cache_is_replaced(instruments, weights_cache):
    model = picking.load_model("PhaseNet", "original", "cpu")
    kwargs = {"P_threshold": 0.3, "S_threshold": 0.3}
    path = engine._export_path(model)
    path.unlink(missing_ok=True)
    first = engine.PickEngine(model, "onnx", threads=1)
    assert path.is_file() and path.parent == weights_cache / "quakelake-engine"
    exported = path.read_bytes()
    path.write_bytes(exported[: len(exported) // 3])  # a truncated file, e.g. a full disk
    second = engine.PickEngine(model, "onnx", threads=1)
    assert second.name == "engine-onnx"  # exported again, not fallen back to torch
    assert path.read_bytes() == exported
    third = engine.PickEngine(model, "onnx", threads=1)  # from the cache
    streams = [instruments[0].stream]
    picks = [_rows(e.classify(streams, batch_size=64, **kwargs)[0].picks) for e in (first, third)]
    assert len(picks[0]) > 0 and picks[0].equals(picks[1])


def test_reduced_precision_is_cuda_only(weights_cache):
    model = picking.load_model("PhaseNet", "original", "cpu")
    eng = engine.PickEngine(model, "torch", precision="fp16")
    assert eng.runtime.autocast is None  # fp32 on the CPU whatever was asked


@pytest.mark.slow
def test_models_without_acceleration_fall_back_to_classify(instruments, weights_cache):
    import seisbench.models as sbm

    params = PickParams(models=["GPD"], weights=["none"])
    gpd = sbm.GPD()  # a point-output model the engine does not accelerate (untrained weights)
    gpd.eval()
    assert not engine.accelerated(gpd, params)
    spec = picking.ModelSpec("GPD", "none")
    picks, made_by = engine.pick_instruments(gpd, instruments[:1], spec, params)
    assert made_by == "seisbench"
    expected = picking.pick_streams(gpd, instruments[:1], spec, params)
    assert picks["time"].tolist() == expected["time"].tolist()

    phasenet = picking.load_model("PhaseNet", "original", "cpu")
    forced = PickParams(engine="seisbench")
    assert engine.engine_name(phasenet, forced) == "seisbench"
    assert engine.engine_name(phasenet, PickParams()) == "engine-openvino"


@pytest.mark.slow
def test_pick_flow_records_the_engine_and_matches_classify(
    salton, weights_cache, prefect_server, tmp_path
):
    from quakelake.flows.pick import pick_phases

    sel = StationSelection(stations=SALTON_STATIONS)
    fast = pick_phases(salton / "mseed", tmp_path / "fast", selection=sel, pick=PickParams())
    plain = pick_phases(
        salton / "mseed", tmp_path / "plain", selection=sel, pick=PickParams(engine="seisbench")
    )
    assert fast["engines"] == {"PhaseNet/original": ["engine-openvino"]}
    assert plain["engines"] == {"PhaseNet/original": ["seisbench"]}
    config = json.loads(Lake(tmp_path / "fast").read("runs")["config_json"][0])
    assert config["engines"] == {"PhaseNet/original": ["engine-openvino"]}
    a = (
        Lake(tmp_path / "fast")
        .read("picks")
        .sort_values(["station_id", "phase", "time"], ignore_index=True)
    )
    b = (
        Lake(tmp_path / "plain")
        .read("picks")
        .sort_values(["station_id", "phase", "time"], ignore_index=True)
    )
    assert len(a) == len(b) and len(a) > 0
    assert (a["time"] - b["time"]).abs().max() <= pd.Timedelta(milliseconds=10)
    assert (a["probability"] - b["probability"]).abs().max() <= 0.01


@pytest.mark.gpu
def test_cuda_engine_gives_the_cpu_picks(instruments, weights_cache):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    import copy

    cpu = picking.load_model("PhaseNet", "original", "cpu")
    gpu = copy.deepcopy(cpu).to("cuda").eval()
    eng = engine.PickEngine(gpu, "torch")
    assert eng.name == "engine-torch" and eng.device.startswith("cuda")
    kwargs = {"P_threshold": 0.3, "S_threshold": 0.3}
    ref = _rows([p for inst in instruments for p in cpu.classify(inst.stream, **kwargs).picks])
    outputs = eng.classify(
        [inst.stream for inst in instruments], batch_size=engine.GPU_BATCH_SIZE, **kwargs
    )
    _assert_same_picks(_rows([p for out in outputs for p in out.picks]), ref)
