"""Cut the committed test fixtures (tests/data/) from the real data in ../shared (run once, by hand).

    python tests/data/make_fixtures.py [SHARED]

Every folder it writes gets a PROVENANCE.txt naming the source, the cut and the licence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import obspy
import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared"
DATA = SHARED / "data"

# The SCSN M2.43 event at 2020-10-01T00:02:21.07 and its six nearest stations (6-33 km).
SALTON_STATIONS = ["WMD", "RXH", "IMP", "ERR", "SWS", "BOM"]
START = obspy.UTCDateTime("2020-10-01T00:02:00")
END = obspy.UTCDateTime("2020-10-01T00:03:00")
OGS_EVENTS = 5


def salton() -> None:
    src = DATA / "phasenet_saltonsea_20201001"
    out = HERE / "saltonsea"
    (out / "mseed").mkdir(parents=True, exist_ok=True)
    for sta in SALTON_STATIONS:
        path = src / "mseed" / f"CI.{sta}.2020-10-01T00:00.mseed"
        st = obspy.read(str(path))
        encoding = st[0].stats.mseed.encoding
        reclen = st[0].stats.mseed.record_length
        st.trim(START, END - 0.01)  # 6000 samples per channel, the original samples unchanged
        st.write(
            str(out / "mseed" / f"CI.{sta}.2020-10-01T00:02.mseed"),
            format="MSEED",
            encoding=encoding,
            reclen=reclen,
        )
    inv = obspy.read_inventory(str(src / "stations.xml"))
    kept = obspy.Inventory(networks=[], source=inv.source)
    for sta in SALTON_STATIONS:
        kept += inv.select(network="CI", station=sta)
    kept.write(str(out / "stations.xml"), format="STATIONXML")
    picks = pd.read_csv(src / "DERIVED_phasenet_ref_picks_first180s.csv")
    t = pd.to_datetime(picks["time"], format="ISO8601")
    keep = (
        picks["station_id"].str.split(".").str[1].isin(SALTON_STATIONS)
        & (t >= pd.Timestamp(START.datetime))
        & (t < pd.Timestamp(END.datetime))
    )
    picks[keep].to_csv(out / "DERIVED_phasenet_ref_picks.csv", index=False)


def ogs() -> None:
    src = DATA / "ogs_rsfvg_2024" / "manual"
    out = HERE / "ogs_rsfvg_2024"
    out.mkdir(exist_ok=True)
    lines = (src / "RSFVG-2024.dat").read_text().splitlines(keepends=True)
    kept, events = [], 0
    for line in lines:
        kept.append(line)
        if line[:17].strip() == "" and line.strip():  # the card closing an event
            events += 1
            if events == OGS_EVENTS:
                break
    (out / "RSFVG-2024-head.dat").write_text("".join(kept))
    for suffix in ("pun", "txt"):  # one header line, one line per event
        head = (src / f"RSFVG-2024.{suffix}").read_text().splitlines(keepends=True)
        (out / f"RSFVG-2024-head.{suffix}").write_text("".join(head[: 1 + OGS_EVENTS]))
    hpc, events = [], 0
    for line in (src / "RSFVG-2024.hpc").read_text().splitlines(keepends=True):
        if line.startswith("      1") and line[6:7] == "1":  # an event header: 6 blanks + date
            events += 1
            if events > OGS_EVENTS:
                break
        hpc.append(line)
    (out / "RSFVG-2024-head.hpc").write_text("".join(hpc))


# Files the tests can read unchanged (the INGV QuakeML, SCSN events, PhaseNetLight weights) are
# read from ../shared, never copied here.


if __name__ == "__main__":
    salton()
    ogs()
