"""Reference catalogue readers and writers: QuakeML, OGS/HYPO71 bulletins, CSV.

Every reader returns a :class:`Catalog`: two DataFrames shaped like the lake's
``reference_events`` and ``reference_picks`` tables. :func:`read_catalog` takes files or
folders, detects each file's format from its extension and content, and merges what several
files of one bulletin say about the same events (e.g. the OGS ``.txt`` catalogue gives the
hypocentres, the ``.dat`` phase file the picks). :func:`import_catalog` writes a catalogue
into the lake under its name, so several references can coexist.

One module per format family: :mod:`~quakelake.catalogs.quakeml`,
:mod:`~quakelake.catalogs.hypo71` (OGS ``.dat``/``.pun``/``.hpc``), :mod:`~quakelake.catalogs.ogs`
(the OGS ``.txt`` catalogue) and :mod:`~quakelake.catalogs.csv`; the common model lives in
:mod:`~quakelake.catalogs.model`. This package is the public face: import from
``quakelake.catalogs``.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from quakelake.catalogs.csv import CSV_ALIASES, csv_times, read_csv_catalog
from quakelake.catalogs.hypo71 import read_hypo71_phases, read_hypo71_printout, read_hypo71_summary
from quakelake.catalogs.model import (
    EVENT_COLUMNS,
    PICK_COLUMNS,
    Catalog,
    CatalogError,
    empty_events,
    empty_picks,
    lake_frame,
)
from quakelake.catalogs.ogs import ogs_event_type, read_ogs_catalogue
from quakelake.catalogs.quakeml import read_quakeml
from quakelake.errors import name_problem
from quakelake.ids import station_id

__all__ = [
    "EVENT_COLUMNS",
    "FORMATS",
    "PICK_COLUMNS",
    "READERS",
    "Catalog",
    "CatalogError",
    "catalog_files",
    "csv_times",
    "detect_format",
    "empty_events",
    "empty_picks",
    "import_catalog",
    "lake_frame",
    "ogs_event_type",
    "read_catalog",
    "read_csv_catalog",
    "read_hypo71_phases",
    "read_hypo71_printout",
    "read_hypo71_summary",
    "read_ogs_catalogue",
    "read_quakeml",
    "station_id",
]

FORMATS = ("quakeml", "ogs_txt", "hypo71_summary", "hypo71_printout", "hypo71_phase", "csv")
# Which file wins when several files describe the same event or pick (lower wins): the OGS
# catalogue carries ML and the place, the summary Md; the phase file holds the picks as read.
_PRIORITY = {
    "quakeml": 0,
    "csv": 0,
    "ogs_txt": 1,
    "hypo71_summary": 2,
    "hypo71_phase": 2,
    "hypo71_printout": 3,
}


READERS: dict[str, Callable[[Path], Catalog]] = {
    "quakeml": read_quakeml,
    "ogs_txt": read_ogs_catalogue,
    "hypo71_summary": read_hypo71_summary,
    "hypo71_printout": read_hypo71_printout,
    "hypo71_phase": read_hypo71_phases,
    "csv": read_csv_catalog,
}


# --------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str | None:
    """Return the catalogue format of ``path`` (one of :data:`FORMATS`) or None.

    The extension decides where it is unambiguous; otherwise the first line does.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".qml", ".quakeml"):
        return "quakeml"
    if suffix == ".xml":  # StationXML shares the extension: look for the QuakeML namespace
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return "quakeml" if "quakeml" in fh.read(4096).lower() else None
        except OSError:
            return None
    if suffix == ".pun":
        return "hypo71_summary"
    if suffix == ".hpc":
        return "hypo71_printout"
    if suffix == ".dat":
        return "hypo71_phase"
    if suffix == ".csv":
        # only CSVs with a time column are catalogues (not e.g. PhaseNet file lists)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = fh.readline().lower()
        except OSError:
            return None
        names = {c.strip() for c in header.split(",")}
        return "csv" if names & set(CSV_ALIASES["time"]) else None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2048)
    except OSError:
        return None
    first = head.lstrip().split("\n", 1)[0]
    if head.lstrip().startswith("<") and "quakeml" in head.lower():
        return "quakeml"
    if first.lower().startswith("index;event-id"):
        return "ogs_txt"
    if "," in first and "time" in first.lower():
        return "csv"
    if re.match(r"^\s*DATE\s+ORIGIN", first):
        return "hypo71_summary"
    if re.match(r"^[A-Z0-9 ]{4}[eiEI? ][Pp]", first):
        return "hypo71_phase"
    return None


