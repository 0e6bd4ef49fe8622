-- 012: each item's sightings summarised on the item, kept by the merge that records them.
-- v_item_sightings grouped every sighting ever before a LIMIT could apply (5.4 GB of memory at
-- 20M items); the summary makes "the newest 20" a read of items alone. item_sightings stays
-- the record: these three columns are re-derived from it here and checked against it in tests.
ALTER TABLE items ADD COLUMN sightings INTEGER;
ALTER TABLE items ADD COLUMN first_sighted_utc TIMESTAMPTZ;
ALTER TABLE items ADD COLUMN last_sighted_utc TIMESTAMPTZ;
UPDATE items SET sightings = x.k, first_sighted_utc = x.lo, last_sighted_utc = x.hi
FROM (SELECT item_id, count(*) AS k, min(seen_utc) AS lo, max(seen_utc) AS hi
      FROM item_sightings GROUP BY item_id) x
WHERE items.item_id = x.item_id;
