-- Row-level security. Tenant work runs as hashinsight_app (no superuser, no BYPASSRLS) with
-- `app.tenant_id` set transaction-locally; without it no row is visible (fail closed).
-- hashinsight_ops is for the relay and operator tools, which see every tenant.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hashinsight_app') THEN
    CREATE ROLE hashinsight_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hashinsight_ops') THEN
    CREATE ROLE hashinsight_ops NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END
$$;

-- The tenant of the current transaction, or NULL (never an error) when none is set.
CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS uuid
  LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

GRANT USAGE ON SCHEMA public TO hashinsight_app, hashinsight_ops;
GRANT SELECT, INSERT ON event_outbox TO hashinsight_app;
GRANT SELECT, INSERT ON event_inbox TO hashinsight_app;
GRANT SELECT, INSERT ON event_dlq TO hashinsight_app;
GRANT SELECT ON tenants TO hashinsight_app;
GRANT SELECT, INSERT, UPDATE ON lock_fences TO hashinsight_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO hashinsight_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hashinsight_ops;

-- Every table that holds tenant data: RLS enabled and forced (owners too), one tenant policy.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['event_outbox', 'event_inbox', 'event_dlq'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())',
      t);
  END LOOP;
END
$$;

-- A tenant may see its own tenant row only.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_self ON tenants;
CREATE POLICY tenant_self ON tenants FOR SELECT TO hashinsight_app USING (id = app_current_tenant());
DROP POLICY IF EXISTS ops_all ON tenants;
CREATE POLICY ops_all ON tenants TO hashinsight_ops USING (true) WITH CHECK (true);
