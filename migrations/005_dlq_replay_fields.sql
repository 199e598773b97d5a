-- DLQ replay bookkeeping: status, when, how often, and why the last replay failed.
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS replay_status text NOT NULL DEFAULT 'pending';
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS replayed_at timestamptz;
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS replay_count integer NOT NULL DEFAULT 0;
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS last_replay_error text;
-- Earlier failures of the same (group, event), folded into this row when a replay fails again.
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS history jsonb NOT NULL DEFAULT '[]'::jsonb;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'event_dlq_replay_status_check') THEN
    ALTER TABLE event_dlq ADD CONSTRAINT event_dlq_replay_status_check
      CHECK (replay_status IN ('pending', 'replaying', 'replayed', 'failed'));
  END IF;
END
$$;

CREATE INDEX IF NOT EXISTS event_dlq_status_idx ON event_dlq (replay_status, failed_at);
