"""The one item writer (store/items.py): stored items are found by a narrow hash of their key
(sql/011), but a row is "seen before" only if its full key matches, and every row of a batch is
mapped to its stored item."""

import random
import shutil

import pytest

from pipeline.store import items as store
from pipeline.store.database import SQL_DIR, connect, migrate

COLUMNS = ", ".join(f"NULL AS {c}" for c in store.ITEM_COLUMNS
                    if c not in ("source_id", "dedup_key", "time_flags", "first_seen_utc", "provenance"))


def stage(con, rows: list[tuple[int, str]]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE batch (_order BIGINT, source_id INTEGER, dedup_key VARCHAR)")
    con.executemany("INSERT INTO batch VALUES (?, ?, ?)", [(i + 1, s, k) for i, (s, k) in enumerate(rows)])
    con.execute(f"""CREATE OR REPLACE TEMP VIEW staged AS
                    SELECT _order, source_id, dedup_key, {COLUMNS}, []::VARCHAR[] AS time_flags,
                           now() AS first_seen_utc, 'test' AS provenance FROM batch""")


def stored(con) -> list[tuple[int, str]]:
    return sorted(con.execute("SELECT source_id, dedup_key FROM items").fetchall())


def test_random_batches_store_each_key_once_and_map_every_row(con):
    rng = random.Random(7)
    everything: set[tuple[int, str]] = set()
    for _ in range(12):
        rows = [(rng.randint(1, 4), f"guid:{rng.randint(1, 60)}") for _ in range(rng.randint(0, 40))]
        stage(con, rows)
        planned = store.plan_items(con, "staged")
        new = store.store_planned(con, "staged", item_ids=True)
        assert new == planned.new == len(set(rows) - everything)
        everything |= set(rows)
        # every staged row points at the stored item with its own key
        mapped = con.execute("""SELECT b.source_id, b.dedup_key, i.source_id, i.dedup_key
                                FROM batch b JOIN mt_item_ids m USING (_order) JOIN items i USING (item_id)""").fetchall()
        assert len(mapped) == len(rows)
        assert all((a, b) == (c, d) for a, b, c, d in mapped)
        con.execute("DROP TABLE mt_item_ids")
        assert stored(con) == sorted(everything)
    (ids, distinct) = con.execute("SELECT count(*), count(DISTINCT item_id) FROM items").fetchone()
    assert ids == distinct
    assert con.execute("SELECT count(*) FROM items WHERE key_hash IS NULL "
                       "OR key_hash <> md5_number_lower(source_id::VARCHAR || ':' || dedup_key)").fetchone() == (0,)


def test_a_hash_collision_is_not_taken_for_the_same_item(con):
    stage(con, [(1, "guid:a")])
    store.write_items(con, "staged")
    # make the stored item's hash that of another key: a collision, as MD5's 64 bits may one day give
    con.execute("UPDATE items SET key_hash = md5_number_lower('1:guid:b')")
    stage(con, [(1, "guid:b"), (1, "guid:b")])
    written = store.write_items(con, "staged")
    assert (written.new, written.repeated) == (1, 1)
    assert stored(con) == [(1, "guid:a"), (1, "guid:b")]


def test_the_migration_gives_existing_items_their_hash(db_path, tmp_path):
    old = tmp_path / "sql"
    shutil.copytree(SQL_DIR, old)
    (old / "011_item_key_hash.sql").unlink()
    c = connect(db_path)
    migrate(c, old)
    c.execute("""INSERT INTO items (item_id, source_id, dedup_key, time_flags, first_seen_utc, provenance)
                  SELECT n, n % 3, 'guid:' || n, [], now(), 'old' FROM range(1, 501) t(n)""")
    assert migrate(c) == ["011_item_key_hash.sql"]
    assert c.execute("SELECT count(*) FROM items WHERE key_hash = md5_number_lower(source_id::VARCHAR || ':' || dedup_key)"
                     ).fetchone() == (500,)
    stage(c, [(n % 3, f"guid:{n}") for n in range(1, 501)] + [(9, "guid:new")])
    assert store.write_items(c, "staged").new == 1
    c.close()


@pytest.mark.parametrize("hits", ["none", "old", "spread"])
def test_stored_items_are_found_wherever_they_lie_in_the_table(con, hits):
    """The candidate rows are read by row-id range: a hit in the first row group and one in the
    last must both be found."""
    con.execute("""INSERT INTO items (item_id, key_hash, source_id, dedup_key, time_flags, first_seen_utc, provenance)
                   SELECT n, md5_number_lower('1:guid:' || n), 1, 'guid:' || n, [], now(), 'x'
                   FROM range(1, 300001) t(n)""")
    keys = {"none": [], "old": [1, 2], "spread": [1, 150000, 300000]}[hits]
    stage(con, [(1, f"guid:{k}") for k in keys] + [(1, "guid:fresh")])
    assert store.write_items(con, "staged").new == 1
    assert con.execute("SELECT count(*) FROM items").fetchone() == (300001,)


SIGHTINGS_FROM_THE_RECORD = """
    SELECT i.item_id, s.name, i.title, i.published_utc, i.time_flags,
           min(x.seen_utc), max(x.seen_utc), count(*)
    FROM items i JOIN sources s USING (source_id) JOIN item_sightings x USING (item_id)
    GROUP BY ALL ORDER BY 1"""


def _polls(con, tmp_path, plan):
    """Merge staged polls (bench/scale.py's batches: a feed's items, some repeating an earlier poll's)."""
    import sys

    from pipeline.sources.merge import load_staged_dir
    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import scale

    con.execute("INSERT INTO sources (name, role, kind, url) SELECT 'feed-' || s, 'news', 'feed', 'u' || s "
                "FROM range(1, 5) t(s)")
    for poll, repeat_of in plan:
        load_staged_dir(con, scale.stage_poll(tmp_path / "staging", poll, repeat_of, feeds=4, per_feed=10),
                        max_failures=10)


@pytest.mark.parametrize("plan", [[(1, None)], [(1, None), (2, 1), (3, 2), (4, None), (5, 1)], [(2, None), (1, 2)]])
def test_the_sightings_view_agrees_with_every_recorded_sighting(con, tmp_path, plan):
    _polls(con, tmp_path, plan)
    view = con.execute("SELECT * FROM v_item_sightings ORDER BY 1").fetchall()
    assert view == con.execute(SIGHTINGS_FROM_THE_RECORD).fetchall()
    assert len(view) == con.execute("SELECT count(*) FROM items").fetchone()[0]


def test_the_migration_summarises_sightings_already_recorded(con, tmp_path):
    _polls(con, tmp_path, [(1, None), (2, 1)])
    # as a database from before sql/012 had them: sightings recorded, no summary on the items
    con.execute("ALTER TABLE items DROP COLUMN sightings")
    con.execute("ALTER TABLE items DROP COLUMN first_sighted_utc")
    con.execute("ALTER TABLE items DROP COLUMN last_sighted_utc")
    con.execute((SQL_DIR / "012_item_sighting_summary.sql").read_text())
    assert con.execute("SELECT * FROM v_item_sightings ORDER BY 1").fetchall() == \
        con.execute(SIGHTINGS_FROM_THE_RECORD).fetchall()
