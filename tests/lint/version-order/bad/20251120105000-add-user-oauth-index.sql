-- Lint example (rule version-order, BAD, 2 of 2): same version as
-- 20251120105000-add-user-mfa-index; versions must be unique.

-- pgrollout:up

-- pgrollout:step index name=idx_users_oauth_provider table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_oauth_provider ON users USING btree ("oauthProvider", "oauthProviderId", email) WHERE "oauthProvider" IS NOT NULL AND "oauthProviderId" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_oauth_provider table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_oauth_provider;
