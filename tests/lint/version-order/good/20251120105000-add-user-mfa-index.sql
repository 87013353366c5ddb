-- Lint example (rule version-order, GOOD, 1 of 2): a unique, valid UTC timestamp version.

-- pgrollout:up

-- pgrollout:step index name=idx_users_mfa_not_enabled table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_mfa_not_enabled ON users USING btree ("mfaEnabled", role, "createdAt", email, id) WHERE "mfaEnabled" = false AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_mfa_not_enabled table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_mfa_not_enabled;
