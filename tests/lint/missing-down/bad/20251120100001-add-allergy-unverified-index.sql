-- Lint example (rule missing-down, BAD): a "-- pgrollout:down" line with no step after it is an
-- empty down part, which undoes nothing.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_unverified table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_unverified ON allergies USING btree (verified, severity, "createdAt") WHERE verified = false AND active = true AND "deletedAt" IS NULL;

-- pgrollout:down
-- TODO: drop idx_allergies_unverified
