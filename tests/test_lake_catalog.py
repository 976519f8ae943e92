"""The lakehouse under its DuckLake catalog: only committed files count, snapshots, compaction,
schema evolution, damaged files, migration, concurrent writers (SQLite and real PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quakelake.cli import main
from quakelake.config import PickParams, StationSelection
from quakelake.lakehouse import Lake, stem_of, to_arrow, write_table
from quakelake.lakehouse import maintenance as mt
from quakelake.lakehouse.schema import TABLES, TableSpec

PHASENET = PickParams(models=["PhaseNet"], weights=["original"])
T0 = pd.Timestamp("2020-10-01T00:00:00", tz="UTC")


def _picks(n: int, tag: str, run: str = "r1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pick_id": [f"{tag}-{i}" for i in range(n)],
            "run_id": run,
            "station_id": "CI.BOM..HH",
            "phase": "P",
            "time": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
            "probability": 0.5,
        }
    )


def _fill(root: Path, units: int = 3, run: str = "r1") -> None:
    for i in range(units):
        day = f"2020-10-0{i % 2 + 1}"
        write_table(
            root, "picks", _picks(10, f"u{i}", run), f"k{i}.fp1", {"day": day}, f"k{i}", run
        )


def _count(root: Path, **kw) -> int:
    return int(Lake(root).query("SELECT count(*) AS n FROM picks", **kw)["n"][0])


def test_only_committed_files_are_read_and_sql_cannot_write(lake_root, capsys):
    _fill(lake_root)
    committed = Lake(lake_root).files("picks")
    folder = committed[0].parent
    shutil.copy(committed[0], folder / "backup-copy.parquet")  # a stray copy
    (folder / "empty.parquet").write_bytes(b"")  # a 0-byte file
    (folder / "cut.parquet").write_bytes(committed[0].read_bytes()[:50])  # a truncated one
    assert _count(lake_root) == 30
    assert Lake(lake_root).query("SELECT count(DISTINCT pick_id) AS n FROM picks")["n"][0] == 30
    # SQL is read-only: a COPY (even into the lake folder) and an INSERT are refused
    out = folder / "copied.parquet"
    assert main(["sql", "--lake", str(lake_root), f"COPY (SELECT * FROM picks) TO '{out}'"]) == 2
    assert not out.exists() and _count(lake_root) == 30
    capsys.readouterr()
    code = main(["sql", "--lake", str(lake_root), "INSERT INTO lake.picks (pick_id) VALUES ('x')"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error:") and "read-only" in err.lower()
    assert _count(lake_root) == 30


def test_lake_path_with_glob_characters_reads_only_itself(tmp_path):
    odd = tmp_path / "lake[1]*x"
    sibling = tmp_path / "lake1_x"
    _fill(odd, units=3)
    _fill(sibling, units=2)
    assert _count(odd) == 30 and _count(sibling) == 20
    assert main(["tables", "--lake", str(odd)]) == 0


def test_a_lake_written_through_a_relative_path_reads_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _fill(Path("lake"), units=2)  # as `quakelake pick --lake lake` run in folder a
    monkeypatch.chdir(tmp_path / "b")
    assert _count(tmp_path / "a" / "lake") == 20
    assert mt.check(Lake(tmp_path / "a" / "lake")).damaged == []


def test_snapshots_show_the_lake_before_a_replacement(lake_root):
    _fill(lake_root, run="r1")
    before = pd.Timestamp.now(tz="UTC")
    # run r2 recomputes unit k0 with other inputs: its 10 rows become 3
    write_table(
        lake_root, "picks", _picks(3, "new", "r2"), "k0.fp2", {"day": "2020-10-01"}, "k0", "r2"
    )
    lake = Lake(lake_root)
    assert _count(lake_root) == 23
    assert _count(lake_root, as_of="r1") == 30
    assert _count(lake_root, as_of=before.isoformat()) == 30
    old = lake.query("SELECT DISTINCT run_id FROM picks WHERE pick_id LIKE 'u0-%'", as_of="r1")
    assert old["run_id"].tolist() == ["r1"]
    history = lake.history()
    assert history["run_id"].tolist()[-4:] == ["r1", "r1", "r1", "r2"]
    with pytest.raises(Exception, match="--as-of"):
        lake.query("SELECT 1", as_of="no-such-run")
    diff = mt.compare(lake, "r1")  # the analyzer's view of the change: before r2 and now
    assert diff[["tbl", "phase", "before", "after", "change"]].values.tolist() == [
        ["picks", "P", 30, 23, -7]
    ]


def test_damaged_committed_file_is_named_and_repaired(lake_root, capsys):
    _fill(lake_root)
    write_table(
        lake_root, "events", pd.DataFrame({"event_id": ["e1"]}), "ev.fp", {"day": "2020-10-01"}
    )
    victim = Lake(lake_root).files("picks")[0]
    victim.write_bytes(victim.read_bytes()[:100])
    assert Lake(lake_root).query("SELECT count(*) AS n FROM events")["n"][0] == 1  # others read
    with pytest.raises(Exception, match="lake check"):
        Lake(lake_root).query("SELECT * FROM picks")
    code = main(["lake", "check", "--lake", str(lake_root)])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert f"damaged picks file {victim}" in out, err
    assert main(["lake", "check", "--repair", "--lake", str(lake_root)]) == 0
    assert _count(lake_root) == 20
    # its logical file left the manifest: the next run of its unit computes it again
    assert sorted(Lake(lake_root).stems("picks")["stem"]) == sorted(
        {"k0.fp1", "k1.fp1", "k2.fp1"} - {stem_of(victim)}
    )


@pytest.mark.slow
def test_compaction_merges_files_and_vacuum_removes_orphans(lake_root):
    _fill(lake_root, units=6)
    write_table(
        lake_root, "picks", _picks(4, "new", "r2"), "k0.fp2", {"day": "2020-10-01"}, "k0", "r2"
    )
    orphan = lake_root / "picks" / "day=2020-10-01" / "k9.fp1~dead.parquet"
    pq.write_table(to_arrow("picks", _picks(2, "dead"), "k9.fp1"), orphan)
    tmp = lake_root / "picks" / "day=2020-10-01" / ".k8.parquet.123.tmp"
    tmp.write_bytes(b"half")
    stems = sorted(Lake(lake_root).stems("picks")["stem"])
    active = mt.active_files(Lake(lake_root))
    small = set(active.loc[active["table_name"] == "picks", "file"])
    counts = mt.compact(Lake(lake_root))
    assert counts["picks"] == (6, 1)  # six units (the replaced one's old file ended)
    assert _count(lake_root) == 54 and sorted(Lake(lake_root).stems("picks")["stem"]) == stems
    assert _count(lake_root, as_of="r1") == 60  # time travel reads through the merged file
    removed = mt.vacuum(Lake(lake_root), grace_s=0)
    assert removed["orphans"] == [str(orphan)] and removed["temporary"] == [str(tmp)]
    # merged-away files go; the replaced unit's old file stays while a snapshot reads it
    replaced = {p for p in small if stem_of(p) == "k0.fp1"}
    assert not orphan.exists() and small - replaced <= set(removed["expired"])
    assert all(Path(p).exists() for p in replaced)
    assert _count(lake_root) == 54 and _count(lake_root, as_of="r1") == 60
    # a replacement after compaction removes the unit's rows from the merged file
    write_table(
        lake_root, "picks", _picks(1, "newer", "r3"), "k1.fp2", {"day": "2020-10-02"}, "k1", "r3"
    )
    assert _count(lake_root) == 45


def test_schema_evolution_adds_a_column_without_rewriting(lake_root, monkeypatch):
    from quakelake.lakehouse import catalog

    _fill(lake_root, units=2)
    old_files = Lake(lake_root).files("picks")
    spec = TABLES["picks"]
    wider = TableSpec(
        spec.name,
        spec.schema.append(pa.field("amplitude_m", pa.float64())),
        spec.partition_by,
        spec.description,
    )
    monkeypatch.setitem(TABLES, "picks", wider)
    monkeypatch.setattr(catalog, "_CONNECTIONS", {})  # a new process: opens and evolves the table
    new = _picks(2, "amp").assign(amplitude_m=[1e-6, 2e-6])
    write_table(lake_root, "picks", new, "k5.fp1", {"day": "2020-10-03"}, "k5")
    both = Lake(lake_root).query(
        "SELECT day, count(*) AS n, count(amplitude_m) AS with_amp FROM picks GROUP BY day ORDER BY day"
    )
    assert both["n"].tolist() == [10, 10, 2] and both["with_amp"].tolist() == [0, 0, 2]
    assert all(p in Lake(lake_root).files("picks") for p in old_files)  # not rewritten


def _legacy_lake(root: Path) -> None:
    """A lake of the layout before the catalog: bare hive files, no catalog."""
    for i in range(3):
        folder = root / "picks" / f"day=2020-10-0{i + 1}"
        folder.mkdir(parents=True)
        pq.write_table(
            to_arrow("picks", _picks(5, f"old{i}")), folder / f"M.W.CI.S{i}.--.HH.fp{i}.parquet"
        )
    (root / "runs").mkdir()
    run = {"run_id": "old-run", "command": "pick", "status": "completed", "started": T0}
    pq.write_table(
        to_arrow("runs", pd.DataFrame([run])), root / "runs" / "old-run__completed.parquet"
    )


def test_migrate_brings_an_old_lake_under_the_catalog(lake_root, capsys):
    _legacy_lake(lake_root)
    assert main(["sql", "--lake", str(lake_root), "SELECT 1"]) == 2
    assert "lake migrate" in capsys.readouterr().err
    assert main(["lake", "migrate", "--lake", str(lake_root)]) == 0
    assert _count(lake_root) == 15
    assert Lake(lake_root).query("SELECT run_id, status FROM runs").values.tolist() == [
        ["old-run", "completed"]
    ]
    assert sorted(Lake(lake_root).stems("picks")["stem"]) == [
        f"M.W.CI.S{i}.--.HH.fp{i}" for i in range(3)
    ]
    assert not list(lake_root.rglob("M.W.CI.S0.--.HH.fp0.parquet"))  # replaced by its copy


def test_extensions_load_from_packages_and_nothing_is_downloaded(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    script = textwrap.dedent(
        f"""
        import pandas as pd
        from quakelake.lakehouse import Lake, write_table
        frame = pd.DataFrame({{"pick_id": ["a"], "phase": ["P"]}})
        write_table({str(tmp_path / "lake")!r}, "picks", frame, "k.fp", {{"day": "2020-10-01"}})
        con = Lake({str(tmp_path / "lake")!r}).connect()
        print(con.execute("SELECT count(*) FROM picks").fetchone()[0])
        loaded = con.execute(
            "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded"
        ).fetchall()
        print(sorted(name for name, _ in loaded if name in ("ducklake", "sqlite_scanner")))
        """
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "http_proxy": "http://127.0.0.1:9",  # any download would fail, not hang
        "https_proxy": "http://127.0.0.1:9",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1", "['ducklake', 'sqlite_scanner']"]
    assert not (home / ".duckdb").exists()  # DuckDB's extension folder: nothing installed


_RACER = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    from quakelake.lakehouse import Lake, stage_table
    root, catalog, who = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    lake = Lake(root, catalog=catalog)
    t0 = pd.Timestamp("2020-10-01", tz="UTC")
    taken = 0
    for i in range(25):
        frame = pd.DataFrame({"pick_id": [f"u{i}-{k}" for k in range(4)], "run_id": who,
                              "time": [t0] * 4, "phase": "P"})
        change = stage_table(root, "picks", frame, f"u{i}.fp", {"day": "2020-10-01"}, f"u{i}")
        taken += len(lake.commit([change], run_id=who, replace=False))
    print(taken)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_concurrent_writers_commit_each_unit_once(kind, tmp_path, request):
    root = tmp_path / "lake"
    catalog = ""
    if kind == "postgresql":
        catalog = request.getfixturevalue("postgres").url("race")
    # nobody created the catalog: both racers create it at once (a loser must attach again)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(root), catalog, who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("A", "B")
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    taken = [int(o[0].strip()) for o in outs]
    assert sum(taken) == 25  # every unit committed once, by one of them
    lake = Lake(root)
    frame = lake.query("SELECT pick_id, run_id FROM picks")
    assert len(frame) == 100 and frame["pick_id"].nunique() == 100
    assert sorted(lake.stems("picks")["stem"]) == sorted(f"u{i}.fp" for i in range(25))
    # the losers' files were deleted: every data file on disk is committed
    on_disk = sorted((root / "picks").rglob("*.parquet"))
    assert on_disk == lake.files("picks")
    # both racers created the catalog: every path it holds is relative to the lake folder
    assert lake.data_files(every=True)["path_is_relative"].all()


def _pick(archive: Path, lake: Path, stations: list[str], env: dict, catalog: str = ""):
    cmd = [sys.executable, "-m", "quakelake.cli", "pick", "-d", str(archive), "--lake", str(lake)]
    cmd += ["-S", *stations, "-M", "PhaseNet", "-W", "original", "--silent", "--workers", "1"]
    if catalog:
        cmd += ["--catalog", catalog]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_pick_runs_on_one_lake(kind, salton, weights_cache, prefect_server, tmp_path, request):
    from prefect.settings import PREFECT_API_URL

    from quakelake.flows.pick import pick_phases

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    catalog = request.getfixturevalue("postgres").url("picks") if kind == "postgresql" else ""
    shared = tmp_path / "shared"
    runs = [
        _pick(salton / "mseed", shared, ["BOM", "COA", "CRR"], env, catalog),
        _pick(salton / "mseed", shared, ["COA", "CRR", "DRE"], env, catalog),
    ]
    outs = [p.communicate(timeout=900) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [o[1][-2000:] for o in outs]
    clean = tmp_path / "clean"
    pick_phases(
        salton / "mseed",
        clean,
        selection=StationSelection(stations=["BOM", "COA", "CRR", "DRE"]),
        pick=PHASENET,
    )
    cols = ["pick_id", "station_id", "phase", "time", "probability"]
    a = Lake(shared).read("picks")[cols].sort_values("pick_id").reset_index(drop=True)
    b = Lake(clean).read("picks")[cols].sort_values("pick_id").reset_index(drop=True)
    assert a["pick_id"].is_unique and a.equals(b)
    ledger = Lake(shared).query("SELECT unit, status FROM units WHERE stage = 'pick'")
    done = ledger[ledger["status"] == "done"]
    assert sorted(done["unit"]) == sorted(set(ledger["unit"]))  # each unit done exactly once
    assert done["unit"].is_unique and len(done) == 4
    assert sorted((shared / "picks").rglob("*.parquet")) == Lake(shared).files("picks")
    if kind == "postgresql":
        assert json.loads((shared / "catalog.json").read_text())["catalog"] == catalog
        assert not (shared / "catalog.sqlite").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_compaction_keeps_resume_and_force_replaces(
    salton, weights_cache, prefect_server, lake_root
):
    from quakelake.flows.pick import pick_phases

    sel = StationSelection(stations=["BOM", "COA", "CRR"])
    first = pick_phases(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    n = _count(lake_root)
    assert first["done"] == 3
    assert main(["lake", "compact", "--lake", str(lake_root)]) == 0
    assert len(Lake(lake_root).files("picks")) == 1
    again = pick_phases(salton / "mseed", lake_root, selection=sel, pick=PHASENET)
    assert again["skipped"] == 3 and again["done"] == 0 and _count(lake_root) == n
    forced = pick_phases(salton / "mseed", lake_root, selection=sel, pick=PHASENET, force=True)
    assert forced["done"] == 3
    picks = Lake(lake_root).read("picks")
    assert len(picks) == n and picks["pick_id"].is_unique
    assert set(picks["run_id"]) == {forced["run_id"]}
    # the lake as it was before the --force rerun: the first run's picks
    old = Lake(lake_root).query("SELECT DISTINCT run_id FROM picks", as_of=again["run_id"])
    assert old["run_id"].tolist() == [first["run_id"]]
