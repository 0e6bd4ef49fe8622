"""Items first seen in an archive: the capture or batch that held them bounds when they appeared.

Both archive adapters (``wayback``, ``gdelt``) build their item batches here and store them
through the one item writer, so the first-seen interval, the flag on a claimed time later than
the sighting and the tightening by an earlier range are the same for every archive.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from pipeline.sources import batches, parse_feed
from pipeline.sources.parse_types import RawEntry
from pipeline.store import items as store


def sighted_items(entries: list[RawEntry], base_urls: list[str], *, source_id: int, seen_lo: datetime | None,
                  seen_hi: datetime, provenance: str) -> pd.DataFrame:
    """The entries as items first seen in (seen_lo, seen_hi], one row per dedup key."""
    f = parse_feed.items_frame(entries, base_urls, pd.Series([seen_hi] * len(entries)))
    f.insert(0, "source_id", source_id)
    f.insert(1, "dedup_key", batches.dedup_keys(f))
    # items_frame flags a time more than ten minutes after the fetch as 'future'; for a sighting
    # that is a claimed time later than the capture or batch that already held the item.
    f["time_flags"] = [list(fl) + (["after_first_seen"] if "future" in fl else []) for fl in f["time_flags"]]
    f["first_seen_lo_utc"] = pd.Series([seen_lo] * len(f), dtype="datetime64[us, UTC]")
    f["provenance"] = provenance
    f["_order"] = range(1, len(f) + 1)
    return f.drop_duplicates("dedup_key")


def add_flag(frame: pd.DataFrame, flag: str) -> pd.DataFrame:
    frame["time_flags"] = [list(fl) + [flag] for fl in frame["time_flags"]]
    return frame


def store_sighted(con, frame: pd.DataFrame) -> int:
    """New items through the one writer; an item already stored from a later sighting (an
    earlier range backfilled afterwards) gets the earlier, tighter interval. Returns how many
    are new."""
    con.register("mt_sighted_frame", frame)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE mt_sighted AS SELECT * FROM mt_sighted_frame")
    finally:
        con.unregister("mt_sighted_frame")
    try:
        written = store.write_items(con, "mt_sighted")
        con.execute("""UPDATE items i SET first_seen_utc = c.first_seen_utc, first_seen_lo_utc = c.first_seen_lo_utc,
                              provenance = c.provenance
                       FROM mt_sighted c
                       WHERE i.source_id = c.source_id AND i.dedup_key = c.dedup_key
                         AND i.first_seen_utc > c.first_seen_utc""")
    finally:
        con.execute("DROP TABLE mt_sighted")
    return written.new
