-- Lint example (rule if-exists, BAD): none of these statements can be re-run after a partial
-- failure: ADD COLUMN and CREATE INDEX without IF NOT EXISTS, DROP ... without IF EXISTS.

-- pgrollout:up

-- pgrollout:step sql lock=ACCESS_EXCLUSIVE
ALTER TABLE users ADD COLUMN "lastLogoutAt" timestamptz;

-- pgrollout:step index name=idx_users_last_logout table=users
CREATE INDEX CONCURRENTLY idx_users_last_logout ON users USING btree ("lastLogoutAt") WHERE "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_last_logout table=users
DROP INDEX CONCURRENTLY idx_users_last_logout;

-- pgrollout:step sql lock=ACCESS_EXCLUSIVE
ALTER TABLE users DROP COLUMN "lastLogoutAt";
