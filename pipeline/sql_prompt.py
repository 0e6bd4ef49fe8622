"""A read-only SQL prompt over the database, for users without a DuckDB 2.0 shell."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import duckdb

from pipeline.store.database import connect

BANNER = """media-timing SQL (read-only) on {path}
Tables: sources, fetches, items, events, imports, analysis_runs, results (and more: SHOW TABLES;)
Views: v_items, v_events, v_items_hourly, v_imports, v_latest_results; macro release_neighbours(window_minutes := 120)
End a statement with ';'. Quit with .quit or Ctrl-D."""


MAX_ROWS = 500


def show(con: duckdb.DuckDBPyConnection, query: str) -> None:
    rel = con.sql(query)
    if rel is None:  # a statement without a result
        return
    width = shutil.get_terminal_size((160, 40)).columns
    rel.show(max_rows=MAX_ROWS, max_width=width)
    sys.stdout.flush()


def run_one(path: Path, query: str, wait_s: float) -> int:
    con = connect(path, read_only=True, wait_s=wait_s)
    try:
        show(con, query)
        return 0
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        con.close()


def prompt(path: Path, wait_s: float) -> int:
    con = connect(path, read_only=True, wait_s=wait_s)
    interactive = sys.stdin.isatty()
    if interactive:
        print(BANNER.format(path=path))
    buf: list[str] = []
    try:
        while True:
            try:
                line = input("sql> " if not buf else "...> ") if interactive else sys.stdin.readline()
            except EOFError:
                break
            if not interactive and line == "":
                break
            if not buf and line.strip() in (".quit", ".exit", "\\q"):
                break
            buf.append(line)
            text = "\n".join(buf).strip()
            if text.endswith(";"):
                buf = []
                try:
                    show(con, text)
                except duckdb.Error as exc:
                    print(f"error: {exc}", file=sys.stderr)
        return 0
    finally:
        con.close()
