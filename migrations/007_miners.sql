-- A tenant's miner holdings: how many units of a catalogue model a user runs, where, and at what
-- power price. Tenant data, so RLS is enabled and forced with the same policy as 003/004.
CREATE TABLE IF NOT EXISTS miners (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  user_id text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
  model_id text NOT NULL REFERENCES miner_models (id),
  count integer NOT NULL CHECK (count > 0),
  site text NOT NULL,
  power_price_usd_per_kwh numeric NOT NULL CHECK (power_price_usd_per_kwh >= 0),
  status text NOT NULL DEFAULT 'active',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS miners_tenant_user_idx ON miners (tenant_id, user_id);

GRANT SELECT, INSERT, UPDATE ON miners TO hashinsight_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON miners TO hashinsight_ops;

ALTER TABLE miners ENABLE ROW LEVEL SECURITY;
ALTER TABLE miners FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON miners;
CREATE POLICY tenant_isolation ON miners
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
