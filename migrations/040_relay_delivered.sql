-- What is known to be in Kafka: every event_outbox row with txid < below. A WAL relay marks no
-- rows, so without this a polling relay, or a new slot's catch-up, after a WAL relay sent again
-- every event still in retention. One row for the outbox, not one per relay: relays of either mode
-- and any name share the table, each moves the watermark forward with what Kafka acknowledged to
-- it, and it never moves back.
--
-- Keyed by the cluster whose transaction ids it counts (pg_control_system().system_identifier): a
-- dump restored into another cluster brings the row along, but there xids count from that
-- cluster's own start, far below it, and every new row would lie under the old watermark and be
-- skipped by every relay. Read only where it was written, it claims nothing elsewhere, and the
-- first relay there starts a row of its own.
CREATE TABLE IF NOT EXISTS relay_delivered (
  system_identifier bigint PRIMARY KEY,
  below xid8 NOT NULL,
  advanced_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON relay_delivered TO hashinsight_ops;
