"""The database: migrations apply once and never silently change; another process's lock is
waited for, within a bound."""

import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.store.database import DatabaseLocked, MigrationError, connect, migrate, query_one


def test_migrations_apply_once_and_are_recorded(db_path):
    con = connect(db_path)
    first = migrate(con)
    assert first and first[0] == "001_core.sql"
    assert migrate(con) == []
    names = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
    assert names == first
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert {"sources", "fetches", "items", "events", "analysis_runs", "results"} <= tables
    con.close()


def test_a_released_migration_that_changed_is_refused(db_path, tmp_path):
    sql = tmp_path / "sql"
    (sql / "views").mkdir(parents=True)
    (sql / "001_one.sql").write_text("CREATE TABLE a (x INTEGER);")
    con = connect(db_path)
    migrate(con, sql)
    (sql / "001_one.sql").write_text("CREATE TABLE a (x INTEGER, y INTEGER);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(con, sql)
    con.close()


def test_a_failing_migration_leaves_nothing_behind(db_path, tmp_path):
    sql = tmp_path / "sql"
    (sql / "views").mkdir(parents=True)
    (sql / "001_bad.sql").write_text("CREATE TABLE half (x INTEGER); SELECT * FROM nowhere;")
    con = connect(db_path)
    with pytest.raises(MigrationError, match="001_bad.sql failed"):
        migrate(con, sql)
    assert query_one(con, "SELECT count(*) FROM schema_migrations")[0] == 0
    assert "half" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    con.close()


def test_sessions_are_utc_whatever_the_machine_zone(db_path):
    con = connect(db_path)
    assert query_one(con, "SELECT current_setting('TimeZone')")[0] == "UTC"
    con.close()


def _hold_lock(path, seconds):
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_writer_waits_for_another_process_to_let_go(db_path):
    holder = _hold_lock(db_path, 1.5)
    messages = []
    started = time.monotonic()
    con = connect(db_path, wait_s=30, on_wait=messages.append)
    waited = time.monotonic() - started
    con.close()
    holder.wait()
    assert waited > 0.5
    assert messages and "waiting for another process" in messages[0]


def test_waiting_has_a_bound_and_a_clear_message(db_path):
    holder = _hold_lock(db_path, 5)
    try:
        with pytest.raises(DatabaseLocked, match="locked by another process.*MEDIA_TIMING_LOCK_WAIT_S"):
            connect(db_path, wait_s=0.5, on_wait=None)
        with pytest.raises(DatabaseLocked):
            connect(db_path, read_only=True, wait_s=0.3, on_wait=None)
    finally:
        holder.kill()
        holder.wait()


def test_read_only_on_a_missing_file_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="media-timing demo"):
        connect(tmp_path / "nope.duckdb", read_only=True)


def test_other_duckdb_errors_are_not_mistaken_for_locks(tmp_path):
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_text("this is not a database")
    import time

    from pipeline.store.database import DatabaseUnusable

    started = time.monotonic()
    with pytest.raises(DatabaseUnusable, match="not a valid DuckDB database"):
        connect(bad, wait_s=5)
    assert time.monotonic() - started < 2  # refused at once, not waited on as if locked


def test_views_are_recreated_when_their_files_change_and_only_then(db_path, tmp_path):
    sql = tmp_path / "sql"
    (sql / "views").mkdir(parents=True)
    (sql / "001_one.sql").write_text("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1), (2);")
    view = sql / "views" / "010_v.sql"
    view.write_text("CREATE OR REPLACE VIEW v AS SELECT count(*) AS n FROM a;")
    con = connect(db_path)
    migrate(con, sql)
    assert query_one(con, "SELECT n FROM v") == (2,)
    con.execute("CREATE OR REPLACE VIEW v AS SELECT 'analyst' AS n")  # not from the files
    migrate(con, sql)  # files unchanged: left as they are
    assert query_one(con, "SELECT n FROM v") == ("analyst",)
    view.write_text("CREATE OR REPLACE VIEW v AS SELECT sum(x) AS n FROM a;")
    migrate(con, sql)
    assert query_one(con, "SELECT n FROM v") == (3,)
    con.close()