def catalog_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Return ``(file, format)`` for every catalogue file in ``paths`` (folders searched).

    Files named explicitly must have a known format; in folders, files of unknown format
    (README, PROVENANCE.txt, Parquet ...) are skipped.

    Raises:
        CatalogError: when a path does not exist, a named file has no known format, or nothing
            readable is found.
    """
    out: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CatalogError(f"catalogue path {path} does not exist; pass files or folders")
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.name.startswith(".") or child.name.upper().startswith("PROVENANCE"):
                    continue
                fmt = detect_format(child)
                if fmt:
                    out.append((child, fmt))
        else:
            fmt = detect_format(path)
            if fmt is None and path.suffix.lower() == ".csv":
                read_csv_catalog(path)  # raises, naming the missing time column
            if fmt is None and path.suffix.lower() == ".xml":
                raise CatalogError(
                    f"{path} is not QuakeML (no QuakeML namespace in its first 4 kB); pass QuakeML "
                    "event files here (station metadata goes to -F/--file)"
                )
            if fmt is None:
                raise CatalogError(
                    f"cannot tell the catalogue format of {path}: use one of the extensions "
                    ".xml/.qml (QuakeML), .dat (HYPO71 phases), .pun (HYPO71 summary), "
                    ".hpc (HYPO71 printout), .txt (OGS catalogue), .csv"
                )
            out.append((path, fmt))
    if not out:
        raise CatalogError(f"no catalogue files found in {', '.join(str(p) for p in paths)}")
    return out


# --------------------------------------------------------------------------- readers


def read_catalog(paths: str | Path | Sequence[str | Path]) -> Catalog:
    """Read catalogue files and folders into one :class:`Catalog`.

    When several files describe the same event id (or pick id), the richer format wins
    (OGS ``.txt`` > ``.pun`` > ``.hpc`` for events, ``.dat`` > ``.hpc`` for picks). Events
    without a pick count get the number of their picks.

    Args:
        paths: files or folders; formats are detected per file.

    Example:
        >>> cat = read_catalog("../shared/data/ogs_rsfvg_2024/manual")  # doctest: +SKIP
        >>> len(cat.events), len(cat.picks)                             # doctest: +SKIP
        (1858, 26931)
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    parts: list[tuple[int, Catalog]] = []
    for path, fmt in catalog_files(paths):
        parts.append((_PRIORITY[fmt], READERS[fmt](path)))
    parts.sort(key=lambda item: item[0])
    events = [c.events for _, c in parts if len(c.events)]
    picks = [c.picks for _, c in parts if len(c.picks)]
    ev = pd.concat(events, ignore_index=True) if events else empty_events()
    pk = pd.concat(picks, ignore_index=True) if picks else empty_picks()
    ev = ev.drop_duplicates("event_id", keep="first")
    pk = pk.drop_duplicates("pick_id", keep="first")
    if len(pk) and len(ev):
        counts = pk.groupby("event_id").size()
        missing = ev["n_picks"].isna()
        ev.loc[missing, "n_picks"] = ev.loc[missing, "event_id"].map(counts).fillna(0)
    ev = ev.sort_values(["time", "event_id"], kind="stable")
    pk = pk.sort_values(["time", "pick_id"], kind="stable")
    return Catalog(lake_frame(ev, EVENT_COLUMNS), lake_frame(pk, PICK_COLUMNS))


# --------------------------------------------------------------------------- lake import


def import_catalog(
    lake: str | Path, paths: str | Path | Sequence[str | Path], name: str
) -> dict[str, object]:
    """Read catalogue files/folders and write them into the lake as reference ``name``.

    The rows land in ``reference_events/catalog=<name>/`` and ``reference_picks/catalog=<name>/``
    in files named after the resolved input paths: importing the same files again replaces
    them instead of adding duplicates.

    Args:
        lake: lake root folder.
        paths: catalogue files or folders (formats detected per file).
        name: the reference's name (e.g. ``ogs``), used to select it when analysing.

    Returns:
        ``{"name", "events", "picks", "files", "paths"}``: counts and the lake files written.
    """
    from quakelake.lakehouse import write_table
    from quakelake.lakehouse.lineage import fingerprint

    problem = name_problem(name, dots=True)
    if problem:
        raise CatalogError(f"--name: the catalogue name {problem}")
    if isinstance(paths, str | Path):
        paths = [paths]
    files = catalog_files(paths)
    cat = read_catalog(paths)
    stem = "import-" + fingerprint(sorted(str(p.resolve()) for p, _ in files))
    written = []
    if len(cat.events):
        written.append(
            write_table(Path(lake), "reference_events", cat.events, stem, {"catalog": name})
        )
    if len(cat.picks):
        written.append(
            write_table(Path(lake), "reference_picks", cat.picks, stem, {"catalog": name})
        )
    return {
        "name": name,
        "events": len(cat.events),
        "picks": len(cat.picks),
        "files": len(files),
        "paths": [str(p) for p in written],
    }


# Further public names, imported on first use (:mod:`quakelake.exports`).
from quakelake.exports import lazy_exports  # noqa: E402

_EXPORTS = {
    "ExportError": "export",
    "catalogue_tables": "export",
    "export_run": "export",
    "full_channel": "export",
    "select_catalogue": "export",
    "to_catalog": "export",
    "write_associated": "export",
    "write_classified": "export",
    "write_nonlinloc": "export",
    "write_quakeml": "export",
}
__all__ += sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
