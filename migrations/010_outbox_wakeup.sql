-- A wake-up hint for the polling relay: one NOTIFY per inserting statement (payload-free, coalesced
-- per transaction and delivered at commit). It is only a hint — the poller also runs on an interval.
-- Created disabled: NOTIFY serialises commits cluster-wide, so only a polling relay turns it on (and
-- a WAL relay turns it off) when it becomes active.
CREATE OR REPLACE FUNCTION event_outbox_wakeup() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  PERFORM pg_notify('hashinsight_outbox', '');
  RETURN NULL;
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_trigger WHERE tgname = 'event_outbox_wakeup' AND tgrelid = 'event_outbox'::regclass
  ) THEN
    CREATE TRIGGER event_outbox_wakeup AFTER INSERT ON event_outbox
      FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_wakeup();
    ALTER TABLE event_outbox DISABLE TRIGGER event_outbox_wakeup;
  END IF;
END
$$;
