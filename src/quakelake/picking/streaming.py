"""Streaming picks on the batch window grid: live records in, final and provisional picks out.

The batch path (:func:`quakelake.engine.pick_instruments`) picks a station-day read with
``pad_s`` seconds on each side: each contiguous segment of an instrument is cut into windows
at ``0, step, 2 step, ...`` samples from the segment's first sample (plus one last window at
the segment's end), the network's predictions are stacked (SeisBench ``stack_windows``) and a
trigger (ObsPy ``trigger_onset``, off at half the threshold) turns the stacked curves into
picks. :class:`StreamPicker` does the same work as the records arrive:

- records are kept per *lane* (one instrument x one UTC day, ``[day - pad, day + 1 d + pad]``:
  around midnight a record feeds two lanes, as two batch units read it);
- a window runs as soon as every sample it covers has arrived (the slowest component sets the
  frontier; a component that stays silent for ``stall_s`` while the others go on is left
  out, i.e. zeros, as the batch path fills it);
- a prediction sample is *final* once every window covering it has run: the trigger runs
  over final samples only, incrementally, with the same state machine as ``trigger_onset``,
  so a final pick is the batch pick of the same data (the same windows, the same stacking
  order; only the batch composition of the network calls differs);
- picks whose trigger closed on samples not yet final are *provisional*: the monitor
  publishes them and confirms or withdraws them when their samples become final;
- a gap ends a segment (its last window is the one that ends at the last sample, as in the
  batch path) and the next record starts a new grid; the day's end (``day + 1 d + pad``) ends
  the lane.

Known, documented differences from the batch path: records that arrive after the windows
covering them have run (later than ``stall_s`` behind the other components, or after a gap
was closed) are not re-picked here (the daily batch run repicks the day); segments shorter
than one window give no picks (the batch path may merge them with a neighbour); models with
a stream filter or data at another sampling rate are filtered/resampled per chunk, which is
close to but not bit-equal with a whole-day filter.

Plain Python: no Prefect, no lake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from obspy import Stream, Trace, UTCDateTime

from quakelake.archive.waveforms import COMPONENT_MAP
from quakelake.params import PickParams
from quakelake.picking.engine import get_engine, stack_window
from quakelake.picking.models import (
    PICK_COLUMNS,
    ModelSpec,
    classify_kwargs,
    picks_frame,
)

log = logging.getLogger(__name__)

LaneKey = tuple[str, str, str, str, dt.date]  # network, station, location, band, day


@dataclass
class _Trigger:
    """Incremental ``obspy.signal.trigger.trigger_onset(data, thr, thr / 2)`` over one curve.

    A trigger is a run of samples ``>= thr / 2`` holding at least one sample ``>= thr``; it
    starts at the first sample ``>= thr`` of the run and ends at the run's last sample; its
    peak is the first maximum between the two.
    """

    thr: float
    in_run: bool = False
    on: int = -1  # index of the trigger's first sample >= thr in the current run, -1: none
    peak: float = -np.inf
    peak_at: int = -1
    last: int = -1  # last index of the current run

    def feed(self, values: np.ndarray, first: int) -> list[tuple[int, int, int, float]]:
        """Consume ``values`` (indices ``first, first + 1, ...``); return the closed triggers
        as ``(start, end, peak index, peak value)``."""
        out = []
        high = values >= self.thr
        low = values >= self.thr / 2
        if not low.any() and not self.in_run:
            return out
        # Run boundaries of `low` inside this block, with the carried state in front.
        n = len(values)
        i = 0
        while i < n:
            if not self.in_run:
                nxt = np.flatnonzero(low[i:])
                if not len(nxt):
                    break
                i += int(nxt[0])
                self.in_run, self.on, self.peak, self.peak_at = True, -1, -np.inf, -1
            ends = np.flatnonzero(~low[i:])
            stop = i + int(ends[0]) if len(ends) else n  # first sample of this block past the run
            if self.on < 0:
                ons = np.flatnonzero(high[i:stop])
                if len(ons):
                    self.on = first + i + int(ons[0])
                    seg = values[i + int(ons[0]) : stop]
                    j = int(np.argmax(seg))
                    self.peak, self.peak_at = float(seg[j]), self.on + j
            else:
                seg = values[i:stop]
                if len(seg):
                    j = int(np.argmax(seg))
                    if seg[j] > self.peak:
                        self.peak, self.peak_at = float(seg[j]), first + i + j
            if stop < n:
                self.last = first + stop - 1
                if self.on >= 0:
                    out.append((self.on, self.last, self.peak_at, self.peak))
                self.in_run = False
                i = stop
            else:
                self.last = first + n - 1
                i = n
        return out

    def close(self) -> list[tuple[int, int, int, float]]:
        """End of the curve: a run still open ends at its last sample."""
        out = []
        if self.in_run and self.on >= 0:
            out.append((self.on, self.last, self.peak_at, self.peak))
        self.in_run, self.on = False, -1
        return out


@dataclass
class _Segment:
    """One contiguous segment of a lane on its window grid, and its stacking buffer."""

    start: UTCDateTime  # first sample (SeisBench's group start time)
    keep: UTCDateTime | None = None  # earliest raw sample still held (the segment's start at first)
    next_k: int = 0  # next window to run
    acc: Any = None  # (channels, samples) from `base`, prediction samples
    count: Any = None
    base: int = 0  # prediction index of acc[:, 0]
    final_upto: int = 0  # prediction samples < final_upto went through the triggers
    triggers: list[_Trigger] = field(default_factory=list)
    closed: bool = False
    tail_done: bool = False
    ahead: tuple[int, np.ndarray] | None = None  # look-ahead prediction: (first index, curves)
    ahead_offset: int = -1  # input sample offset of the last look-ahead window


@dataclass
class _Ahead:
    """A look-ahead window's job: its prediction serves provisional picks only."""

    seg: _Segment


