-- 004: what outputs need to render a stored run without re-running it, and the display facts of
-- a source that belong to the source (not to every claim that names it).

-- The whole result of a run (releases, competitors, every stream's tests, correlograms,
-- displacement, pressure) as one JSON document: the report, the digest and any later page are
-- rendered from it, so none of them ever re-runs an analysis.
ALTER TABLE analysis_runs ADD COLUMN facts JSON;

-- How a stream is shown ("@HillaryClinton tweets") and what a reader must know about it
-- ("re-posts headlines with a lag"); claims may override both.
ALTER TABLE sources ADD COLUMN label VARCHAR;
ALTER TABLE sources ADD COLUMN caveat VARCHAR;

-- An import whose every row was rejected creates no source; the attempt is still recorded, with
-- the name it was for.
ALTER TABLE imports ADD COLUMN source_name VARCHAR;
