-- Lint example (rule concurrently-in-transaction, BAD): CREATE INDEX CONCURRENTLY in an "sql"
-- step, which runs inside BEGIN ... COMMIT; PostgreSQL refuses it ("cannot run inside a
-- transaction block"), and so does DROP INDEX CONCURRENTLY in the down part.

-- pgrollout:up

-- pgrollout:step sql lock=SHARE_UPDATE_EXCLUSIVE
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_grade_active ON students USING btree (grade, "isActive") WHERE "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step sql lock=SHARE_UPDATE_EXCLUSIVE
DROP INDEX CONCURRENTLY IF EXISTS idx_students_grade_active;