@dataclass
class _Lane:
    network: str
    station: str
    location: str
    band: str
    day: dt.date
    t0: UTCDateTime  # day - pad
    t1: UTCDateTime  # day + 1 day + pad
    channels: dict[str, list[Trace]] = field(default_factory=dict)  # component -> segments
    segment: _Segment | None = None
    done: bool = False
    sampling_rate: float = 0.0

    @property
    def trace_id(self) -> str:
        return f"{self.network}.{self.station}.{self.location}"


def _join(segments: list[Trace], tr: Trace) -> None:
    """Insert ``tr`` into the sorted contiguous ``segments`` of one channel, joining neighbours."""
    if segments:  # the common case: the next record continues the last segment
        prev = segments[-1]
        delta = prev.stats.delta
        gap = tr.stats.starttime - (prev.stats.endtime + delta)
        if (
            abs(gap) <= 0.5 * delta
            and tr.stats.sampling_rate == prev.stats.sampling_rate
            and tr.stats.starttime > prev.stats.starttime
        ):
            prev.data = np.concatenate([prev.data, tr.data.astype(prev.data.dtype, copy=False)])
            return
    segments.append(tr)
    segments.sort(key=lambda t: t.stats.starttime)
    merged: list[Trace] = []
    for t in segments:
        if merged:
            prev = merged[-1]
            delta = prev.stats.delta
            gap = t.stats.starttime - (prev.stats.endtime + delta)
            if abs(gap) <= 0.5 * delta and t.stats.sampling_rate == prev.stats.sampling_rate:
                prev.data = np.concatenate([prev.data, t.data.astype(prev.data.dtype, copy=False)])
                continue
            if gap < -0.5 * delta:  # overlap: keep what is there, append the new tail only
                skip = int(round((prev.stats.endtime + delta - t.stats.starttime) / delta))
                if skip < t.stats.npts:
                    tail = t.data[skip:].astype(prev.data.dtype, copy=False)
                    prev.data = np.concatenate([prev.data, tail])
                continue
        merged.append(t.copy())
    segments[:] = merged


@dataclass
class StepResult:
    """What one :meth:`StreamPicker.step` found."""

    final: pd.DataFrame  # picks whose samples are all final (equal to the batch picks)
    provisional: pd.DataFrame  # picks on samples not yet final
    windows: int = 0


