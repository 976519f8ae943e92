"""A read-only connection held open (the web service's reader) never stops a writer committing.

On a SQLite catalog a reader's open transaction holds a shared lock that no writer can commit
past ("database is locked" after every retry). The reader of ``quakelake serve`` keeps its
connection for the life of the service, idle between requests, while commands commit.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pick_rows import reference_pick_rows

from quakelake.lakehouse import Lake, write_table
from quakelake.lakehouse.published import LakeReader

SALTON = "phasenet_saltonsea_20201001"
PICKS_CSV = "DERIVED_phasenet_ref_picks_first180s.csv"


def _picks(shared_data: Path, prefix: str) -> pd.DataFrame:
    csv_file = shared_data / SALTON / PICKS_CSV
    ids = [f"{prefix}{i}" for i in range(len(pd.read_csv(csv_file)))]
    return reference_pick_rows(csv_file, ids, weights=prefix)


@pytest.mark.timeout(120)  # before the fix the commit waited for ever
def test_a_commit_goes_through_while_a_read_only_reader_is_open(shared_data, tmp_path):
    root = tmp_path / "lake"
    first = _picks(shared_data, "a")
    write_table(root, "picks", first, "a", {"day": "2020-10-01"}, run_id="a")
    reader = LakeReader(Lake(root))
    held = Lake(root).connect(read_only=True)
    try:
        before = reader.snapshot()  # both connections opened and idle from here
        assert held.execute("SELECT count(*) FROM picks").fetchall() == [(len(first),)]
        second = _picks(shared_data, "b")
        write_table(root, "picks", second, "b", {"day": "2020-10-01"}, run_id="b")
        assert reader.snapshot() == before + 1
        n = reader._run("SELECT count(*) AS n FROM lake.picks")["n"].iloc[0]
        assert n == len(first) + len(second)
    finally:
        held.close()
        reader.close()
