-- Lint example (rule drop-index-concurrently, BAD): the down part drops the index with a plain
-- DROP INDEX, which takes ACCESS EXCLUSIVE on users (blocks logins while it waits and runs).

-- pgrollout:up

-- pgrollout:step index name=idx_users_failed_login_monitoring table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_failed_login_monitoring ON users USING btree ("failedLoginAttempts", "lastLogin", email, id) WHERE "failedLoginAttempts" >= 3 AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_failed_login_monitoring table=users
DROP INDEX IF EXISTS idx_users_failed_login_monitoring;
