"""A lake folder is self-contained: copied, moved, mounted elsewhere or backed up, it reads the
same, and maintenance on one lake never touches another's files (issue 21)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from cli_run import python_code

from quakelake.cli import main
from quakelake.lakehouse import Lake, extensions, stage_table, write_table
from quakelake.lakehouse import catalog as cat
from quakelake.lakehouse import maintenance as mt

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


def _ledger(run: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": run,
            "stage": "pick",
            "unit": [f"unit-{i}" for i in range(n)],
            "status": "done",
            "rows": 10,
            "finished": [T0 + pd.Timedelta(minutes=i) for i in range(n)],
        }
    )


def _fill(root: Path, compact: bool = True) -> None:
    """Three units, a ledger, one unit recomputed with new inputs, then compaction."""
    for i in range(3):
        day = f"2020-10-0{i % 2 + 1}"
        write_table(root, "picks", _picks(10, f"u{i}"), f"k{i}.fp1", {"day": day}, f"k{i}", "r1")
    Lake(root).commit(rows={"units": _ledger("r1")}, run_id="r1")
    write_table(root, "picks", _picks(4, "new", "r2"), "k0.fp2", {"day": "2020-10-01"}, "k0", "r2")
    Lake(root).commit(rows={"units": _ledger("r2", 1)}, run_id="r2")
    if compact:
        mt.compact(Lake(root))


def _rows(root: Path, catalog: str | None = None) -> dict[str, list]:
    lake = Lake(root, catalog)
    return {
        "picks": lake.query("SELECT pick_id, run_id, day FROM picks ORDER BY pick_id")
        .astype(str)
        .values.tolist(),
        "units": lake.query("SELECT run_id, unit, status FROM units ORDER BY ALL")
        .astype(str)
        .values.tolist(),
    }


def _old_layout(root: Path) -> None:
    """Start a lake the way the release before relative paths wrote it.

    Its catalog keeps DuckLake's schema folder ``main/`` and a first data file by absolute
    path; later commits then go on storing absolute paths (what ``lake migrate`` converts).
    """
    root.mkdir(parents=True)
    con = extensions.offline_connection()
    extensions.load(con, "ducklake", "sqlite_scanner")
    con.execute(f"ATTACH 'ducklake:sqlite:{root}/catalog.sqlite' AS lake (DATA_PATH '{root}/')")
    cat._ensure_tables(con)
    change = stage_table(root, "picks", _picks(10, "old"), "k9.fp1", {"day": "2020-10-03"}, "k9")
    con.execute(
        "CALL ducklake_add_data_files('lake', 'picks', ?, hive_partitioning => true)",
        [str(change.path)],
    )
    con.execute(
        "INSERT INTO lake.lake_files VALUES ('picks', ?, ?, ?, ?, 'r0', now())",
        [change.part, change.stem, change.key, str(change.path)],
    )
    con.close()


@pytest.mark.parametrize("compacted", [False, True])
def test_a_copied_lake_vacuumed_to_nothing_leaves_the_original_intact(compacted, tmp_path, capsys):
    root = tmp_path / "lake"
    _fill(root, compact=compacted)
    reference = _rows(root)
    first_run = Lake(root).query("SELECT pick_id FROM picks ORDER BY 1", as_of="r1")
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(root), str(backup)], check=True)
    assert _rows(backup) == reference
    vacuum = ["lake", "vacuum", "--lake", str(backup), "--expire-days", "0", "--grace-hours", "0"]
    assert main(vacuum) == 0
    assert main(["lake", "check", "--lake", str(root)]) == 0
    out = capsys.readouterr().out
    assert " 0 damaged" in out
    assert _rows(root) == reference
    # the original's time travel still reads the unit the second run replaced
    assert Lake(root).query("SELECT pick_id FROM picks ORDER BY 1", as_of="r1").equals(first_run)
    assert _rows(backup) == reference  # the copy lost only what no snapshot of its own reads
    # and it reads its own files: with the original out of the way it answers the same
    root.rename(tmp_path / "away")
    assert _rows(backup) == reference
    (tmp_path / "away").rename(root)
    # every path the catalogs hold is relative: nothing of one lake names the other's files
    for lake in (root, backup):
        files = Lake(lake).data_files(every=True)
        assert files["path_is_relative"].all()
        assert all(Path(f).is_relative_to(lake) for f in files["file"])


def test_a_moved_lake_reads_the_same(tmp_path, capsys):
    root = tmp_path / "lake"
    _fill(root, compact=False)  # the workers' files as they were committed
    reference = _rows(root)
    moved = tmp_path / "elsewhere" / "lake2"
    moved.parent.mkdir()
    shutil.move(root, moved)
    assert _rows(moved) == reference
    assert main(["sql", "--lake", str(moved), "SELECT count(*) AS n FROM picks"]) == 0
    assert capsys.readouterr().out.split()[1] == "24"
    assert main(["lake", "check", "--lake", str(moved)]) == 0


def test_one_postgresql_lake_reached_at_two_paths_reads_the_same(tmp_path, postgres):
    url = postgres.url("two_paths")
    first = tmp_path / "host-a" / "lake"
    Lake(first, url).commit(rows={"units": _ledger("r1")}, run_id="r1")  # records catalog.json
    for i in range(2):
        write_table(first, "picks", _picks(5, f"p{i}"), f"k{i}.fp", {"day": "2020-10-01"}, f"k{i}")
    reference = _rows(first, url)
    # the same folder as another host mounts it: another path (here a copy, the original gone)
    second = tmp_path / "host-b" / "mnt" / "lake"
    second.parent.mkdir(parents=True)
    shutil.copytree(first, second)
    shutil.rmtree(first)
    assert _rows(second, url) == reference


def test_vacuum_refuses_a_copy_of_an_old_lake_and_migrate_makes_it_self_contained(tmp_path, capsys):
    root = tmp_path / "lake"
    _old_layout(root)
    _fill(root)  # the old layout holds on: these commits store absolute paths too
    held = Lake(root).data_files(every=True)
    assert not held.loc[held["table_name"] == "picks", "path_is_relative"].all()
    reference = _rows(root)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)
    vacuum = ["lake", "vacuum", "--lake", str(copy), "--expire-days", "0", "--grace-hours", "0"]
    assert main(vacuum) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: vacuum:") and "outside its folder" in err
    assert "quakelake lake migrate" in err and err.count("\n") == 1
    assert main(["lake", "migrate", "--lake", str(copy)]) == 0
    assert "made relative" in capsys.readouterr().out
    assert main(vacuum) == 0
    for lake in (root, copy):
        capsys.readouterr()
        assert main(["lake", "check", "--lake", str(lake)]) == 0
        assert _rows(lake) == reference
    # the migrated copy moves and reads; the migration is done once
    shutil.move(copy, tmp_path / "moved")
    assert _rows(tmp_path / "moved") == reference
    assert main(["lake", "migrate", "--lake", str(tmp_path / "moved")]) == 0
    assert "is current" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["sqlite", "postgresql"])
def test_a_new_lake_keeps_no_absolute_path(how, tmp_path, request):
    url = request.getfixturevalue("postgres").url("fresh") if how == "postgresql" else None
    root = tmp_path / "lake"
    Lake(root, url).commit(rows={"units": _ledger("r0", 1)}, run_id="r0")
    write_table(root, "picks", _picks(3, "a"), "k.fp", {"day": "2020-10-01"}, "k")
    files = Lake(root, url).data_files(every=True)
    assert files["path_is_relative"].all()
    assert sorted(Lake(root, url).stems()["path"]) == [
        str(p.relative_to(root)) for p in sorted((root / "picks").rglob("*.parquet"))
    ]


def _all_rows(root: Path) -> dict[str, list]:
    lake = Lake(root)
    return {
        name: lake.query(f'SELECT * FROM "{name}" ORDER BY ALL').astype(str).values.tolist()
        for name in lake.tables()
    }


@pytest.mark.slow  # a few seconds: out of the fast lane (< 2 min)
@pytest.mark.parametrize("damage", ["zeroed", "zero-filled", "deleted"])
def test_a_lost_catalog_is_named_and_rebuilt_row_for_row(damage, tmp_path, capsys):
    root = tmp_path / "lake"
    _fill(root)  # compacted, one unit superseded: rows in DuckLake's files and the workers'
    write_table(root, "picks", _picks(3, "late", "r3"), "k1.fp2", {"day": "2020-10-02"}, "k1")
    reference = _all_rows(root)
    catalog = root / "catalog.sqlite"
    size = catalog.stat().st_size
    if damage == "deleted":
        catalog.unlink()
    else:
        catalog.write_bytes(b"" if damage == "zeroed" else b"\0" * size)
    mt.reset_connections(
        Lake(root)
    )  # what a new process sees (this one's catalog connection is closed)
    capsys.readouterr()
    assert main(["lake", "check", "--lake", str(root)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert f"quakelake lake rebuild --lake {root}" in err
    assert main(["sql", "--lake", str(root), "SELECT count(*) FROM picks"]) != 0
    assert "quakelake lake rebuild" in capsys.readouterr().err
    # nothing wrote over the damage (no new, empty lake was started in its place)
    assert (catalog.exists() and catalog.stat().st_size) == {"zeroed": 0, "deleted": False}.get(
        damage, size
    )
    assert main(["lake", "rebuild", "--lake", str(root)]) == 0
    assert "catalog rebuilt" in capsys.readouterr().out
    assert _all_rows(root) == reference
    assert main(["lake", "check", "--lake", str(root)]) == 0
    # the rebuilt lake goes on: resume sees the committed units, vacuum keeps every row
    assert sorted(Lake(root).stems("picks")["stem"]) == ["k0.fp2", "k1.fp2", "k2.fp1"]
    vacuum = ["lake", "vacuum", "--lake", str(root), "--expire-days", "0", "--grace-hours", "0"]
    assert main(vacuum) == 0
    assert _all_rows(root) == reference
    assert main(["lake", "rebuild", "--lake", str(root)]) == 2  # a healthy catalog stays
    assert "is healthy" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_count_over_damaged_files_fails_with_the_check_hint(damage, tmp_path, capsys):
    root = tmp_path / "lake"
    _fill(root, compact=False)
    files = Lake(root).files("picks")
    if damage == "truncated":
        files[0].write_bytes(files[0].read_bytes()[:-200])
    else:
        for path in files:
            path.unlink()
    capsys.readouterr()
    for sql in ("SELECT count(*) FROM picks", "SELECT max(time) FROM picks"):
        assert main(["sql", "--lake", str(root), sql]) != 0
        err = capsys.readouterr().err
        assert err.startswith("error:") and f"quakelake lake check --lake {root}" in err
    # the tables listing says which table it cannot count, and counts the others
    assert main(["tables", "--lake", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["picks", "?"], ["units", "4"]]
    # a table whose files are whole still answers
    assert main(["sql", "--lake", str(root), "SELECT count(*) FROM units"]) == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB filesystem of its own (tmpfs; mounting needs root, the test skips without)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_disk(mount: Path) -> Path:
    filler = mount / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 16384)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow  # a few seconds: out of the fast lane (< 2 min)
def test_a_full_disk_is_one_error_line_naming_it(small_disk, shared_data, capsys):
    lake = small_disk / "lake"
    ingv = shared_data / "ingv_quakeml_20210101"
    assert main(["import-catalog", str(ingv), "--name", "ingv", "--lake", str(lake)]) == 0
    before = Lake(lake).query("SELECT count(*) AS n FROM reference_picks")["n"][0]
    filler = _fill_disk(small_disk)
    capsys.readouterr()
    ogs = shared_data / "ogs_rsfvg_2024" / "manual"
    assert main(["import-catalog", str(ogs), "--name", "ogs", "--lake", str(lake)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: the disk is full: {small_disk}") and err.count("\n") == 1
    assert "every unit committed before is safe" in err and "unexpected" not in err
    filler.unlink()
    mt.reset_connections(Lake(lake))
    assert main(["lake", "check", "--lake", str(lake)]) == 0
    assert Lake(lake).query("SELECT count(*) AS n FROM reference_picks")["n"][0] == before


def test_a_catalog_url_that_failed_is_not_recorded(tmp_path, postgres, capsys):
    lake = tmp_path / "lake"
    good = postgres.url("retyped")
    wrong = good.rsplit(":", 1)[0] + ":1/retyped"  # nobody listens on port 1
    assert main(["lake", "history", "--lake", str(lake), "--catalog", wrong]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the catalog") and err.count("\n") == 1
    assert not (lake / "catalog.json").exists()
    # the user retypes the right URL: it is taken and recorded
    assert main(["lake", "history", "--lake", str(lake), "--catalog", good]) == 0
    assert json.loads((lake / "catalog.json").read_text()) == {"catalog": good}


def test_a_station_without_picks_leaves_no_file(tmp_path):
    # what the pick task commits for a station-day without picks: a file of no rows
    root = tmp_path / "lake"
    write_table(root, "picks", _picks(4, "a"), "k0.fp1", {"day": "2020-10-01"}, "k0", "r1")
    staged = stage_table(root, "picks", _picks(0, "b"), "k1.fp1", {"day": "2020-10-01"}, "k1")
    assert staged.path.exists()
    Lake(root).commit([staged], rows={"units": _ledger("r1", 1)}, run_id="r1")
    assert not staged.path.exists()  # nothing uncommitted is left for vacuum
    on_disk = sorted((root / "picks").rglob("*.parquet"))
    assert on_disk == Lake(root).files("picks") and len(on_disk) == 1
    # the unit is done: resume skips it, and a later file of rows replaces nothing wrongly
    assert sorted(Lake(root).stems("picks")["stem"]) == ["k0.fp1", "k1.fp1"]
    write_table(root, "picks", _picks(2, "c"), "k1.fp2", {"day": "2020-10-01"}, "k1", "r2")
    assert len(Lake(root).read("picks")) == 6
    assert main(["lake", "check", "--lake", str(root)]) == 0


def _stations(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"network": "XX", "station": [f"S{i:02d}" for i in range(n)], "latitude": 45.0}
    )


def test_a_lake_restored_from_its_backup_under_a_running_process_reads_the_backup(tmp_path):
    # a long-running process (the monitor, the event service, warm workers) keeps its catalog
    # connection; a lake put back from a `cp -a` backup at the same path is another catalog
    # file (ext4 may even give it the old inode number): the process must read and commit to
    # it, not through what it cached of the deleted catalog. Before, a table first written
    # after the backup was committed again with a column name map only the deleted catalog
    # held, and every other process failed on it ("Unknown name map id").
    root = tmp_path / "lake"
    _fill(root, compact=False)
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(root), str(backup)], check=True)
    reference = _rows(root)
    write_table(root, "picks", _picks(5, "late", "r3"), "k7.fp1", {"day": "2020-10-02"}, "k7", "r3")
    write_table(root, "stations", _stations(2), "st.1", {"source": "a"}, "st", "r3")
    assert len(_rows(root)["picks"]) == len(reference["picks"]) + 5
    shutil.rmtree(root)
    subprocess.run(["cp", "-a", str(backup), str(root)], check=True)
    assert _rows(root) == reference
    write_table(root, "stations", _stations(3), "st.2", {"source": "a"}, "st", "r4")
    assert len(Lake(root).query("SELECT * FROM stations")) == 3
    fresh = python_code(  # another process reads what this one committed
        "from quakelake.lakehouse import Lake\n"
        f"print(Lake({str(root)!r}).query('SELECT station FROM stations ORDER BY 1')"
        "['station'].tolist())"
    )
    assert fresh.returncode == 0, fresh.stderr[-1000:]
    assert fresh.stdout.strip() == "['S00', 'S01', 'S02']"
    assert _rows(backup) == reference  # the backup itself is untouched
