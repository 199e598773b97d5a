-- The CRM sync records every change it would deliver. Without a configured webhook there is no
-- target: the delivery is recorded as 'skipped' with no URL.
ALTER TABLE crm_deliveries ALTER COLUMN target_url DROP NOT NULL;
ALTER TABLE crm_deliveries DROP CONSTRAINT IF EXISTS crm_deliveries_status_check;
ALTER TABLE crm_deliveries ADD CONSTRAINT crm_deliveries_status_check
  CHECK (status IN ('pending', 'delivered', 'failed', 'skipped'));
ALTER TABLE crm_deliveries ADD CONSTRAINT crm_deliveries_target_check
  CHECK ((status = 'skipped') = (target_url IS NULL));
