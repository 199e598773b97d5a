-- The treasury movements the portfolio consumer applied, one row per application, in the order it
-- applied them. Deliberately not idempotent (no unique key on event_id): a row is added in the
-- consumer's transaction, together with its inbox row, so an event applied twice shows as two rows
-- and one never applied as none. `bun run chaos` audits it against the accepted writes; for an
-- operator it is the trail of what each portfolio's treasury figure was built from.
CREATE TABLE IF NOT EXISTS portfolio_ledger (
  tenant_id uuid NOT NULL,
  position bigint GENERATED ALWAYS AS IDENTITY,
  event_id uuid NOT NULL,
  user_id text NOT NULL,
  transaction_id uuid NOT NULL,
  btc_delta numeric NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, position)
);
CREATE INDEX IF NOT EXISTS portfolio_ledger_event_idx ON portfolio_ledger (tenant_id, event_id);

GRANT SELECT, INSERT ON portfolio_ledger TO hashinsight_app;
GRANT SELECT ON portfolio_ledger TO hashinsight_ops;
ALTER TABLE portfolio_ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE portfolio_ledger FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON portfolio_ledger;
CREATE POLICY tenant_isolation ON portfolio_ledger
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
