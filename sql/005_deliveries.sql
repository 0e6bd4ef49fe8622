-- 005 deliveries: the send-once ledger belongs to delivery, keyed by channel (email today), so a
-- later channel adds rows, not a table. One row per (channel, what was sent, recipients).
--   pending: composed, not yet attempted   sending: a conversation is under way (or died in one)
--   sent: the server accepted it            failed: refused before accepting; safe to retry
--   unknown: the conversation broke after the message was handed over (e.g. a timeout waiting
--            for the reply to DATA): it may have arrived, so it is not sent again without --force
CREATE TABLE deliveries (
    channel       VARCHAR NOT NULL,   -- email
    item          VARCHAR NOT NULL,   -- what was sent: the ISO week of a digest, e.g. 2016-W40
    recipients    VARCHAR NOT NULL,   -- sorted, comma-separated
    message_id    VARCHAR NOT NULL,   -- fixed at the first attempt, reused by every retry
    subject       VARCHAR,
    run_ids       VARCHAR,            -- the analysis runs whose figures it shows
    status        VARCHAR NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    VARCHAR,
    created_utc   TIMESTAMPTZ NOT NULL,
    updated_utc   TIMESTAMPTZ NOT NULL,
    sent_utc      TIMESTAMPTZ,
    PRIMARY KEY (channel, item, recipients)
);
INSERT INTO deliveries
SELECT 'email', week, recipients, message_id, subject, run_id, status, attempts, last_error,
       created_utc, updated_utc, sent_utc
FROM digests;
DROP TABLE digests;
