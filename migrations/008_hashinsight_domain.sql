-- HashInsight domain tables. Every one holds tenant data: RLS enabled and forced, one tenant policy
-- (the pattern of 003). Money and BTC amounts are numeric so sums never drift.

-- A user's BTC movements; holdings are the sum of btc_delta (negative for withdrawals and sales).
CREATE TABLE IF NOT EXISTS treasury_transactions (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  user_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'mining_payout', 'sale', 'purchase')),
  btc numeric NOT NULL CHECK (btc > 0),
  btc_delta numeric NOT NULL
    GENERATED ALWAYS AS (CASE WHEN kind IN ('withdrawal', 'sale') THEN -btc ELSE btc END) STORED,
  usd numeric,
  at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS treasury_transactions_user_idx ON treasury_transactions (tenant_id, user_id);

-- Network and market observations; the newest `at` is the current one.
CREATE TABLE IF NOT EXISTS market_data (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  btc_price_usd numeric NOT NULL CHECK (btc_price_usd > 0),
  difficulty numeric NOT NULL CHECK (difficulty > 0),
  block_reward_btc numeric NOT NULL CHECK (block_reward_btc > 0),
  fees_btc_per_block numeric NOT NULL CHECK (fees_btc_per_block >= 0),
  at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS market_data_latest_idx ON market_data (tenant_id, at DESC, created_at DESC);

CREATE TABLE IF NOT EXISTS site_incidents (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  site text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('info', 'minor', 'major', 'critical')),
  description text NOT NULL,
  at timestamptz NOT NULL,
  resolved_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS site_incidents_site_idx ON site_incidents (tenant_id, site, at DESC);

CREATE TABLE IF NOT EXISTS crm_accounts (
  tenant_id uuid NOT NULL,
  id text NOT NULL,
  user_id text NOT NULL,
  name text NOT NULL,
  tier text NOT NULL CHECK (tier IN ('retail', 'pro', 'institutional')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS crm_accounts_user_idx ON crm_accounts (tenant_id, user_id);

CREATE TABLE IF NOT EXISTS crm_contacts (
  tenant_id uuid NOT NULL,
  id text NOT NULL,
  account_id text NOT NULL,
  email text NOT NULL,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, account_id) REFERENCES crm_accounts (tenant_id, id)
);

-- Per tenant and user, the portfolio as last recalculated (SHA-256 holdings with status 'active';
-- holdings of other algorithms are counted in unpriced_miner_count and left out of the figures).
-- fence_token is the lock holder's fencing token: a recalculation carrying an older token than the
-- stored one is rejected.
CREATE TABLE IF NOT EXISTS portfolios (
  tenant_id uuid NOT NULL,
  user_id text NOT NULL,
  miner_count integer NOT NULL,
  unpriced_miner_count integer NOT NULL,
  total_hashrate_ths numeric NOT NULL,
  total_power_w numeric NOT NULL,
  daily_power_cost_usd numeric NOT NULL,
  treasury_btc numeric NOT NULL,
  -- NULL until the tenant has market data: without a price and difficulty there is no revenue.
  daily_revenue_btc numeric,
  daily_revenue_usd numeric,
  daily_profit_usd numeric,
  treasury_usd numeric,
  btc_price_usd numeric,
  difficulty numeric,
  computed_at timestamptz NOT NULL DEFAULT now(),
  fence_token bigint NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);

-- Forecasts per miner model and per user portfolio (subject_kind says which subject_id names).
CREATE TABLE IF NOT EXISTS forecasts (
  tenant_id uuid NOT NULL,
  subject_kind text NOT NULL CHECK (subject_kind IN ('model', 'portfolio')),
  subject_id text NOT NULL,
  breakeven_power_usd_per_kwh numeric NOT NULL,
  difficulty_growth_per_day numeric NOT NULL,
  horizon_days integer NOT NULL,
  revenue_btc numeric NOT NULL,
  revenue_usd numeric NOT NULL,
  power_cost_usd numeric,
  profit_usd numeric,
  computed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, subject_kind, subject_id)
);

-- What the CRM sync last computed for an account, and the webhook deliveries it owes (its outbox).
CREATE TABLE IF NOT EXISTS crm_summaries (
  tenant_id uuid NOT NULL,
  account_id text NOT NULL,
  summary jsonb NOT NULL,
  computed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, account_id)
);

CREATE TABLE IF NOT EXISTS crm_deliveries (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  account_id text NOT NULL,
  event_id uuid NOT NULL,
  target_url text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, event_id, target_url)
);
CREATE INDEX IF NOT EXISTS crm_deliveries_due_idx ON crm_deliveries (next_attempt_at) WHERE status = 'pending';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['treasury_transactions', 'market_data', 'site_incidents', 'crm_accounts',
                           'crm_contacts', 'portfolios', 'forecasts', 'crm_summaries', 'crm_deliveries'] LOOP
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO hashinsight_app, hashinsight_ops', t);
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())',
      t);
  END LOOP;
END
$$;
