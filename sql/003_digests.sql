-- 003 digests: one row per (ISO week, recipients), so a week is sent once however often the job
-- runs. The Message-ID is fixed at the first attempt and reused, so a resend after an unclear
-- failure can be recognised as the same message by mail clients.
CREATE TABLE digests (
    week          VARCHAR NOT NULL,   -- ISO week, e.g. 2016-W40
    recipients    VARCHAR NOT NULL,   -- sorted, comma-separated
    message_id    VARCHAR NOT NULL,
    subject       VARCHAR,
    run_id        VARCHAR,            -- the analysis run whose figures the digest shows
    status        VARCHAR NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    VARCHAR,
    created_utc   TIMESTAMPTZ NOT NULL,
    updated_utc   TIMESTAMPTZ NOT NULL,
    sent_utc      TIMESTAMPTZ,
    PRIMARY KEY (week, recipients)
);
