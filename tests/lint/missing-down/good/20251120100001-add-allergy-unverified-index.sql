-- Lint example (rule missing-down, GOOD): the down part has a step that undoes the up part.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_unverified table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_unverified ON allergies USING btree (verified, severity, "createdAt") WHERE verified = false AND active = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_unverified table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_unverified;
