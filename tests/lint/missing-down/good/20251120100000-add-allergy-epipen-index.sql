-- Lint example (rule missing-down, GOOD): the down part drops what the up part built.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_epipen_expiration table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_epipen_expiration ON allergies USING btree ("epiPenExpiration", "epiPenRequired", active) WHERE "epiPenRequired" = true AND active = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_epipen_expiration table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_epipen_expiration;
