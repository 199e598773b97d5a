-- The publication the WAL relay streams from. Inserts only: the polling relay marks rows published
-- and retention deletes them, and neither must reach Kafka again.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'hashinsight_outbox') THEN
    CREATE PUBLICATION hashinsight_outbox FOR TABLE event_outbox WITH (publish = 'insert');
  END IF;
END
$$;

-- Relay bookkeeping: which relay holds leadership, and the WAL position it last acknowledged.
CREATE TABLE IF NOT EXISTS relay_state (
  name text PRIMARY KEY,
  mode text NOT NULL,
  holder text,
  acked_lsn pg_lsn,
  published_total bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
