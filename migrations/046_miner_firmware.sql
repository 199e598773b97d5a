-- The firmware a holding's miners run, as given when it was added (MinerAdded v2 carries it).
-- Holdings from before it have none: NULL, as the upcast of a v1 MinerAdded says.
ALTER TABLE miners ADD COLUMN IF NOT EXISTS firmware text CHECK (length(firmware) BETWEEN 1 AND 64);
