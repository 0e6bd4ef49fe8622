"""Opening the DuckDB file: UTC sessions, polite waiting on another process's lock, migrations."""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.config import SQL_DIR
from pipeline.errors import Unavailable, UserError

MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class DatabaseLocked(Unavailable):
    """Another process held the file for longer than we were willing to wait."""


class DatabaseUnusable(UserError):
    """The file cannot be opened at all: not a DuckDB file, a folder we may not write, ..."""


class MigrationError(UserError):
    """A migration failed or was edited after release: the database and the code disagree."""


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    wait_s: float = 60.0,
    on_wait: Callable[[str], None] | None = _say_waiting,
) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting up to ``wait_s`` while another process holds its lock.

    DuckDB allows one writing process and refuses at once (even read-only opens) while it runs,
    so we retry with backoff instead of failing an ingest because an analyst has the file open.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"no database at {path}: build it with `media-timing demo` or an import first"
        )
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = ("a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError))
                      else exc.strerror)
            raise DatabaseUnusable(f"cannot create the folder for {path}: {reason} "
                                   "(set MEDIA_TIMING_DB or --db to put it elsewhere)") from None
    deadline = time.monotonic() + wait_s
    delay = 0.05
    told = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise DatabaseUnusable(f"cannot open {path} as a DuckDB database: {exc}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseLocked(
                    f"{path} is locked by another process (waited {wait_s:.0f} s): {exc}. "
                    "Close the other DuckDB session or raise MEDIA_TIMING_LOCK_WAIT_S."
                ) from exc
            if on_wait and not told:
                holder = re.search(r"held in (.+?)\)", str(exc))
                who = f" ({holder.group(1)})" if holder else ""
                on_wait(f"waiting for another process{who} to release {path} ...")
                told = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)
    # Naive times would otherwise be read in the OS zone; we only ever pass aware UTC values.
    con.execute("SET TimeZone = 'UTC'")
    return con


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[int, Path]]:
    found = []
    for f in sorted(sql_dir.glob("*.sql")):
        m = MIGRATION_NAME.match(f.name)
        if not m:
            raise MigrationError(f"{f}: migration files are named NNN_name.sql")
        found.append((int(m.group(1)), f))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number in {sql_dir}")
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migrate(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply numbered migrations not yet applied, then (re)create the analyst views.

    A migration, once applied, must never change: its checksum is recorded and compared.
    Returns the names of the migrations applied now.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,"
        " applied_utc TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = {
        v: (name, sha)
        for v, name, sha in con.execute(
            "SELECT version, name, sha256 FROM schema_migrations"
        ).fetchall()
    }
    done = []
    for version, path in migration_files(sql_dir):
        sha = _sha256(path)
        if version in applied:
            if applied[version][1] != sha:
                raise MigrationError(
                    f"{path.name} changed after it was applied to this database; "
                    "add a new numbered migration instead of editing a released one"
                )
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (?, ?, ?)",
                [version, path.name, sha],
            )
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"migration {path.name} failed: {exc}") from exc
        done.append(path.name)
    create_views(con, sql_dir / "views", force=bool(done))
    return done


def create_views(con: duckdb.DuckDBPyConnection, views_dir: Path, *, force: bool = False) -> None:
    """Views and macros are derived, so they are replaced whenever their files change or a
    migration ran (files in name order). Unchanged, they are left: every writer's open runs this."""
    files = sorted(views_dir.glob("*.sql"))
    texts = [f.read_text() for f in files]
    digest = hashlib.sha256("\0".join(f.name + "\0" + t for f, t in zip(files, texts)).encode()).hexdigest()
    con.execute("CREATE TABLE IF NOT EXISTS schema_views (sha256 VARCHAR NOT NULL)")
    if not force and query_one(con, "SELECT 1 FROM schema_views WHERE sha256 = ?", [digest]):
        return
    for f, text in zip(files, texts):
        try:
            con.execute(text)
        except duckdb.Error as exc:
            raise MigrationError(f"view file {f.name} failed: {exc}") from exc
    con.execute("DELETE FROM schema_views")
    con.execute("INSERT INTO schema_views VALUES (?)", [digest])


def query_one(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    """The first row, with the result fully consumed.

    DuckDB 2.0 keeps a result open after ``fetchone()`` and then refuses ``register()`` and other
    work on the connection ("unfinished result from execute()"), so never leave one open.
    """
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None


@contextmanager
def open_db(
    path: Path | str, *, read_only: bool = False, wait_s: float = 60.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection; writers also bring the schema up to date."""
    con = connect(path, read_only=read_only, wait_s=wait_s)
    try:
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a failure anywhere leaves the database as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
