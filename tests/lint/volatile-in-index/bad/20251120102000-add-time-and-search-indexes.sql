-- Lint example (rule volatile-in-index, BAD): index expressions and predicates must be IMMUTABLE.
-- PostgreSQL refuses all four builds below ("functions in index predicate/expression must be
-- marked IMMUTABLE"): now() and current_timestamp are STABLE, random() is VOLATILE, and
-- unaccent() is STABLE (it depends on a dictionary found through search_path).

-- pgrollout:up

-- pgrollout:step extension name=pg_trgm
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- pgrollout:step extension name=unaccent
CREATE EXTENSION IF NOT EXISTS unaccent;

-- pgrollout:step index name=idx_users_active_lockouts table=users
-- now() in the predicate (the original White Cross #13).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_active_lockouts ON users USING btree ("lockoutUntil", "failedLoginAttempts", email, id) WHERE "lockoutUntil" > now() AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_password_reset_token table=users
-- current_timestamp in the predicate.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_password_reset_token ON users USING btree ("passwordResetToken", "passwordResetExpires") WHERE "passwordResetToken" IS NOT NULL AND "passwordResetExpires" > current_timestamp;

-- pgrollout:step index name=idx_students_audit_sample table=students
-- random() in the predicate: a "10% sample of students for chart audits".
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_audit_sample ON students USING btree (id) WHERE random() < 0.1 AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_students_lastname_unaccent_trigram table=students phi
-- unaccent() in the index expression (accent-insensitive name search).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_lastname_unaccent_trigram ON students USING gin (unaccent("lastName") gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_students_lastname_unaccent_trigram table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_lastname_unaccent_trigram;

-- pgrollout:step drop_index name=idx_students_audit_sample table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_audit_sample;

-- pgrollout:step drop_index name=idx_users_password_reset_token table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_password_reset_token;

-- pgrollout:step drop_index name=idx_users_active_lockouts table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_active_lockouts;
