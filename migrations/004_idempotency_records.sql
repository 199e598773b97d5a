-- Idempotency-Key records: per tenant and key, the request fingerprint, its state and the stored
-- response. A record expires after 24 h; expired rows are cleaned up by the API.
CREATE TABLE IF NOT EXISTS idempotency_records (
  tenant_id uuid NOT NULL,
  idempotency_key text NOT NULL,
  fingerprint text NOT NULL,
  state text NOT NULL CHECK (state IN ('in_flight', 'completed')),
  response_status integer,
  response_headers jsonb,
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
  PRIMARY KEY (tenant_id, idempotency_key)
);

CREATE INDEX IF NOT EXISTS idempotency_records_expires_idx ON idempotency_records (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_records TO hashinsight_app, hashinsight_ops;

ALTER TABLE idempotency_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON idempotency_records;
CREATE POLICY tenant_isolation ON idempotency_records
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
