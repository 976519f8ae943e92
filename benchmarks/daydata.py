"""Full 24-h station-days built from real recordings, for the picking benchmarks.

The Mesetas 2019 sample holds 6 h of 100 Hz three-component data per station (7 HH stations).
Each built station-day is that station's real 6 h recording laid end to end four times with
shifted start times (plus the pick flow's 60 s padding on both sides), written as STEIM2
miniSEED like the source, one file per channel and day. Later days rotate the copy offsets so two
days of one station are not sample-identical.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MESETAS = ROOT.parent / "shared" / "data" / "seismonitor_mesetas_2019" / "mseed"
FIRST_DAY = dt.date(2020, 1, 1)


def build_day_archive(
    into: Path,
    n_days: int,
    source: Path = MESETAS,
    stations: int | None = None,
    first_day: dt.date = FIRST_DAY,
    pad_s: float = 60.0,
) -> Path:
    """Write ``n_days`` UTC days of every 100 Hz station of ``source`` into ``into``; return it.

    Args:
        into: output folder (created).
        n_days: consecutive days per station.
        source: folder of the real 6-h recordings.
        stations: keep only the first ``stations`` stations (sorted by code).
        first_day: the first UTC day written.
        pad_s: seconds written before and after each day.
    """
    import obspy

    into.mkdir(parents=True, exist_ok=True)
    st = obspy.read(str(source / "*.mseed"))
    st = st.select(sampling_rate=100.0)
    st.merge(method=1)
    codes = sorted({tr.stats.station for tr in st})
    if stations is not None:
        codes = codes[:stations]
    for code in codes:
        sub = st.select(station=code)
        n = min(tr.stats.npts for tr in sub)
        for k in range(n_days):
            day = first_day + dt.timedelta(days=k)
            t0 = obspy.UTCDateTime(day.isoformat()) - pad_s
            need = int(round((86400 + 2 * pad_s) * 100)) + 1
            for tr in sub:
                data = tr.data[:n]
                shift = (k * n // 7) % n  # rotate so consecutive days differ
                data = np.roll(data, -shift)
                reps = need // n + 1
                out = obspy.Trace(
                    np.tile(data, reps)[:need].astype(np.int32),
                    header={
                        "network": tr.stats.network,
                        "station": tr.stats.station,
                        "location": tr.stats.location,
                        "channel": tr.stats.channel,
                        "sampling_rate": 100.0,
                        "starttime": t0,
                    },
                )
                name = f"{tr.id}.{day.isoformat()}.mseed"
                out.write(str(into / name), format="MSEED", encoding="STEIM2", reclen=4096)
    return into
