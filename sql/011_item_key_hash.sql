-- 011: a narrow key for finding stored items. Every poll asks which of its items are stored;
-- asked on (source_id, dedup_key) that hash-joined the whole items table, strings and all, on
-- every poll (0.28 s CPU per million items per poll; no index is kept, see 007). key_hash is a
-- stable 64-bit hash of the key (MD5's lower half: DuckDB's hash() may change between versions):
-- the writer finds candidates by this one column, then compares full keys for those rows only.
ALTER TABLE items ADD COLUMN key_hash UBIGINT;
UPDATE items SET key_hash = md5_number_lower(CAST(source_id AS VARCHAR) || ':' || dedup_key);
