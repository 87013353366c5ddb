-- Lint example (rule index-mismatch, BAD): the annotations and the SQL disagree, so the
-- executor's idempotency check (by declared name and table) looks at the wrong object.
--   - the first step declares idx_allergies_student_type_active but builds
--     idx_allergies_student_type (and its drop step drops that other name too);
--   - the second step declares table=students but builds the index on chronic_conditions.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_type_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_type ON allergies USING btree ("studentId", "allergyType", active);

-- pgrollout:step index name=idx_chronic_conditions_student_status table=students
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_student_status ON chronic_conditions USING btree ("studentId", status, "isActive", "deletedAt");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_chronic_conditions_student_status table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_student_status;

-- pgrollout:step drop_index name=idx_allergies_student_type_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_type;
