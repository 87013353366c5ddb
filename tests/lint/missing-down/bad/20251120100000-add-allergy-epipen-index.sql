-- Lint example (rule missing-down, BAD): no "-- pgrollout:down" part, so the migration cannot be
-- rolled back.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_epipen_expiration table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_epipen_expiration ON allergies USING btree ("epiPenExpiration", "epiPenRequired", active) WHERE "epiPenRequired" = true AND active = true AND "deletedAt" IS NULL;
