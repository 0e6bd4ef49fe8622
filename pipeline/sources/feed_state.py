"""Each feed's polling state (sql/013 feed_state), kept by the merge so that planning a poll
reads one row per feed rather than the whole fetch log.

The fetch log stays the record. A batch whose fetches all come after the feed's last attempt
advances the state from the batch alone; any other (a batch merged out of time order, a feed
re-enabled) has its state derived again from the log, for that feed only.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from pipeline.store.database import SQL_DIR

_ADVANCE = (SQL_DIR / "queries" / "feed_state_advance.sql").read_text()


def advance(con: duckdb.DuckDBPyConnection, batch_fetches: str) -> None:
    """Fold a merged batch's fetch rows (a relation over `fetches` columns) into feed_state,
    inside the caller's transaction."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE mt_state_batch AS SELECT * FROM {batch_fetches}")
    try:
        late = [r[0] for r in con.execute(
            """SELECT b.source_id FROM mt_state_batch b JOIN feed_state st USING (source_id)
               GROUP BY b.source_id, st.last_attempt_utc HAVING min(b.started_utc) <= st.last_attempt_utc"""
        ).fetchall()]
        con.execute(_ADVANCE)
        if late:
            rederive(con, late)
    finally:
        con.execute("DROP TABLE mt_state_batch")


def rederive(con: duckdb.DuckDBPyConnection, source_ids: Iterable[int] | None = None) -> None:
    """Derive the state of these feeds (every feed if None) from the whole fetch log."""
    ids = None if source_ids is None else sorted(set(source_ids))
    if ids == []:
        return
    if ids is None:
        con.execute("DELETE FROM feed_state")
        con.execute("INSERT INTO feed_state SELECT * FROM feed_state_from_log(NULL)")
    else:
        con.execute("DELETE FROM feed_state WHERE list_contains(?, source_id)", [ids])
        con.execute("INSERT INTO feed_state SELECT * FROM feed_state_from_log(?)", [ids])
