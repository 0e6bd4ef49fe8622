"""Items of release-role feeds (a leak site's feed, a government press page) become events.

The event's time is the feed's own published time, kept with its raw string; its interval is
the precision the string had. Items without a usable time (none, no zone, in the future) are
left out and counted: a release we can't place in time can't be tested.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from pipeline.store import items as store


def events_from_release_items(con: duckdb.DuckDBPyConnection) -> dict:
    items = con.execute(
        """SELECT item_id, source, title, url, published_utc, published_raw,
                  coalesce(time_precision_s, 1) AS precision_s, time_usable AS usable
           FROM v_items WHERE role = 'release' ORDER BY item_id"""
    ).df()
    usable = items[items["usable"].fillna(False).astype(bool)]
    ts = usable["published_utc"].dt.tz_convert("UTC")
    frame = pd.DataFrame({
        "event_id": "feed-" + usable["item_id"].astype(str),
        "kind": "leak_release",
        "actor": usable["source"],
        "title": usable["title"].fillna("(untitled release)"),
        "ts_utc": ts,
        "earliest_utc": ts,
        "latest_utc": ts + pd.to_timedelta(usable["precision_s"].astype("int64"), unit="s"),
        "ts_raw": usable["published_raw"],
        "precision_minutes": (usable["precision_s"] // 60).astype("int64"),
        "source_url": usable["url"],
        "source_quote": None,
        "confidence": "medium",
        "notes": "From the release feed '" + usable["source"] + "': the time is the feed's own published time.",
        "catalog": "feed:" + usable["source"],
        "catalog_line": pd.Series(pd.NA, index=usable.index, dtype="Int64"),
        "imported_utc": datetime.now(UTC),
    })
    new, updated = store.upsert_events(con, frame)
    return {"release_items": len(items), "usable": len(usable), "new_events": new, "updated_events": updated}
