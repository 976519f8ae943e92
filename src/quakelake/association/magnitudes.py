"""Local magnitudes: Wood-Anderson amplitudes per pick, station ML, event ML.

The chain is the one observatories use:

1. **Amplitude** (:func:`measure_amplitudes`): each horizontal channel of a station with a pick
   of the event is corrected for its instrument response (StationXML, ObsPy
   ``remove_response`` to displacement) and filtered through a Wood-Anderson seismograph
   (:data:`WOOD_ANDERSON`: 0.8 s period, damping 0.7, static magnification 2080). The peak
   (zero-to-peak) of the simulated trace is read in a window that opens ``pre_s`` before the S
   pick, or before the P pick when the station has no S (then the window is long enough to hold
   the S wave), and lasts ``window_s``. Stored: amplitude in metres of Wood-Anderson trace,
   period (twice the time between the peak and the next opposite extremum), the window used.
2. **Station ML** (:func:`station_magnitudes`): ``ML = log10(A [mm]) + -log A0(R) + S`` per
   channel with an :class:`AttenuationLaw`, Hutton & Boore (1987) by default; the station's ML
   is the mean of its horizontal channels' MLs.
3. **Event ML** (:func:`event_magnitudes`): median of the station MLs, their standard deviation
   as the uncertainty, and the number of stations.

Setting a regional law (e.g. the one of your observatory) in a configuration file::

    magnitude:
      law:
        name: "my-network-ML"
        a: 1.11          # -log A0 = a log10(R / ref_km) + b (R - ref_km) + c
        b: 0.00189
        c: 3.0
        ref_km: 100.0
        distance: hypocentral
        station_corrections: {"OX.ACOM": -0.1}

or, for a law given as a -log A0 table (distance km, value), interpolated linearly in distance::

    magnitude:
      law: {name: "table-ML", table: [[10, 1.5], [50, 2.4], [100, 3.0], [300, 4.1]]}

The OGS (Friuli - Venezia Giulia) bulletin computes ML with a -log A0 curve of this kind
calibrated for NE Italy (Bragato & Tento 2005, BSSA 95): enter their coefficients or table the
same way (``name: OGS-ML``); QuakeLake ships only Hutton & Boore (1987), which INGV uses for the
Italian bulletin (see ``tests/test_magnitudes.py``: INGV station MLs reproduced from their
amplitudes and distances).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import obspy
import pandas as pd
from obspy import Inventory, Stream, UTCDateTime
from obspy.core.inventory import Response
from obspy.geodetics import gps2dist_azimuth

from quakelake import ids
from quakelake.archive.stations import read_inventory as read_station_inventory
from quakelake.association.quality import is_rejected
from quakelake.params.magnitudes import (
    AmplitudeParams,
    AttenuationLaw,
    MagnitudeError,
    MagnitudeParams,
)

_SIGNAL_LOCK = threading.RLock()


def defer_obspy_signal_init() -> None:
    """Let ``import obspy.signal.<module>`` skip the package's ``__init__`` until it is needed.

    ``remove_response`` and ``simulate`` import ``obspy.signal.invsim``, which first runs
    ``obspy/signal/__init__.py``: it imports PPSD (matplotlib, obspy.imaging, obspy.io.xseed),
    ~0.5 s of a process's CPU that no magnitude needs. This puts the package module in
    ``sys.modules`` without running it, with a module ``__getattr__`` (PEP 562): a submodule's
    name imports the submodule; any other name (``PPSD``, ``__all__``) runs the real
    ``__init__`` in the module first and then answers, so ``from obspy.signal import PPSD``
    works as always. Nothing changes when ``obspy.signal`` is imported already; called when
    this module is imported. ``tests/test_magnitudes.py`` checks both in a fresh interpreter.
    """
    name = "obspy.signal"
    with _SIGNAL_LOCK:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader

        def __getattr__(attr: str):
            if not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}"):
                return importlib.import_module(f"{name}.{attr}")
            with _SIGNAL_LOCK:
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]  # the real __init__ runs without it
                    try:
                        loader.exec_module(module)
                    except BaseException:
                        module.__dict__["__getattr__"] = __getattr__  # the next access tries again
                        raise
                    # __init__ deletes a ``filter`` already imported: attach the submodules again
                    for full, sub in list(sys.modules.items()):
                        if full.startswith(name + ".") and full.count(".") == 2:
                            module.__dict__.setdefault(full.rsplit(".", 1)[1], sub)
            return object.__getattribute__(module, attr)

        module.__dict__["__getattr__"] = __getattr__
        sys.modules[name] = module
        obspy.__dict__["signal"] = module  # as an import sets it on the parent


defer_obspy_signal_init()

#: Wood-Anderson torsion seismograph (displacement input): poles of a 0.8 s, 0.7-damped pendulum,
#: two zeros at the origin, static magnification 2080 (IASPEI 2013 standard).
WOOD_ANDERSON = {
    "poles": [-5.49779 + 5.60886j, -5.49779 - 5.60886j],
    "zeros": [0j, 0j],
    "gain": 1.0,
    "sensitivity": 2080.0,
}

AMPLITUDE_COLUMNS = [
    "event_id",
    "pick_id",
    "station_id",
    "network",
    "station",
    "location",
    "channel",
    "phase",
    "amplitude_m",
    "period_s",
    "time",
    "window_start",
    "window_end",
    "type",
    "unit",
]
STATION_MAGNITUDE_COLUMNS = [
    "event_id",
    "station_id",
    "network",
    "station",
    "location",
    "channels",
    "magnitude",
    "magnitude_type",
    "distance_km",
    "epicentral_km",
    "amplitude_m",
    "n_channels",
]
EVENT_MAGNITUDE_COLUMNS = [
    "event_id",
    "magnitude",
    "magnitude_type",
    "magnitude_uncertainty",
    "magnitude_station_count",
]


def amplitude_window(
    picks: pd.DataFrame, params: AmplitudeParams, origin_time: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp, str, str | None]:
    """Return (start, end, phase, pick_id) of the amplitude window of one station's picks of an event.

    The window opens ``pre_s`` before the S pick and lasts ``pre_s + window_s``; without S it
    opens before the P pick and reaches ``window_s`` past where S is expected
    (``t_S - t0 = vp_vs x (t_P - t0)`` when the origin time is known, else ``2 x window_s``).
    """
    times = pd.to_datetime(picks["time"], utc=True)
    pre = pd.Timedelta(seconds=params.pre_s)
    length = pd.Timedelta(seconds=params.pre_s + params.window_s)
    # the first letter of each phase, upper case (as .astype(str).str.upper().str[0])
    phases = np.array([str(v).upper()[:1] for v in picks["phase"]], dtype=object)
    if times.isna().any():  # NaT: pandas' idxmin skips them
        return _amplitude_window_of_series(picks, params, origin_time, times, phases)
    stamps = times.to_numpy()
    for phase in ("S", "P"):
        mine = np.flatnonzero(phases == phase)
        if len(mine):
            at = mine[np.argmin(stamps[mine])]  # the first of the earliest, as idxmin
            i, t = picks.index[at], times.iloc[at]
            break
    else:
        raise MagnitudeError("amplitude window: the station has neither a P nor an S pick")
    if phase == "S":
        return t - pre, t - pre + length, "S", _pick_id(picks, i)
    if origin_time is not None and t > origin_time:
        s_expected = origin_time + (t - origin_time) * params.vp_vs
    else:
        s_expected = t + pd.Timedelta(seconds=params.window_s)
    return t - pre, s_expected + pd.Timedelta(seconds=params.window_s), "P", _pick_id(picks, i)


def _amplitude_window_of_series(
    picks: pd.DataFrame,
    params: AmplitudeParams,
    origin_time: pd.Timestamp | None,
    times: pd.Series,
    phases: np.ndarray,
) -> tuple[pd.Timestamp, pd.Timestamp, str, str | None]:
    """:func:`amplitude_window` with pandas' ``idxmin`` (pick times with NaT)."""
    phases = pd.Series(phases, index=times.index)
    pre = pd.Timedelta(seconds=params.pre_s)
    length = pd.Timedelta(seconds=params.pre_s + params.window_s)
    s = times[phases == "S"]
    if len(s):
        i = s.idxmin()
        return s[i] - pre, s[i] - pre + length, "S", _pick_id(picks, i)
    p = times[phases == "P"]
    if not len(p):
        raise MagnitudeError("amplitude window: the station has neither a P nor an S pick")
    i = p.idxmin()
    if origin_time is not None and p[i] > origin_time:
        s_expected = origin_time + (p[i] - origin_time) * params.vp_vs
    else:
        s_expected = p[i] + pd.Timedelta(seconds=params.window_s)
    return p[i] - pre, s_expected + pd.Timedelta(seconds=params.window_s), "P", _pick_id(picks, i)


