-- Lint example (rule drop-index-concurrently, GOOD): DROP INDEX CONCURRENTLY only takes
-- SHARE UPDATE EXCLUSIVE on users.

-- pgrollout:up

-- pgrollout:step index name=idx_users_failed_login_monitoring table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_failed_login_monitoring ON users USING btree ("failedLoginAttempts", "lastLogin", email, id) WHERE "failedLoginAttempts" >= 3 AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_failed_login_monitoring table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_failed_login_monitoring;
