-- Lint example (rule duplicate-index, GOOD, 1 of 2): creates idx_allergies_student_type_active.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_type_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_type_active ON allergies USING btree ("studentId", "allergyType", active);

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_student_type_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_type_active;
