-- Lint example (rule index-mismatch, GOOD): every index and drop_index step's SQL names the
-- declared index, and every index step's SQL names the declared table.

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_type_active table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_type_active ON allergies USING btree ("studentId", "allergyType", active);

-- pgrollout:step index name=idx_chronic_conditions_student_status table=chronic_conditions
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_student_status ON chronic_conditions USING btree ("studentId", status, "isActive", "deletedAt");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_chronic_conditions_student_status table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_student_status;

-- pgrollout:step drop_index name=idx_allergies_student_type_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_type_active;
