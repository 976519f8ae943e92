"""``quakelake sql`` cannot write the lake or read the host's files (issue 21 item 2, issue 26 item 4).

Each escape runs the real command in its own process on a lake holding the real Salton Sea
reference picks: one ``error:`` line, exit 2, the lake's bytes unchanged and no file written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_run import quakelake as _quakelake

from quakelake.errors import EXIT_BAD_INPUT

SALTON = "phasenet_saltonsea_20201001"
PICKS_CSV = "DERIVED_phasenet_ref_picks_first180s.csv"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _count(lake: Path) -> int:
    out = _quakelake(
        "sql", "--lake", str(lake), "--format", "csv", "SELECT count(*) AS n FROM reference_picks"
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.splitlines()[1])


@pytest.fixture(scope="module")
def lake(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sqlro") / "lake"
    out = _quakelake(
        "import-catalog", str(shared_data / SALTON / PICKS_CSV), "--name", "pn", "--lake", str(root)
    )
    assert out.returncode == 0, out.stderr
    return root


def _escapes(lake: Path, outside: Path) -> list[tuple[str, str]]:
    catalog = lake / "catalog.sqlite"
    return [
        ("SELECT * FROM read_csv('/etc/passwd')", "reads the tables of lake"),
        (f"SELECT * FROM glob('{outside.parent}/*')", "reads the tables of lake"),
        (
            f"ATTACH 'ducklake:sqlite:{catalog}' AS w (DATA_PATH '{lake}/'); "
            "INSERT INTO w.reference_picks (pick_id) SELECT pick_id FROM w.reference_picks",
            "exactly one statement",
        ),
        (f"ATTACH 'ducklake:sqlite:{catalog}' AS w", "sql is read-only: ATTACH"),
        ("INSERT INTO lake.reference_picks (pick_id) VALUES ('x')", "sql is read-only: INSERT"),
        ("DELETE FROM lake.reference_picks", "sql is read-only: DELETE"),
        ("UPDATE lake.reference_picks SET phase = 'S'", "sql is read-only: UPDATE"),
        ("DROP TABLE lake.reference_picks", "sql is read-only: DROP"),
        ("CREATE TABLE lake.x AS SELECT 1", "sql is read-only: CREATE"),
        ("ALTER TABLE lake.reference_picks ADD COLUMN x INT", "sql is read-only: ALTER"),
        (f"COPY (SELECT * FROM reference_picks) TO '{outside}'", "sql is read-only: COPY"),
        (f"COPY (SELECT 1) TO '{lake}/stray.csv'", "sql is read-only: COPY"),
        (f"EXPORT DATABASE '{outside.parent / 'export'}'", "sql is read-only: EXPORT"),
        ("INSTALL httpfs", "sql is read-only: INSTALL"),
        ("LOAD httpfs", "sql is read-only: LOAD"),
        ("SET enable_external_access = true", "sql is read-only: SET"),
        ("DETACH lake", "sql is read-only: DETACH"),
        ("CALL ducklake_expire_snapshots('lake', older_than => now())", "sql is read-only: CALL"),
        (
            "SELECT * FROM ducklake_expire_snapshots('lake', older_than => now())",
            "ducklake_expire_snapshots",
        ),
        (f"SELECT * FROM sqlite_attach('{catalog}')", "sqlite_attach"),
        ("SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", "query"),
        ("PRAGMA enable_profiling", "sql is read-only"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
    ]


@pytest.mark.slow  # 23 subprocesses (~20 s): in `make test`, not in the fast lane
def test_sql_cannot_write_the_lake_or_read_the_host(lake, tmp_path):
    outside = tmp_path / "out.csv"
    before = _count(lake)
    assert before == 184
    digest = _digest(lake)
    failures = []
    for query, expected in _escapes(lake, outside):
        out = _quakelake("sql", "--lake", str(lake), query)
        lines = out.stderr.strip().splitlines()
        ok = (
            out.returncode == EXIT_BAD_INPUT
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and expected in lines[0]
            and "root:" not in out.stdout
        )
        if not ok:
            failures.append((query, out.returncode, out.stderr.strip()[-300:]))
    assert failures == []
    assert not outside.exists() and not (tmp_path / "export").exists()
    assert _digest(lake) == digest
    assert _count(lake) == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", 'error: Parser Error: syntax error at or near "SELEC"'),
        ("SELECT nosuch FROM reference_picks", 'error: Binder Error: Referenced column "nosuch"'),
        ("SELECT * FROM nosuch", "error: Catalog Error: Table with name nosuch does not exist!"),
    ],
)
def test_sql_mistakes_are_bad_input_with_duckdbs_message(lake, query, message):
    out = _quakelake("sql", "--lake", str(lake), query)
    assert out.returncode == EXIT_BAD_INPUT, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert "unexpected" not in out.stderr


@pytest.mark.slow  # a few seconds: out of the fast lane (< 2 min)
def test_sql_still_reads_the_lake_its_history_and_parameters(lake):
    out = _quakelake(
        "sql",
        "--lake",
        str(lake),
        "--format",
        "csv",
        "--as-of",
        "2100-01-01",
        "SELECT phase, count(*) AS n FROM reference_picks WHERE catalog = ? GROUP BY ALL ORDER BY 1",
        "--param",
        "pn",
    )
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert rows[0] == "phase,n" and sum(int(r.split(",")[1]) for r in rows[1:]) == 184
    for query in ("DESCRIBE reference_picks", "SHOW TABLES", "SUMMARIZE reference_picks"):
        assert _quakelake("sql", "--lake", str(lake), query).returncode == 0, query


def test_sql_on_a_postgresql_catalogued_lake_is_read_only(postgres, shared_data, tmp_path):
    root = tmp_path / "lake"
    url = postgres.url("sqlro")
    args = ["--lake", str(root), "--catalog", url]
    out = _quakelake("import-catalog", str(shared_data / SALTON / PICKS_CSV), "--name", "pn", *args)
    assert out.returncode == 0, out.stderr
    count = _quakelake("sql", *args, "--format", "csv", "SELECT count(*) AS n FROM reference_picks")
    assert count.returncode == 0, count.stderr
    assert count.stdout.splitlines()[1] == "184"
    for query in (
        "SELECT * FROM postgres_execute('__ducklake_metadata_lake', 'DELETE FROM ducklake_snapshot')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "DELETE FROM lake.reference_picks",
    ):
        out = _quakelake("sql", *args, query)
        assert out.returncode == EXIT_BAD_INPUT and out.stderr.startswith("error: "), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    again = _quakelake("sql", *args, "--format", "csv", "SELECT count(*) AS n FROM reference_picks")
    assert again.stdout == count.stdout