def _utc(t: pd.Timestamp) -> UTCDateTime:
    return UTCDateTime(ns=int(pd.Timestamp(t).value))


def _pick_id(picks: pd.DataFrame, index) -> str | None:
    return str(picks.at[index, "pick_id"]) if "pick_id" in picks else None


def _peak(data: np.ndarray, delta: float) -> tuple[int, float, float]:
    """Return (index, zero-to-peak amplitude, period) of the largest absolute sample of ``data``."""
    i = int(np.argmax(np.abs(data)))
    amp = float(abs(data[i]))
    sign = np.sign(data[i])
    # half period: from the peak to the nearest extremum of the opposite sign, either side
    half = []
    for step in (1, -1):
        j = i
        while 0 <= j + step < len(data) and data[j + step] * sign > 0:
            j += step  # to the zero crossing
        k, best = j, 0.0
        while 0 <= k + step < len(data) and data[k + step] * sign <= 0:
            k += step
            if -data[k] * sign > best:
                best, extreme = -data[k] * sign, k
        if best > 0:
            half.append(abs(extreme - i) * delta)
    return i, amp, (2.0 * min(half)) if half else float("nan")


# evalresp (ObsPy's C library) keeps state in globals (its current file, channel and error
# jump): two threads in it at once are not safe, and once printed a sensitivity warning no
# serial run prints. Every evaluation of this module holds this lock; the rest of the chain
# (miniSEED reading, detrending, FFTs) runs in parallel.
EVALRESP = threading.Lock()


