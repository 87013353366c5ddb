-- Lint example (rule if-exists, GOOD): every CREATE/ADD has IF NOT EXISTS and every DROP has
-- IF EXISTS, so a rerun after a partial failure finishes the job.

-- pgrollout:up

-- pgrollout:step sql lock=ACCESS_EXCLUSIVE
ALTER TABLE users ADD COLUMN IF NOT EXISTS "lastLogoutAt" timestamptz;

-- pgrollout:step index name=idx_users_last_logout table=users
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_last_logout ON users USING btree ("lastLogoutAt") WHERE "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_last_logout table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_last_logout;

-- pgrollout:step sql lock=ACCESS_EXCLUSIVE
ALTER TABLE users DROP COLUMN IF EXISTS "lastLogoutAt";
