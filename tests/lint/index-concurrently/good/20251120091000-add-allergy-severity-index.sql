-- Lint example (rule index-concurrently, GOOD): CREATE INDEX CONCURRENTLY only takes
-- SHARE UPDATE EXCLUSIVE; reads and writes to allergies continue during the build.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_severity_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_severity_active ON allergies USING btree (severity, active, "deletedAt");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_severity_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_severity_active;