class StreamPicker:
    """Pick live records with one model on the batch path's window grid.

    Args:
        model: a loaded SeisBench model (the PhaseNet/EQTransformer family).
        spec: model x weights label of the rows.
        params: thresholds, batch size, engine (as for batch picking).
        pad_s: seconds of context around each day (as :func:`quakelake.waveforms.read_station_day`).
        stall_s: a component that stays this far behind the others is treated as absent.
        reorder_s: data after a gap closes the segment before it once this many seconds of it
            have arrived (records that come out of order by less fill the gap instead).
        lookahead: every third of a grid step between two grid windows, run one window that
            ends at the newest sample, for provisional picks only (it never enters the stacked
            curves the final picks come from): a pick waits at most a third of a grid step for
            its first window instead of a whole one, for two more network passes per step.
    """

    def __init__(
        self,
        model: Any,
        spec: ModelSpec,
        params: PickParams,
        pad_s: float = 60.0,
        stall_s: float = 60.0,
        reorder_s: float = 10.0,
        lookahead: bool = True,
    ) -> None:
        self.model = model
        self.spec = spec
        self.params = params
        self.pad_s = pad_s
        self.stall_s = stall_s
        self.reorder_s = reorder_s
        self.engine = get_engine(model, params)
        self.argdict = model.default_args.copy()
        kwargs = classify_kwargs(params)
        kwargs.pop("batch_size")
        self.argdict.update(kwargs)
        self.in_samples = int(model.in_samples)
        overlap = model._get_overlap(self.in_samples, self.argdict)
        self.step_samples = self.in_samples - overlap
        self.lookahead = lookahead
        self.labels = list(model.labels)
        self.phases = [(i, lab) for i, lab in enumerate(self.labels) if lab in ("P", "S")]
        self.lanes: dict[LaneKey, _Lane] = {}
        self.windows = 0

    # ------------------------------------------------------------------ input
    def add(self, trace: Trace) -> None:
        """Add one record's samples (any channel; records may come late or out of order)."""
        s = trace.stats
        component = COMPONENT_MAP.get(s.channel[-1:].upper())
        if component is None or s.npts == 0:
            return
        band = s.channel[:-1]
        start, end = s.starttime, s.endtime
        first = dt.date(start.year, start.month, start.day)
        for day in {first - dt.timedelta(days=1), first, first + dt.timedelta(days=1)}:
            t0 = UTCDateTime(day.year, day.month, day.day) - self.pad_s
            t1 = t0 + 86400.0 + 2 * self.pad_s
            if end < t0 or start > t1:
                continue
            key = (s.network, s.station, s.location, band, day)
            lane = self.lanes.get(key)
            if lane is None:
                lane = _Lane(s.network, s.station, s.location, band, day, t0, t1)
                self.lanes[key] = lane
            if lane.done:
                continue
            keep = lane.segment.keep if lane.segment is not None else None
            lo = t0 if keep is None else max(t0, keep)
            if start >= lo and end <= t1:  # the whole record (the common case): no deep copy
                part = Trace(
                    trace.data,
                    header={
                        "network": s.network,
                        "station": s.station,
                        "location": s.location,
                        "channel": band + component,
                        "starttime": start,
                        "sampling_rate": s.sampling_rate,
                    },
                )
            else:
                part = trace.slice(lo, t1, nearest_sample=False)
                if part.stats.npts == 0:
                    continue
                part.stats.channel = band + component
            if lane.sampling_rate == 0.0:
                lane.sampling_rate = float(part.stats.sampling_rate)
            _join(lane.channels.setdefault(component, []), part)

    # ------------------------------------------------------------------ windows
    def _frontier(self, lane: _Lane, seg: _Segment) -> tuple[UTCDateTime | None, bool]:
        """Return the last sample time every live component holds contiguously in the segment,
        and whether the segment is over (data after a gap for ``reorder_s``, or the lane's end)."""
        delta = 1.0 / lane.sampling_rate
        here = seg.keep if seg.keep is not None else seg.start
        ends = {}
        after = []
        for comp, traces in lane.channels.items():
            for tr in traces:
                if (
                    tr.stats.starttime <= here + 0.5 * delta
                    and tr.stats.endtime >= here - 0.5 * delta
                ):
                    ends[comp] = tr.stats.endtime
                elif tr.stats.starttime > here:
                    after.append(tr)
        if not ends:
            return None, False
        top = max(ends.values())
        live = [e for e in ends.values() if e >= top - self.stall_s]
        frontier = min(live)
        later = [tr for tr in after if tr.stats.starttime > top + 0.5 * delta]
        resumed = any(tr.stats.endtime >= tr.stats.starttime + self.reorder_s for tr in later)
        over = frontier >= lane.t1 - delta or (resumed and frontier == top)
        return frontier, over

    def _chunk(self, lane: _Lane, t_start: UTCDateTime, t_end: UTCDateTime) -> Any:
        """Return SeisBench's array of the lane's samples in [t_start, t_end] (one group)."""
        stream = Stream()
        for traces in lane.channels.values():
            for tr in traces:
                if tr.stats.endtime >= t_start and tr.stats.starttime <= t_end:
                    stream += tr.slice(t_start, t_end, nearest_sample=False)
        argdict = dict(self.argdict)
        groups = self.engine._groups(0, stream, argdict, copy=False)
        if not groups:
            return None
        return groups[0]

    def _windows(self, lane: _Lane) -> list[tuple[_Lane, _Segment, int, np.ndarray, Any]]:
        """Return the windows of ``lane`` whose samples have all arrived (and the tail window of
        a segment that ended); advance the lane's segments."""
        jobs: list[tuple[_Lane, _Segment, int, np.ndarray, Any]] = []
        if lane.done or not lane.channels or lane.sampling_rate == 0.0:
            return jobs
        delta = 1.0 / lane.sampling_rate
        if lane.segment is None:
            starts = [tr.stats.starttime for trs in lane.channels.values() for tr in trs]
            lane.segment = _Segment(min(starts))
        seg = lane.segment
        frontier, over = self._frontier(lane, seg)
        if frontier is None:
            return jobs
        n_arrived = int(round((frontier - seg.start) * lane.sampling_rate)) + 1
        k_last = (n_arrived - self.in_samples) // self.step_samples
        if k_last >= seg.next_k:
            t_a = seg.start + seg.next_k * self.step_samples * delta
            t_b = seg.start + (k_last * self.step_samples + self.in_samples - 1) * delta
            group = self._chunk(lane, t_a, t_b)
            if group is not None:
                for k in range(seg.next_k, k_last + 1):
                    o = (k - seg.next_k) * self.step_samples
                    window = group.data.data[..., o : o + self.in_samples]
                    if window.shape[-1] == self.in_samples:
                        jobs.append((lane, seg, k * self.step_samples, window, group))
            seg.next_k = k_last + 1
        if self.lookahead and not over and seg.next_k > 0:
            ahead = n_arrived - self.in_samples
            every = self.step_samples // 3
            last_grid = (seg.next_k - 1) * self.step_samples
            if ahead - last_grid >= every and ahead - seg.ahead_offset >= every:
                t_a = seg.start + ahead * delta
                group = self._chunk(lane, t_a, frontier)
                if group is not None and group.data.data.shape[-1] >= self.in_samples:
                    window = group.data.data[..., : self.in_samples]
                    jobs.append((lane, _Ahead(seg), ahead, window, group))
                    seg.ahead_offset = ahead
        if over:
            last_offset = (seg.next_k - 1) * self.step_samples
            if n_arrived >= self.in_samples and last_offset + self.in_samples < n_arrived:
                tail = n_arrived - self.in_samples
                t_a = seg.start + tail * delta
                group = self._chunk(lane, t_a, frontier)
                if group is not None and group.data.data.shape[-1] >= self.in_samples:
                    jobs.append((lane, seg, tail, group.data.data[..., : self.in_samples], group))
            seg.closed = True
        return jobs

    def _run(self, jobs: list) -> None:
        """Run the network on ``jobs`` in batches and stack each window into its segment."""
        import torch

        model, runtime = self.model, self.engine.runtime
        batch_size = max(1, int(self.params.batch_size))
        for begin in range(0, len(jobs), batch_size):
            chunk = jobs[begin : begin + batch_size]
            batch = torch.from_numpy(np.stack([w for _, _, _, w, _ in chunk]).astype(np.float32))
            if runtime.name == "torch":
                batch = batch.to(runtime.device)
            with torch.inference_mode():
                pre = model.annotate_batch_pre(batch, argdict=self.argdict)
                piggyback = None
                if isinstance(pre, tuple):
                    pre, piggyback = pre
                out = runtime(pre.contiguous())
                post = model.annotate_batch_post(out, piggyback=piggyback, argdict=self.argdict)
                pred = post.cpu().numpy()
            if pred.ndim == 2:
                pred = pred[..., np.newaxis]
            pred = np.ascontiguousarray(pred.transpose(0, 2, 1))
            has_nan = bool(np.isnan(pred).any())
            for (_lane, seg, offset, _, group), p in zip(chunk, pred, strict=True):
                if isinstance(seg, _Ahead):
                    seg.seg.ahead = (int(np.round(offset * group.factor)), p)
                else:
                    self._stack(seg, group, offset, p, has_nan)
            self.windows += len(chunk)

    def _stack(
        self, seg: _Segment, group: Any, offset: int, pred: np.ndarray, has_nan: bool
    ) -> None:
        """Add one window's prediction, as :meth:`quakelake.engine._Group.add` does."""
        factor = group.factor
        seg.factor = factor  # type: ignore[attr-defined]
        seg.pred_shift = group.pred_sample[0]  # type: ignore[attr-defined]
        seg.method = group.method  # type: ignore[attr-defined]
        start = int(np.round(offset * factor)) - seg.base
        if start < 0:  # a segment's last window over samples already final: those stand
            pred = pred[:, -start:]
            start = 0
        stop = start + pred.shape[1]
        if seg.acc is None:
            seg.acc = self._empty(group.method, pred.shape[0], stop)
            seg.count = np.zeros((pred.shape[0], stop), dtype=np.uint8)
        if stop > seg.acc.shape[1]:
            grow = max(stop - seg.acc.shape[1], seg.acc.shape[1])
            seg.acc = np.concatenate([seg.acc, self._empty(group.method, pred.shape[0], grow)], 1)
            seg.count = np.concatenate(
                [seg.count, np.zeros((pred.shape[0], grow), dtype=np.uint8)], 1
            )
        seg.filled = max(getattr(seg, "filled", 0), seg.base + stop)  # type: ignore[attr-defined]
        stack_window(seg.acc, seg.count, start, pred, group.method, has_nan)

    @staticmethod
    def _empty(method: str, channels: int, length: int) -> np.ndarray:
        if method == "max":
            return np.full((channels, length), np.nan, dtype=np.float32)
        return np.zeros((channels, length), dtype=np.float32)

    # ------------------------------------------------------------------ picks
    def _curve(self, seg: _Segment, lo: int, hi: int) -> np.ndarray:
        """Return the stacked curves of prediction samples [lo, hi) (NaN where nothing ran)."""
        acc = seg.acc[:, lo - seg.base : hi - seg.base]
        count = seg.count[:, lo - seg.base : hi - seg.base]
        if seg.method == "max":  # type: ignore[attr-defined]
            out = acc.copy()
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = acc / count
        out[count == 0] = np.nan
        return out

    @staticmethod
    def _ahead_end(seg: _Segment) -> int:
        return seg.ahead[0] + seg.ahead[1].shape[1] if seg.ahead is not None else 0

    def _provisional_curve(self, seg: _Segment, filled: int) -> np.ndarray:
        """Return the curves of the samples not final yet: the stacked ones, continued (where
        no grid window has run yet) by the latest look-ahead window's prediction."""
        end = max(filled, self._ahead_end(seg))
        curves = np.full((seg.acc.shape[0], end - seg.final_upto), np.nan, dtype=np.float32)
        if filled > seg.final_upto:
            curves[:, : filled - seg.final_upto] = self._curve(seg, seg.final_upto, filled)
        if seg.ahead is not None and self._ahead_end(seg) > filled:
            a0, pred = seg.ahead
            lo = max(a0, filled, seg.final_upto)
            part = pred[:, lo - a0 :]
            target = curves[:, lo - seg.final_upto : lo - seg.final_upto + part.shape[1]]
            np.copyto(target, part, where=np.isnan(target))
        return curves

    def _pick(self, lane: _Lane, seg: _Segment, trig: tuple[int, int, int, float], phase: str):
        from seisbench.util import Pick

        rate = lane.sampling_rate * seg.factor  # type: ignore[attr-defined]
        origin = seg.start + seg.pred_shift / lane.sampling_rate  # type: ignore[attr-defined]
        s0, s1, sp, value = trig
        return Pick(
            trace_id=lane.trace_id,
            start_time=origin + s0 / rate,
            end_time=origin + s1 / rate,
            peak_time=origin + sp / rate,
            peak_value=np.float32(value),
            phase=phase,
        )

    def _advance(self, lane: _Lane, seg: _Segment) -> tuple[list, list]:
        """Run the triggers over the samples that became final; return (final, provisional)."""
        if seg.acc is None:
            return [], []
        if not seg.triggers:
            thresholds = {
                "P": self.params.p_threshold,
                "S": self.params.s_threshold,
            }
            seg.triggers = [_Trigger(float(thresholds[ph])) for _, ph in self.phases]
        filled = seg.filled  # type: ignore[attr-defined]
        if seg.closed:
            upto = filled
        else:
            upto = min(int(np.round(seg.next_k * self.step_samples * seg.factor)), filled)  # type: ignore[attr-defined]
        final, provisional = [], []
        if upto > seg.final_upto:
            curves = self._curve(seg, seg.final_upto, upto)
            for (row, phase), trig in zip(self.phases, seg.triggers, strict=True):
                for t in trig.feed(curves[row], seg.final_upto):
                    final.append(self._pick(lane, seg, t, phase))
            seg.final_upto = upto
        if seg.closed:
            for (_, phase), trig in zip(self.phases, seg.triggers, strict=True):
                final.extend(self._pick(lane, seg, t, phase) for t in trig.close())
        elif max(filled, self._ahead_end(seg)) > seg.final_upto:
            curves = self._provisional_curve(seg, filled)
            for (row, phase), trig in zip(self.phases, seg.triggers, strict=True):
                probe = dataclasses.replace(trig)
                provisional.extend(
                    self._pick(lane, seg, t, phase) for t in probe.feed(curves[row], seg.final_upto)
                )
        # forget stacked samples no trigger needs any more
        keep = min([seg.final_upto] + [t.on for t in seg.triggers if t.in_run and t.on >= 0])
        drop = keep - seg.base
        if drop > 0 and not seg.closed:
            seg.acc = seg.acc[:, drop:]
            seg.count = seg.count[:, drop:]
            seg.base += drop
        return final, provisional

    def _trim_raw(self, lane: _Lane, seg: _Segment) -> None:
        """Drop raw samples no window of the segment needs any more (keep one window's worth)."""
        delta = 1.0 / lane.sampling_rate
        keep_from = seg.start + max(0, seg.next_k * self.step_samples - self.in_samples) * delta
        if seg.keep is not None and seg.keep > keep_from:
            # never back: after a restart the records come again from `keep` on (restore), and a
            # cycle before they arrive must not ask for samples no source delivers again
            keep_from = seg.keep
        for comp, traces in lane.channels.items():
            kept = []
            for tr in traces:
                if tr.stats.endtime < keep_from:
                    continue
                if tr.stats.starttime < keep_from:
                    tr = tr.slice(keep_from, None, nearest_sample=False)
                    tr.data = np.ascontiguousarray(tr.data)
                kept.append(tr)
            lane.channels[comp] = kept
        seg.keep = keep_from

    def step(self, finish: bool = False) -> StepResult:
        """Run every window whose samples have arrived; return the picks that became final and
        the provisional ones. ``finish``: the stream ended (close every segment)."""
        jobs = []
        for lane in self.lanes.values():
            if finish and lane.segment is not None:
                pass
            jobs.extend(self._windows(lane))
            if finish and lane.segment is not None and not lane.segment.closed:
                seg = lane.segment
                frontier, _ = self._frontier(lane, seg)
                if frontier is not None:
                    lane_t1 = lane.t1
                    lane.t1 = frontier  # the stream ends here: close like a day's end
                    jobs.extend(self._windows(lane))
                    lane.t1 = lane_t1
        jobs.sort(key=lambda j: (id(j[0]), j[2]))  # per segment in window order
        self._run(jobs)
        final: list[tuple[Any, _Lane]] = []
        provisional: list[tuple[Any, _Lane]] = []
        for lane in list(self.lanes.values()):
            seg = lane.segment
            if seg is None:
                continue
            f, p = self._advance(lane, seg)
            final.extend((pick, lane) for pick in f)
            provisional.extend((pick, lane) for pick in p)
            if seg.closed:
                self._next_segment(lane, seg)
            else:
                self._trim_raw(lane, seg)
        return StepResult(self._frame(final), self._frame(provisional), len(jobs))

    def _next_segment(self, lane: _Lane, seg: _Segment) -> None:
        """After a segment closed: start the next one at the first sample after it, or end the lane."""
        delta = 1.0 / lane.sampling_rate
        frontier, _ = self._frontier(lane, seg)
        end = frontier if frontier is not None else seg.start
        if end >= lane.t1 - delta:
            lane.done = True
            lane.channels.clear()
            lane.segment = None
            return
        later = [
            tr.stats.starttime
            for trs in lane.channels.values()
            for tr in trs
            if tr.stats.starttime > end
        ]
        for comp, traces in lane.channels.items():
            lane.channels[comp] = [tr for tr in traces if tr.stats.starttime > end]
        lane.segment = _Segment(min(later)) if later else None

    # ------------------------------------------------------------------ state
    def lane_states(self) -> dict[str, dict[str, Any]]:
        """Return where every lane stands (kept in the lake so a restart resumes exactly)."""
        out = {}
        for key, lane in self.lanes.items():
            state: dict[str, Any] = {
                "network": lane.network,
                "station": lane.station,
                "location": lane.location,
                "band": lane.band,
                "day": lane.day.isoformat(),
                "done": lane.done,
                "rate": lane.sampling_rate,
            }
            seg = lane.segment
            if seg is not None and seg.acc is not None:
                state.update(
                    start=str(seg.start),
                    next_k=seg.next_k,
                    final_upto=seg.final_upto,
                    factor=float(seg.factor),  # type: ignore[attr-defined]
                    triggers=[dataclasses.asdict(t) for t in seg.triggers],
                )
            elif seg is not None:
                state.update(start=str(seg.start), next_k=seg.next_k, final_upto=0)
            out[".".join([*key[:4], key[4].isoformat()])] = state
        return out

    def restore(self, states: dict[str, dict[str, Any]]) -> dict[str, UTCDateTime]:
        """Set the lanes back to ``states``; return, per instrument ``NET.STA.LOC.BAND``, the
        time from which the source must deliver the records again."""
        since: dict[str, UTCDateTime] = {}
        for state in states.values():
            day = dt.date.fromisoformat(state["day"])
            key = (state["network"], state["station"], state["location"], state["band"], day)
            t0 = UTCDateTime(day.year, day.month, day.day) - self.pad_s
            lane = _Lane(*key, t0, t0 + 86400.0 + 2 * self.pad_s)  # type: ignore[arg-type]
            lane.done = bool(state.get("done"))
            self.lanes[key] = lane
            inst = ".".join(key[:4])
            if lane.done or "start" not in state:
                continue
            start = UTCDateTime(state["start"])
            factor = float(state.get("factor", 1.0))
            final_upto = int(state.get("final_upto", 0))
            # the first window that reaches past the final samples: it and the later ones run again
            first = int(np.floor((final_upto / factor - self.in_samples) / self.step_samples)) + 1
            first = max(0, min(first, int(state["next_k"])))
            seg = _Segment(start, next_k=first, base=final_upto, final_upto=final_upto)
            seg.triggers = [_Trigger(**t) for t in state.get("triggers", [])]
            lane.segment = seg
            lane.sampling_rate = float(state["rate"])
            need = start + first * self.step_samples / lane.sampling_rate
            seg.keep = need
            since[inst] = min(since.get(inst, need), need)
        return since

    def _frame(self, picks: list[tuple[Any, _Lane]]) -> pd.DataFrame:
        """Return the picks of a cycle as one frame: each within its lane's day (the padding
        around a day is context, as in the batch path), framed once per band code (most cycles
        have a handful of picks over hundreds of lanes: no frame per lane)."""
        by_band: dict[str, list] = {}
        for pick, lane in picks:
            start = dt.datetime(lane.day.year, lane.day.month, lane.day.day)
            if start <= pick.peak_time.datetime < start + dt.timedelta(days=1):
                by_band.setdefault(lane.band, []).append(pick)
        frames = [
            picks_frame(mine, self.spec, {p.trace_id: band for p in mine})
            for band, mine in sorted(by_band.items())
        ]
        if not frames:
            return pd.DataFrame(columns=PICK_COLUMNS)
        out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return out.sort_values(["time", "station_id", "band", "phase"], ignore_index=True)

    def close(self) -> StepResult:
        """The stream ended: close every segment and return the remaining picks."""
        return self.step(finish=True)


def batch_equivalent_params(params: PickParams) -> PickParams:
    """Return ``params`` as the streaming picker uses them (no change today; kept for callers)."""
    return params