class _KeptResponse(Response):
    """A channel's response that keeps its evaluations (see :class:`Responses`)."""

    kept: dict
    owner: Responses

    def get_evalresp_response(self, t_samp, nfft, output="VEL", *args, **kwargs):
        key = (float(t_samp), int(nfft), output, args, tuple(sorted(kwargs.items())))
        with EVALRESP:  # one thread evaluates a key, another waits for it and takes a copy
            if key not in self.kept:
                self.owner.evaluations += 1
                self.kept[key] = super().get_evalresp_response(
                    t_samp, nfft, output, *args, **kwargs
                )
        values, freqs = self.kept[key]
        # ObsPy's remove_response inverts the returned spectrum in place: hand out copies
        return values.copy(), freqs.copy()


class Responses:
    """The channel responses of an inventory, each evaluated once per sampling interval and length.

    ObsPy's ``remove_response`` evaluates the channel's response (evalresp) at every call; a
    day's amplitude windows of one channel all have the same sampling and FFT length, so the
    same spectrum was computed once per event (~17 ms each, 136 times for the 180-s Salton Sea
    day). Here the first evaluation of a response, sampling interval, FFT length and output is
    kept and later calls get a copy of it: the same numbers, computed once. Channels whose
    responses are equal (ObsPy's ``Response ==``: every stage, coefficient and gain; often the
    two horizontal components of a station) share their evaluations.

    Attributes:
        inventory: the StationXML inventory.
        evaluations: how many spectra were computed (the rest were reused).
    """

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self.evaluations = 0
        self._kept: dict[int, tuple[Response, _KeptResponse]] = {}
        self._guard = threading.Lock()  # the stations of a day are measured in two threads

    def get(self, trace_id: str, time: UTCDateTime) -> Response:
        """Return the response of channel ``trace_id`` at ``time`` (``Inventory.get_response``)."""
        response = self.inventory.get_response(trace_id, time)
        with self._guard:
            kept = self._kept.get(id(response))
            if kept is None:
                # the inventory holds ``response``: its id stays its own while this object lives
                same = next((m for r, m in self._kept.values() if r == response), None)
                if same is None:
                    same = copy.copy(response)
                    same.__class__ = _KeptResponse
                    same.kept, same.owner = {}, self
                kept = self._kept[id(response)] = (response, same)
        return kept[1]


