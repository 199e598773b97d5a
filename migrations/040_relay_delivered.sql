-- What is known to be in Kafka: every event_outbox row with txid < below. A WAL relay marks no
-- rows, so without this a polling relay, or a new slot's catch-up, after a WAL relay sent again
-- every event still in retention. One row for the outbox, not one per relay: relays of either mode
-- and any name share the table, each moves the watermark forward with what Kafka acknowledged to
-- it, and it never moves back.
CREATE TABLE IF NOT EXISTS relay_delivered (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  below xid8 NOT NULL,
  advanced_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON relay_delivered TO hashinsight_ops;
