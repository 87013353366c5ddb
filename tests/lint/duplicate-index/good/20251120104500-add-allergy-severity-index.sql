-- Lint example (rule duplicate-index, GOOD, 2 of 2): the second index has its own name.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_severity_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_severity_active ON allergies USING btree ("studentId", severity, active);

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_student_severity_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_severity_active;