def wood_anderson(
    stream: Stream, inventory: Inventory | Responses, params: AmplitudeParams
) -> Stream:
    """Return ``stream`` corrected to displacement and filtered through a Wood-Anderson (metres).

    Channels whose response is not in ``inventory`` are left out (see the ``missing`` attribute
    of the returned stream: a list of ``(channel id, reason)``). Pass a :class:`Responses` to
    evaluate each channel's response once over several calls.

    The chain is ObsPy's ``detrend("demean")``, ``detrend("linear")``, ``taper(0.05,
    "cosine")``, ``remove_response(output="DISP", ...)`` and ``simulate(paz_simulate=
    WOOD_ANDERSON)``; for the usual trace (unmasked samples, a response with stages) it runs on
    the arrays (:func:`_wood_anderson_data`, the same numbers without ObsPy's per-call
    bookkeeping), otherwise through the ``Trace`` methods.
    """
    responses = inventory if isinstance(inventory, Responses) else Responses(inventory)
    out = Stream()
    missing: list[tuple[str, str]] = []
    with _one_blas_thread():
        for tr in stream:
            try:
                response = responses.get(tr.id, tr.stats.starttime)
                if _arrays_apply(tr, response):
                    tr = _with_data(tr, _wood_anderson_data(tr, response, params))
                else:
                    with EVALRESP:  # remove_response evaluates the response
                        tr = _wood_anderson_trace(tr.copy(), response, params)
            except (
                Exception
            ) as exc:  # ObsPy raises ValueError/Exception for missing or unusable responses
                missing.append((tr.id, f"{type(exc).__name__}: {exc}"))
                continue
            out.append(tr)
    out.missing = missing
    return out


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (None without threadpoolctl)."""
    import scipy.linalg  # noqa: F401  (loads the OpenBLAS that scipy's lstsq uses)

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn brings it; the stage works without
        return None
    return ThreadpoolController()


_BLAS = {"lock": threading.Lock(), "users": 0, "limiter": None}


@contextlib.contextmanager
def _one_blas_thread():
    """Within this context OpenBLAS & co. use one thread (the linear detrend's ``lstsq``).

    The windows are a few thousand samples: a second BLAS thread does not speed them up, but
    OpenBLAS's idle threads spin after each call, ~0.5 s of a second core per Salton Sea day
    (issue 26) taken from the process's other threads and processes. BLAS has no per-thread
    setting: the first of the stage's threads to enter sets the process's limit and the last
    to leave puts the original back (days measured in parallel threads do not undo each
    other's limit).
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with _BLAS["lock"]:
        if _BLAS["users"] == 0:
            _BLAS["limiter"] = controller.limit(limits=1, user_api="blas")
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS["lock"]:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                _BLAS["limiter"].restore_original_limits()
                _BLAS["limiter"] = None


def _wood_anderson_trace(tr: obspy.Trace, response: Response, params: AmplitudeParams):
    """:func:`wood_anderson` of one trace (changed in place) through ObsPy's ``Trace`` methods."""
    nyquist = 0.5 * tr.stats.sampling_rate
    f1, f2 = params.pre_filt_hz
    tr.detrend("demean")
    tr.detrend("linear")
    tr.taper(0.05, type="cosine")
    if response.response_stages:
        tr.stats.response = response  # what remove_response uses without an inventory
        tr.remove_response(
            output="DISP",
            water_level=params.water_level_db,
            pre_filt=(f1, f2, 0.8 * nyquist, 0.9 * nyquist),
            zero_mean=True,
            taper=False,
        )
        del tr.stats.response
    else:
        _sensitivity_only(tr, response, f2, 0.8 * nyquist)
    tr.simulate(paz_simulate=WOOD_ANDERSON, remove_sensitivity=False, simulate_sensitivity=True)
    return tr


def _arrays_apply(tr: obspy.Trace, response: Response) -> bool:
    """Return True when :func:`_wood_anderson_data` computes what the ``Trace`` methods would."""
    from obspy.core.inventory.response import PolynomialResponseStage

    data = tr.data
    return (
        isinstance(data, np.ndarray)
        and not isinstance(data, np.ma.MaskedArray)
        and data.ndim == 1
        and len(data) > 1
        and data.dtype.kind in "iuf"
        and bool(response.response_stages)
        and not isinstance(response.response_stages[0], PolynomialResponseStage)
    )


def _wood_anderson_data(tr: obspy.Trace, response: Response, params: AmplitudeParams) -> np.ndarray:
    """Return :func:`_wood_anderson_trace`'s samples of ``tr`` computed on its array.

    Each step calls the function ObsPy's ``Trace`` method calls, with the same arguments and
    dtype handling (ObsPy 1.5, ``obspy/core/trace.py`` and ``obspy/signal/invsim.py``), so the
    numbers are the same bit for bit (``tests/test_magnitudes.py`` compares both paths); what
    is left out is the method lookup through the package metadata, the argument bookkeeping in
    ``stats.processing`` and the trace copies. The tapers, the pre-filter and the
    Wood-Anderson spectrum depend only on the lengths and are computed once per length.
    """
    import scipy.signal
    from obspy.signal.detrend import simple as simple_detrend
    from obspy.signal.invsim import invert_spectrum
    from obspy.signal.util import _npts2nfft

    stats = tr.stats
    data = tr.data
    # Trace.detrend("demean"), Trace.detrend("linear"): scipy.signal.detrend, float32 kept
    for kind in ("constant", "linear"):
        dtype = data.dtype
        data = scipy.signal.detrend(data, type=kind)
        if dtype == np.float32 and data.dtype != np.float32:
            data = np.require(data, dtype=np.float32)
    # Trace.taper(0.05, type="cosine")
    if not np.issubdtype(data.dtype, np.floating):
        data = np.require(data, dtype=np.float64)
    npts = len(data)
    data *= _trace_taper(npts)
    # Trace.remove_response(output="DISP", water_level, pre_filt, zero_mean=True, taper=False)
    nyquist = 0.5 * stats.sampling_rate
    f1, f2 = params.pre_filt_hz
    pre_filt = (f1, f2, 0.8 * nyquist, 0.9 * nyquist)
    data = data.astype(np.float64)
    data -= data.mean()
    nfft = _npts2nfft(npts)
    spectrum = np.fft.rfft(data, n=nfft)
    freq_response, _ = response.get_evalresp_response(stats.delta, nfft, output="DISP")
    spectrum *= _pre_filt_taper(float(stats.delta), int(nfft), pre_filt)
    if params.water_level_db is None:
        freq_response[0] = 0.0
        freq_response[1:] = 1.0 / freq_response[1:]
    else:
        invert_spectrum(freq_response, params.water_level_db)
    spectrum *= freq_response
    spectrum[-1] = abs(spectrum[-1]) + 0.0j
    data = np.fft.irfft(spectrum)[0:npts]
    # Trace.simulate(paz_simulate=WOOD_ANDERSON, remove_sensitivity=False,
    # simulate_sensitivity=True): simulate_seismometer with its defaults (zero mean, 5 % cosine
    # taper, PITSA simple detrend)
    delta = 1.0 / stats.sampling_rate
    data = data.astype(np.float64)
    data -= data.mean()
    data *= _simulate_taper(npts)
    nfft = _npts2nfft(npts)
    spectrum = np.fft.rfft(data, n=nfft)
    spectrum *= _wood_anderson_spectrum(delta, int(nfft))
    spectrum[-1] = abs(spectrum[-1]) + 0.0j
    data = np.fft.irfft(spectrum)[0:npts]
    data = simple_detrend(data)
    data *= WOOD_ANDERSON["sensitivity"]
    return data


def _with_data(tr: obspy.Trace, data: np.ndarray) -> obspy.Trace:
    """Return a trace with the header of ``tr`` and samples ``data`` (``tr`` is left as it was)."""
    out = obspy.Trace(data=data)
    out.stats = tr.stats.copy()
    out.stats.npts = len(data)
    out.stats.processing = [*out.stats.get("processing", []), "QuakeLake: wood_anderson()"]
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=64)
def _trace_taper(npts: int) -> np.ndarray:
    """The window ``Trace.taper(0.05, type="cosine")`` multiplies a trace of ``npts`` samples by."""
    from obspy.signal.invsim import cosine_taper

    wlen = min(int(0.05 * npts), int(npts / 2))
    sides = cosine_taper(2 * wlen if 2 * wlen == npts else 2 * wlen + 1, p=1.0)
    return _readonly(
        np.hstack((sides[:wlen], np.ones(npts - 2 * wlen), sides[len(sides) - wlen :]))
    )


@functools.lru_cache(maxsize=64)
def _simulate_taper(npts: int) -> np.ndarray:
    """The 5 % cosine taper of ObsPy's ``simulate_seismometer`` for ``npts`` samples."""
    from obspy.signal.invsim import cosine_taper

    return _readonly(cosine_taper(npts, 0.05))


@functools.lru_cache(maxsize=64)
def _pre_filt_taper(delta: float, nfft: int, pre_filt: tuple[float, ...]) -> np.ndarray:
    """``remove_response``'s frequency-domain pre-filter (``cosine_sac_taper``) of one FFT grid."""
    from obspy.signal.invsim import cosine_sac_taper

    # the frequencies of Response.get_evalresp_response(delta, nfft)
    freqs = np.linspace(0, 1 / (delta * 2.0), int(nfft // 2) + 1, dtype=np.float64)
    return _readonly(cosine_sac_taper(freqs, flimit=pre_filt))


@functools.lru_cache(maxsize=64)
def _wood_anderson_spectrum(delta: float, nfft: int) -> np.ndarray:
    """The Wood-Anderson response ``simulate_seismometer`` multiplies a spectrum of ``nfft`` by."""
    from obspy.signal.invsim import paz_to_freq_resp

    wa = WOOD_ANDERSON
    return _readonly(paz_to_freq_resp(wa["poles"], wa["zeros"], wa["gain"], delta, nfft))


def _sensitivity_only(tr, response, f_low: float, f_high: float) -> None:
    """Convert ``tr`` to displacement with the overall sensitivity only (StationXML without stages).

    Some agencies publish only the overall sensitivity of a channel. A broadband velocity
    sensor (or an accelerometer) is flat across the Wood-Anderson band (about 0.5-20 Hz), so
    dividing by the sensitivity, band-limiting and integrating gives the displacement there.
    """
    sensitivity = response.instrument_sensitivity
    units = (sensitivity.input_units or "").upper() if sensitivity is not None else ""
    if sensitivity is None or not sensitivity.value or units not in ("M/S", "M/S**2", "M/S2"):
        raise MagnitudeError(
            f"response has no stages and no velocity/acceleration sensitivity (units {units!r})"
        )
    tr.data = tr.data.astype(float) / float(sensitivity.value)
    tr.filter("bandpass", freqmin=f_low, freqmax=f_high, corners=4, zerophase=True)
    for _ in range(2 if units != "M/S" else 1):
        tr.integrate()
        tr.detrend("linear")
        tr.filter("highpass", freq=f_low, corners=2, zerophase=True)


def is_horizontal(channel: str) -> bool:
    """Return True for a horizontal channel code (``??N``, ``??E``, ``??1``, ``??2``)."""
    return len(channel) == 3 and channel[2] in "NE12"


def measure_amplitudes(
    event_id: str,
    picks: pd.DataFrame,
    stream: Stream,
    inventory: Inventory | Responses,
    params: AmplitudeParams | None = None,
    origin_time: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Return the Wood-Anderson amplitude of each horizontal channel at each picked station.

    Args:
        event_id: written on every row.
        picks: the event's picks: ``station_id`` (``NET.STA.LOC``), ``phase``, ``time``, optional
            ``pick_id``.
        stream: raw waveforms (counts) covering the windows plus ``pad_s``.
        inventory: StationXML with the channels' responses (or its :class:`Responses`, kept
            over several events).
        params: window and response-removal settings.
        origin_time: event origin time (places the window of stations with only a P pick).

    Returns:
        (rows of :data:`AMPLITUDE_COLUMNS`, messages naming the stations left out and why).
    """
    params = params or AmplitudeParams()
    rows: list[dict] = []
    messages: list[str] = []
    picks = picks.reset_index(drop=True)
    for sid, mine in picks.groupby(picks["station_id"].astype(str), sort=True):
        net, sta, loc = (sid.split(".") + ["", ""])[:3]
        start, end, phase, pick_id = amplitude_window(mine, params, origin_time)
        t0, t1 = _utc(start), _utc(end)
        raw = stream.select(network=net, station=sta, location=loc or "")
        raw = Stream([tr for tr in raw if is_horizontal(tr.stats.channel)])
        raw = raw.slice(t0 - params.pad_s, t1 + params.pad_s)
        if not len(raw):
            messages.append(f"{event_id} {sid}: no horizontal waveforms for {t0}..{t1}")
            continue
        wa = wood_anderson(raw, inventory, params)
        for cid, reason in wa.missing:
            messages.append(f"{event_id} {cid}: no usable response ({reason[:200]})")
        longest: dict[str, obspy.Trace] = {}
        for tr in wa:  # a gap splits a channel: keep the piece that covers most of the window
            part = tr.slice(t0, t1)
            if tr.id not in longest or part.stats.npts > longest[tr.id].stats.npts:
                longest[tr.id] = part
        for part in longest.values():
            tr = part
            if part.stats.npts < 2 or part.stats.endtime - part.stats.starttime < 0.5 * (t1 - t0):
                messages.append(f"{event_id} {tr.id}: window {t0}..{t1} not covered by data")
                continue
            data = np.asarray(part.data, dtype=float)
            if not np.all(np.isfinite(data)):
                messages.append(f"{event_id} {tr.id}: non-finite samples in the window")
                continue
            i, amp, period = _peak(data, part.stats.delta)
            rows.append(
                {
                    "event_id": str(event_id),
                    "pick_id": pick_id,
                    "station_id": sid,
                    "network": net,
                    "station": sta,
                    "location": loc,
                    "channel": tr.stats.channel,
                    "phase": phase,
                    "amplitude_m": amp,
                    "period_s": period,
                    "time": pd.Timestamp(
                        (part.stats.starttime + i * part.stats.delta).datetime, tz="UTC"
                    ),
                    "window_start": start,
                    "window_end": end,
                    "type": "AML",
                    "unit": "m",
                }
            )
    return pd.DataFrame(rows, columns=AMPLITUDE_COLUMNS), messages


def hypocentral_km(
    lat: float,
    lon: float,
    depth_km: float,
    st_lat: np.ndarray,
    st_lon: np.ndarray,
    st_elev_m: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (hypocentral, epicentral) distances in km from an event to stations (WGS84)."""
    epi = np.array(
        [gps2dist_azimuth(lat, lon, a, b)[0] / 1000.0 for a, b in zip(st_lat, st_lon, strict=True)]
    )
    elev = (
        np.zeros_like(epi)
        if st_elev_m is None
        else np.nan_to_num(np.asarray(st_elev_m, float)) / 1000.0
    )
    depth = 0.0 if depth_km is None or not np.isfinite(depth_km) else float(depth_km)
    return np.hypot(epi, depth + elev), epi


def station_magnitudes(
    amplitudes: pd.DataFrame,
    events: pd.DataFrame,
    stations: pd.DataFrame,
    law: AttenuationLaw | None = None,
    magnitude_type: str = "ML",
) -> pd.DataFrame:
    """Return one station ML per (event, station): mean of its horizontal channels' MLs.

    Args:
        amplitudes: rows of :func:`measure_amplitudes`.
        events: ``event_id, latitude, longitude, depth_km``.
        stations: ``network, station, location, latitude, longitude`` (optionally ``elevation_m``);
            one row per channel epoch is fine.
        law: the attenuation law.
        magnitude_type: written on each row.
    """
    law = law or AttenuationLaw()
    if len(amplitudes) == 0:
        return pd.DataFrame(columns=STATION_MAGNITUDE_COLUMNS)
    coords = stations.copy()
    coords["location"] = coords["location"].fillna("").astype(str)
    coords["station_id"] = ids.station_ids(coords.astype({"network": str, "station": str}))
    coords = coords.groupby("station_id")[
        ["latitude", "longitude"] + (["elevation_m"] if "elevation_m" in coords else [])
    ].first()
    out = []
    ev_by_id = events.set_index(events["event_id"].astype(str))
    for eid, amps in amplitudes.groupby(amplitudes["event_id"].astype(str), sort=False):
        if eid not in ev_by_id.index:
            continue
        ev = ev_by_id.loc[eid]
        amps = amps[amps["station_id"].isin(coords.index)].copy()
        if not len(amps):
            continue
        c = coords.loc[amps["station_id"]]
        hypo, epi = hypocentral_km(
            float(ev["latitude"]),
            float(ev["longitude"]),
            float(ev.get("depth_km", np.nan)),
            c["latitude"].to_numpy(),
            c["longitude"].to_numpy(),
            c["elevation_m"].to_numpy() if "elevation_m" in c else None,
        )
        amps["distance_km"] = hypo if law.distance == "hypocentral" else epi
        amps["hypocentral_km"], amps["epicentral_km"] = hypo, epi
        amps["ml"] = law.magnitude(amps["amplitude_m"], amps["distance_km"], amps["station_id"])
        amps = amps[np.isfinite(amps["ml"])]
        for sid, g in amps.groupby("station_id", sort=True):
            out.append(
                {
                    "event_id": eid,
                    "station_id": sid,
                    "network": g["network"].iloc[0],
                    "station": g["station"].iloc[0],
                    "location": g["location"].iloc[0],
                    "channels": ",".join(sorted(g["channel"])),
                    "magnitude": float(g["ml"].mean()),
                    "magnitude_type": magnitude_type,
                    "distance_km": float(g["hypocentral_km"].iloc[0]),
                    "epicentral_km": float(g["epicentral_km"].iloc[0]),
                    "amplitude_m": float(g["amplitude_m"].max()),
                    "n_channels": len(g),
                }
            )
    return pd.DataFrame(out, columns=STATION_MAGNITUDE_COLUMNS)


def event_magnitudes(
    station_mags: pd.DataFrame, min_stations: int = 1, magnitude_type: str = "ML"
) -> pd.DataFrame:
    """Return per event: median of its station MLs, their standard deviation, the station count.

    Events with fewer than ``min_stations`` station MLs are left out. The uncertainty of a
    one-station ML is NaN (unknown), not 0.
    """
    rows = []
    for eid, g in station_mags.groupby(station_mags["event_id"].astype(str), sort=False):
        mags = g["magnitude"].to_numpy(dtype=float)
        mags = mags[np.isfinite(mags)]
        if len(mags) < min_stations or not len(mags):
            continue
        rows.append(
            {
                "event_id": eid,
                "magnitude": float(np.median(mags)),
                "magnitude_type": magnitude_type,
                "magnitude_uncertainty": float(np.std(mags, ddof=1))
                if len(mags) > 1
                else float("nan"),
                "magnitude_station_count": len(mags),
            }
        )
    return pd.DataFrame(rows, columns=EVENT_MAGNITUDE_COLUMNS)


# ----------------------------------------------------------------------------- one day of events


def read_inventory(paths: Iterable[str | Path]) -> Inventory:
    """Return one inventory of every StationXML file in ``paths`` (the responses).

    Location code ``--`` (some data centres' "none") becomes ``""``, as the lake and the
    waveforms name it, so that the channels' responses are found.
    """
    inventory = Inventory(networks=[], source="quakelake")
    for path in paths:
        inventory += read_station_inventory(path)
    for net in inventory:
        for sta in net:
            for cha in sta:
                if (cha.location_code or "").strip() == "--":
                    cha.location_code = ""
    return inventory


def read_waveforms(
    index: pd.DataFrame, station_id: str, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[Stream, list[str]]:
    """Return the horizontal channels of ``station_id`` in ``[start, end]`` from the indexed archive files.

    Args:
        index: ``waveform_index`` rows (path, format, network, station, location, channel, start, end).
        station_id: ``NET.STA.LOC``.
        start: first time wanted (UTC).
        end: last time wanted (UTC).

    Returns:
        (stream, messages naming unreadable files).
    """
    net, sta, loc = (station_id.split(".") + ["", ""])[:3]
    loc_col = index["location"].fillna("").astype(str)
    rows = index[
        (index["network"] == net)
        & (index["station"] == sta)
        & (loc_col == loc)
        & index["channel"].astype(str).str[-1:].isin(list("NE12"))
        & (pd.to_datetime(index["start"], utc=True) <= end)
        & (pd.to_datetime(index["end"], utc=True) >= start)
    ]
    stream, messages = Stream(), []
    t0, t1 = _utc(start), _utc(end)
    for path, fmt in rows[["path", "format"]].drop_duplicates("path").itertuples(index=False):
        kwargs = {"sourcename": f"{net}.{sta}.*"} if fmt == "MSEED" else {}
        try:
            st = obspy.read(str(path), format=fmt or None, starttime=t0, endtime=t1, **kwargs)
        except Exception as exc:  # ObsPy raises bare Exception for unreadable files
            messages.append(f"{path}: unreadable ({type(exc).__name__}: {exc})"[:300])
            continue
        stream += st.select(network=net, station=sta, location=loc)
    if len(stream):
        stream.merge(method=1)
        stream = stream.split()  # gaps become separate traces, never masked arrays
    return stream, messages


@dataclass
class DayMagnitudes:
    """What the magnitude stage made of one day of events.

    ``response_evaluations`` counts the instrument-response spectra computed (one per channel,
    sampling interval and FFT length: :class:`Responses`).
    """

    amplitudes: pd.DataFrame
    station_magnitudes: pd.DataFrame
    events: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    response_evaluations: int = 0


def day_magnitudes(
    events: pd.DataFrame,
    assignments: pd.DataFrame,
    stations: pd.DataFrame,
    inventory: Inventory,
    index: pd.DataFrame,
    params: MagnitudeParams | None = None,
) -> DayMagnitudes:
    """Return amplitudes, station MLs and event MLs of ``events`` from the archive that ``index`` lists.

    Each station's horizontal waveforms are read once for all the events it picked.

    Args:
        events: ``event_id, time, latitude, longitude, depth_km`` (lake ``events`` rows).
        assignments: ``event_id, pick_id, station_id, phase, time`` (lake ``assignments`` rows).
        stations: station coordinates (lake ``stations`` rows).
        inventory: StationXML responses.
        index: ``waveform_index`` rows covering the day.
        params: amplitude window, law and event ML settings.
    """
    params = params or MagnitudeParams()
    amp_params = params.amplitude
    # origins the quality gate rejected get no magnitude (quakelake.association.quality)
    reported = events[~is_rejected(events)]
    origin = dict(
        zip(
            reported["event_id"].astype(str),
            pd.to_datetime(reported["time"], utc=True),
            strict=True,
        )
    )
    picks = assignments[assignments["event_id"].astype(str).isin(origin)].copy()
    picks["time"] = pd.to_datetime(picks["time"], utc=True)
    responses = Responses(inventory)

    def one_station(sid: str, at_station: pd.DataFrame) -> tuple[list[pd.DataFrame], list[str]]:
        if sid.count(".") < 2:
            return [], [f"{sid}: no network code in the station id; no waveforms looked up"]
        windows = {
            eid: amplitude_window(g, amp_params, origin[eid])
            for eid, g in at_station.groupby(at_station["event_id"].astype(str))
        }
        pad = pd.Timedelta(seconds=amp_params.pad_s)
        lo = min(w[0] for w in windows.values()) - pad
        hi = max(w[1] for w in windows.values()) + pad
        stream, messages = read_waveforms(index, sid, lo, hi)
        amplitudes = []
        for eid, g in at_station.groupby(at_station["event_id"].astype(str)):
            rows, notes = measure_amplitudes(eid, g, stream, responses, amp_params, origin[eid])
            amplitudes.append(rows)
            messages += notes
        return amplitudes, messages

    # stations in two threads: reading miniSEED, evalresp and the FFTs release the interpreter
    # lock; the results are gathered in station order, so the output is the same as one by one
    stations_picks = list(picks.groupby(picks["station_id"].astype(str), sort=True))
    with ThreadPoolExecutor(max_workers=min(2, max(1, len(stations_picks)))) as pool:
        done = list(pool.map(lambda item: one_station(*item), stations_picks))
    amplitudes = [rows for station_rows, _ in done for rows in station_rows]
    messages = [m for _, notes in done for m in notes]
    amps = (
        pd.concat(amplitudes, ignore_index=True)
        if amplitudes
        else pd.DataFrame(columns=AMPLITUDE_COLUMNS)
    )
    station_ml = station_magnitudes(amps, events, stations, params.law, params.magnitude_type)
    station_ml["law"] = params.law.name
    event_ml = event_magnitudes(station_ml, params.min_stations, params.magnitude_type)
    return DayMagnitudes(
        amps,
        station_ml,
        with_magnitudes(events, event_ml),
        messages,
        response_evaluations=responses.evaluations,
    )


def with_magnitudes(events: pd.DataFrame, event_ml: pd.DataFrame) -> pd.DataFrame:
    """Return ``events`` with their magnitude columns replaced by ``event_ml`` (same row order)."""
    out = events.drop(columns=[c for c in EVENT_MAGNITUDE_COLUMNS[1:] if c in events]).copy()
    merged = (
        out[["event_id"]]
        .astype(str)
        .merge(event_ml.astype({"event_id": str}), on="event_id", how="left")
    )
    for col in EVENT_MAGNITUDE_COLUMNS[1:]:
        out[col] = merged[col].to_numpy()
    return out
