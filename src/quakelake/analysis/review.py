"""Station-day review: waveforms, model probabilities and picks, one figure per instrument-day.

What ``--interactive`` shows, one window after another. Plain Python: no Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from matplotlib.figure import Figure

from quakelake.analysis.plotting import plot_station_day
from quakelake.archive import waveforms
from quakelake.lakehouse import Lake, queries
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.picking import models as picking


def station_day_views(
    lake: Path,
    directory: Path,
    window: TimeWindow,
    selection: StationSelection,
    pick: PickParams,
    reference: str | None = None,
) -> Iterator[Figure]:
    """Yield one figure per instrument-day and model x weights: traces, probabilities, picks.

    Figures are made lazily, so a viewer can show each one while the next is not computed yet.

    Args:
        lake: lake whose `picks` (and `reference_picks` of ``reference``) are drawn.
        directory: the waveform archive the picks were made on.
        window: UTC days to show.
        selection: channels to show.
        pick: models, weights and batch size used to recompute the probabilities.
        reference: name of an imported reference catalogue whose picks are drawn dashed.
    """
    db = Lake(lake)
    units = waveforms.station_days(
        waveforms.scan_archive(Path(directory), selection).index, window, selection
    )
    specs, _ = picking.available_specs(pick, picking.resolve_device(pick.device))
    for spec in specs:
        model = picking.load_model(spec.model, spec.weights, picking.resolve_device(pick.device))
        for unit in units:
            instruments, _ = waveforms.read_station_day(unit, selection=selection)
            for inst in instruments:
                annotations = model.annotate(inst.stream, batch_size=pick.batch_size)
                picks = (
                    queries.picks(
                        db,
                        first_day=unit.day,
                        last_day=unit.day,
                        models=[spec.model],
                        weights=[spec.weights],
                        network=inst.network,
                        station=inst.station,
                        location=inst.location,
                        band=inst.band,
                    )
                    if db.has_files("picks")
                    else None
                )
                ref = None
                if reference and db.has_files("reference_picks"):
                    ref = queries.reference_picks(db, reference, station=inst.station, day=unit.day)
                title = f"{inst.network}.{inst.station}.{inst.location}.{inst.band} {unit.day} {spec.label}"
                yield plot_station_day(inst.stream, annotations, picks, ref, title=title)
