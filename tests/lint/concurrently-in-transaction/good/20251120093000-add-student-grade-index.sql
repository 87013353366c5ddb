-- Lint example (rule concurrently-in-transaction, GOOD): the concurrent build and drop run in
-- "index" and "drop_index" steps, which the executor runs outside any transaction.

-- pgrollout:up

-- pgrollout:step index name=idx_students_grade_active table=students
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_grade_active ON students USING btree (grade, "isActive") WHERE "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_students_grade_active table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_grade_active;
