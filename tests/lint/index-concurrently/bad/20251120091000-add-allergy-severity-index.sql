-- Lint example (rule index-concurrently, BAD): a plain CREATE INDEX takes a SHARE lock on
-- allergies and blocks every INSERT/UPDATE/DELETE for the whole build.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_severity_active table=allergies
CREATE INDEX IF NOT EXISTS idx_allergies_severity_active ON allergies USING btree (severity, active, "deletedAt");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_severity_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_severity_active;
