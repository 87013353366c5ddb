-- Lint example (rule volatile-in-index, GOOD): only IMMUTABLE expressions in the indexes.
--   - Time comparisons become IS NOT NULL; the query keeps "x > now()" and the planner still
--     uses the partial index (x > now() implies x IS NOT NULL).
--   - The random sample becomes a deterministic one (last digit of the student number).
--   - unaccent() is called through an IMMUTABLE wrapper that names its dictionary explicitly.
-- The extensions are left installed by the down part (other code may use them).

-- pgrollout:up

-- pgrollout:step extension name=pg_trgm
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- pgrollout:step extension name=unaccent
CREATE EXTENSION IF NOT EXISTS unaccent;

-- pgrollout:step sql
CREATE OR REPLACE FUNCTION public.immutable_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;

-- pgrollout:step index name=idx_users_active_lockouts table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_active_lockouts ON users USING btree ("lockoutUntil", "failedLoginAttempts", email, id) WHERE "lockoutUntil" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_password_reset_token table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_password_reset_token ON users USING btree ("passwordResetToken", "passwordResetExpires") WHERE "passwordResetToken" IS NOT NULL AND "passwordResetExpires" IS NOT NULL;

-- pgrollout:step index name=idx_students_audit_sample table=students
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_audit_sample ON students USING btree (id) WHERE right("studentNumber", 1) = '0' AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_students_lastname_unaccent_trigram table=students phi
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_students_lastname_unaccent_trigram ON students USING gin (public.immutable_unaccent("lastName") gin_trgm_ops) WHERE "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_students_lastname_unaccent_trigram table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_lastname_unaccent_trigram;

-- pgrollout:step drop_index name=idx_students_audit_sample table=students
DROP INDEX CONCURRENTLY IF EXISTS idx_students_audit_sample;

-- pgrollout:step drop_index name=idx_users_password_reset_token table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_password_reset_token;

-- pgrollout:step drop_index name=idx_users_active_lockouts table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_active_lockouts;

-- pgrollout:step sql
DROP FUNCTION IF EXISTS public.immutable_unaccent(text);
