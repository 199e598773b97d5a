-- A consumer closes a replayed DLQ row in the same transaction as the replayed event's effects, and
-- that transaction runs as hashinsight_app under RLS: let it set the replay outcome (its tenant's
-- rows only, by the tenant_isolation policy) and nothing else.
GRANT UPDATE (replay_status, replayed_at) ON event_dlq TO hashinsight_app;
