-- The payload's schema version per outbox row, placed as the `eventVersion` header by our relay and
-- by Debezium (`table.fields.additional.placement`). Rows written before it, and writers that do
-- not name it, are version 1: the version every payload had before event types declared versions.
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS event_version integer NOT NULL DEFAULT 1
  CHECK (event_version >= 1);
