-- Core CDC tables: tenants, the transactional outbox (Debezium outbox-router column names) and the
-- dead-letter queue. Safe to run with `psql -f` as well as through `bun run migrate`.

CREATE TABLE IF NOT EXISTS tenants (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  api_key_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per event. `id`, `aggregatetype`, `aggregateid`, `type`, `payload` are the columns
-- Debezium's outbox event router reads; `tenant_id` and `traceparent` are placed as headers.
-- `txid` is the writing transaction's id (xid8): the polling relay publishes a row only once no
-- older transaction can still commit, so a long transaction never makes it skip an event.
CREATE TABLE IF NOT EXISTS event_outbox (
  id uuid PRIMARY KEY,
  aggregatetype text NOT NULL,
  aggregateid text NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  tenant_id uuid NOT NULL,
  traceparent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  published_at timestamptz
);

CREATE INDEX IF NOT EXISTS event_outbox_unpublished_idx
  ON event_outbox (txid, seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS event_outbox_published_idx
  ON event_outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_outbox_created_idx ON event_outbox (created_at);

-- A record that could not be processed: kept whole so it can be inspected and replayed.
CREATE TABLE IF NOT EXISTS event_dlq (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id uuid,
  consumer_group text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  "offset" bigint NOT NULL,
  key text,
  value text,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  event_type text,
  error_tag text NOT NULL,
  error_message text NOT NULL,
  attempts integer NOT NULL DEFAULT 1,
  tenant_id uuid,
  failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS event_dlq_failed_at_idx ON event_dlq (failed_at);
CREATE INDEX IF NOT EXISTS event_dlq_group_event_idx ON event_dlq (consumer_group, event_id);
