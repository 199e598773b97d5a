-- One open DLQ entry per record identity: a record delivered again (a member restarted before its
-- offset commit, a relay duplicate) counts a repeat on its entry instead of adding a row. The
-- identity is (consumer group, event id); a record without a usable event id has none, so it is
-- (consumer group, topic, partition, offset): the same Kafka record delivered again. Open means not
-- yet replayed: once a replay succeeds, a later fresh failure of the event may open a new entry.
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS occurrences integer NOT NULL DEFAULT 1;
ALTER TABLE event_dlq ADD COLUMN IF NOT EXISTS last_failed_at timestamptz;
-- The default before the fill: under `psql -f` a member may write a row meanwhile, and it must not
-- be left without one (SET NOT NULL would fail); a row written before the default is filled.
ALTER TABLE event_dlq ALTER COLUMN last_failed_at SET DEFAULT now();
UPDATE event_dlq SET last_failed_at = failed_at WHERE last_failed_at IS NULL;
ALTER TABLE event_dlq ALTER COLUMN last_failed_at SET NOT NULL;

-- Rows written before this migration may repeat an identity: fold each set of open rows into one
-- (the count summed, the first failure's time, the latest error, their replay histories joined)
-- before the unique indexes go on. The kept row is the one a replay is under way for, if any (its id
-- travels in that replay's record), else a failed replay's, else the first. One statement (a DO
-- block), so under `psql -f` too no member can add a repeat between the fold and the indexes. Each
-- step joins whole sets, never a subquery per entry: writes wait while it runs, and a DLQ full of
-- repeats is large.
DO $$
BEGIN
  LOCK TABLE event_dlq IN SHARE ROW EXCLUSIVE MODE;

  CREATE TEMPORARY TABLE event_dlq_fold ON COMMIT DROP AS
  SELECT id, first_value(id) OVER (
      PARTITION BY consumer_group, event_id,
        CASE WHEN event_id IS NULL THEN topic END,
        CASE WHEN event_id IS NULL THEN partition END,
        CASE WHEN event_id IS NULL THEN "offset" END
      ORDER BY CASE replay_status WHEN 'replaying' THEN 0 WHEN 'failed' THEN 1 ELSE 2 END, id
    ) AS keeper
  FROM event_dlq WHERE replay_status <> 'replayed';
  DELETE FROM event_dlq_fold f
  WHERE NOT EXISTS (SELECT 1 FROM event_dlq_fold o WHERE o.keeper = f.keeper AND o.id <> f.id);

  UPDATE event_dlq d SET
    occurrences = agg.occurrences,
    failed_at = agg.failed_at,
    last_failed_at = agg.last_failed_at,
    error_tag = agg.error_tag,
    error_message = agg.error_message,
    attempts = agg.attempts,
    replay_count = agg.replay_count,
    history = coalesce(joined.history, '[]'::jsonb)
  FROM (
    SELECT f.keeper,
      sum(r.occurrences)::int AS occurrences,
      min(r.failed_at) AS failed_at,
      max(r.last_failed_at) AS last_failed_at,
      (array_agg(r.error_tag ORDER BY r.last_failed_at DESC, r.id DESC))[1] AS error_tag,
      (array_agg(r.error_message ORDER BY r.last_failed_at DESC, r.id DESC))[1] AS error_message,
      (array_agg(r.attempts ORDER BY r.last_failed_at DESC, r.id DESC))[1] AS attempts,
      sum(r.replay_count)::int AS replay_count
    FROM event_dlq_fold f JOIN event_dlq r ON r.id = f.id
    GROUP BY f.keeper
  ) agg LEFT JOIN (
    SELECT f.keeper, jsonb_agg(h.item ORDER BY f.id, h.n) AS history
    FROM event_dlq_fold f JOIN event_dlq r ON r.id = f.id,
      jsonb_array_elements(r.history) WITH ORDINALITY AS h(item, n)
    GROUP BY f.keeper
  ) joined ON joined.keeper = agg.keeper
  WHERE d.id = agg.keeper;
  DELETE FROM event_dlq d USING event_dlq_fold f WHERE d.id = f.id AND f.id <> f.keeper;

  CREATE UNIQUE INDEX IF NOT EXISTS event_dlq_open_event_key ON event_dlq (consumer_group, event_id)
    WHERE event_id IS NOT NULL AND replay_status <> 'replayed';
  CREATE UNIQUE INDEX IF NOT EXISTS event_dlq_open_record_key
    ON event_dlq (consumer_group, topic, partition, "offset")
    WHERE event_id IS NULL AND replay_status <> 'replayed';
END
$$;
