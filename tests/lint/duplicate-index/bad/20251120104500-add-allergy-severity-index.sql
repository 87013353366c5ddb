-- Lint example (rule duplicate-index, BAD, 2 of 2): reuses the name of the index created by
-- 20251120104000 for a different definition. On a tenant where the first one ran, IF NOT EXISTS
-- silently keeps the old index and this one is never built; its down part would drop the
-- other migration's index.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_type_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_type_active ON allergies USING btree ("studentId", severity, active);

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_student_type_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_type_active;
