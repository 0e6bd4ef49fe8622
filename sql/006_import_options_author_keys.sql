-- 006: what an import was told (column mapping, time zone, DST policy, reader), and archive items
-- keyed by their author too.
ALTER TABLE imports ADD COLUMN options JSON;

-- Imports without an id or link column keyed items by a hash of raw time and text, so identical
-- posts by different accounts in the same minute were merged into one. Keys now include the
-- author (where there is one); existing items are re-keyed the same way, so a second import of
-- the same file adds exactly the posts that were merged away, and nothing twice.
UPDATE items SET dedup_key = 'title:' || sha1(published_raw || chr(31) || author || chr(31) || title)
WHERE dedup_key LIKE 'title:%' AND provenance LIKE 'import:%' AND author IS NOT NULL
  AND published_raw IS NOT NULL AND title IS NOT NULL;
