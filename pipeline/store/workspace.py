"""Where a media-timing installation keeps things: the settings, the database, staging, reports.

Every command and every DAG task works through one ``Workspace``: it opens the database for
reading or for writing (waiting politely for another process's lock, migrating on write), and
names the folders outputs go to, so no caller repeats how.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from pipeline.config import Settings, load_settings
from pipeline.store.database import connect, migrate, migration_files, open_db


@dataclass(frozen=True)
class Workspace:
    settings: Settings

    @classmethod
    def from_environment(cls, db: Path | str | None = None) -> Workspace:
        settings = load_settings()
        if db:
            settings = replace(settings, db_path=Path(db))
        return cls(settings)

    @property
    def db_path(self) -> Path:
        return self.settings.db_path

    @property
    def reports_dir(self) -> Path:
        return self.settings.data_dir / "reports"

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived writing connection, schema brought up to date."""
        with open_db(self.db_path, wait_s=self.settings.lock_wait_s) as con:
            yield con

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; a database written by an older version is migrated first
        (a read-only connection cannot), and a missing one is a clear error."""
        con = connect(self.db_path, read_only=True, wait_s=self.settings.lock_wait_s)
        try:
            if _behind(con):
                con.close()
                with self.write():
                    pass
                con = connect(self.db_path, read_only=True, wait_s=self.settings.lock_wait_s)
            yield con
        finally:
            con.close()

    @contextmanager
    def ensure(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-only, creating an empty database first if there is none (a fresh install)."""
        if not self.db_path.exists():
            with self.write():
                pass
        with self.read() as con:
            yield con


def _behind(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        (applied,) = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0]
    except duckdb.CatalogException:
        return True
    return applied < max(v for v, _ in migration_files())


def migrate_now(ws: Workspace) -> list[str]:
    con = connect(ws.db_path, wait_s=ws.settings.lock_wait_s)
    try:
        return migrate(con)
    finally:
        con.close()
