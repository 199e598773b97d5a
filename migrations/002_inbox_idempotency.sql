-- Consumer inbox: a row per (group, event) written in the same transaction as the consumer's
-- effects, so a redelivered or replayed event is recognised and skipped.
CREATE TABLE IF NOT EXISTS event_inbox (
  consumer_group text NOT NULL,
  event_id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  event_type text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  "offset" bigint NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id)
);

CREATE INDEX IF NOT EXISTS event_inbox_processed_idx ON event_inbox (processed_at);

-- Monotonic fencing tokens for Redis locks: a write carrying a token older than the newest one
-- seen for its key is rejected by the database.
CREATE TABLE IF NOT EXISTS lock_fences (
  lock_key text PRIMARY KEY,
  token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
