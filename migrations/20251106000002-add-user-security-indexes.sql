-- 20251106000002 add-user-security-indexes
--
-- Source: harborgrid-justin/white-cross,
--   backend/src/database/migrations/20251106000002-add-user-security-indexes.js
--   (added at 4ece9be1390883fab9014c08ab747d5338ac2d84, never changed afterwards).
--
-- What it does: 11 partial B-tree indexes on users (#13-#23), in the original order and with the
-- original names and key columns: lockouts (#13, #14), password rotation (#15, #16),
-- MFA (#17, #18), email verification (#19, #20), tokens (#21, #22), OAuth (#23).
--
-- Deviations from the original, and why:
--   1. The original CANNOT RUN on any schema. Four predicates (#13, #15, #21, #22) call NOW(), and
--      PostgreSQL refuses them with "functions in index predicate must be marked IMMUTABLE". All
--      11 builds were in one transaction, so the whole migration always failed and rolled back.
--      The intent was wrong as well: a partial-index predicate is evaluated when a row is written,
--      never when a query runs, so "locked right now" or "token not yet expired" cannot be an
--      index predicate. Each of the four keeps its name and key columns; the time comparison
--      becomes an IMMUTABLE condition that every row the original meant is sure to satisfy, and
--      time filtering stays in the query (the planner proves the query's "x > now()" implies the
--      index's "x IS NOT NULL", so the index is still chosen):
--        #13 idx_users_active_lockouts:
--            "lockoutUntil" > NOW()                  ->  "lockoutUntil" IS NOT NULL
--            query: WHERE "lockoutUntil" > now() AND "isActive" AND "deletedAt" IS NULL
--        #15 idx_users_password_rotation (intent: rotation candidates):
--            ("lastPasswordChange" < NOW() - INTERVAL '90 days' OR "mustChangePassword" = true)
--            ->  ("lastPasswordChange" IS NOT NULL OR "mustChangePassword" = true)
--            query: WHERE "isActive" AND "deletedAt" IS NULL AND ("lastPasswordChange" <
--            now() - interval '90 days' OR "mustChangePassword"); the index leads with
--            "lastPasswordChange", so the 90-day cut is a range scan. Users who never changed
--            their password and are not forced to are left out, as in the original.
--        #21 idx_users_password_reset_token:
--            "passwordResetExpires" > NOW()          ->  "passwordResetExpires" IS NOT NULL
--        #22 idx_users_email_verification_token:
--            "emailVerificationExpires" > NOW()      ->  "emailVerificationExpires" IS NOT NULL
--      The other conjuncts of the four predicates are unchanged. The other seven predicates are
--      exactly the original ones.
--   2. Every index is built CREATE INDEX CONCURRENTLY IF NOT EXISTS, one step per index, outside a
--      transaction (the original: plain CREATE INDEX IF NOT EXISTS, all in one transaction,
--      write-blocking SHARE locks on users held until the commit).
--   3. Idempotency: the executor drops an INVALID leftover of the same name before building and
--      checks indisvalid after (the original's pg_indexes lookup had no schema filter and no
--      validity check).
--   4. No longer all-or-nothing: a failure leaves the indexes built so far; a rerun finishes.
--
-- No step touches PHI columns: users are staff accounts. #21 and #22 index secret token columns;
-- pgrollout never logs column values, only object names and counts.
--
-- Down: the 11 indexes dropped CONCURRENTLY IF EXISTS, in reverse order.

-- pgrollout:up

-- pgrollout:step index name=idx_users_active_lockouts table=users
-- #13 (partial; NOW() predicate fixed, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_active_lockouts ON users USING btree ("lockoutUntil", "failedLoginAttempts", email, id) WHERE "lockoutUntil" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_failed_login_monitoring table=users
-- #14 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_failed_login_monitoring ON users USING btree ("failedLoginAttempts", "lastLogin", email, id) WHERE "failedLoginAttempts" >= 3 AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_password_rotation table=users
-- #15 (partial; NOW() predicate fixed, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_password_rotation ON users USING btree ("lastPasswordChange", "mustChangePassword", email, id, role) WHERE "isActive" = true AND "deletedAt" IS NULL AND ("lastPasswordChange" IS NOT NULL OR "mustChangePassword" = true);

-- pgrollout:step index name=idx_users_force_password_change table=users
-- #16 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_force_password_change ON users USING btree ("mustChangePassword", "isActive", email, id) WHERE "mustChangePassword" = true AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_mfa_not_enabled table=users
-- #17 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_mfa_not_enabled ON users USING btree ("mfaEnabled", role, "createdAt", email, id) WHERE "mfaEnabled" = false AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_two_factor_enabled table=users
-- #18 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_two_factor_enabled ON users USING btree ("twoFactorEnabled", "isActive", role) WHERE "twoFactorEnabled" = true AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_unverified_email table=users
-- #19 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_unverified_email ON users USING btree ("emailVerified", "createdAt", email, id) WHERE "emailVerified" = false AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_is_email_verified table=users
-- #20 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_is_email_verified ON users USING btree ("isEmailVerified", "createdAt", email, id) WHERE "isEmailVerified" = false AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_password_reset_token table=users
-- #21 (partial; NOW() predicate fixed, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_password_reset_token ON users USING btree ("passwordResetToken", "passwordResetExpires") WHERE "passwordResetToken" IS NOT NULL AND "passwordResetExpires" IS NOT NULL AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_email_verification_token table=users
-- #22 (partial; NOW() predicate fixed, see header)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_verification_token ON users USING btree ("emailVerificationToken", "emailVerificationExpires") WHERE "emailVerificationToken" IS NOT NULL AND "emailVerificationExpires" IS NOT NULL AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_users_oauth_provider table=users
-- #23 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_oauth_provider ON users USING btree ("oauthProvider", "oauthProviderId", email) WHERE "oauthProvider" IS NOT NULL AND "oauthProviderId" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_users_oauth_provider table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_oauth_provider;

-- pgrollout:step drop_index name=idx_users_email_verification_token table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_email_verification_token;

-- pgrollout:step drop_index name=idx_users_password_reset_token table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_password_reset_token;

-- pgrollout:step drop_index name=idx_users_is_email_verified table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_is_email_verified;

-- pgrollout:step drop_index name=idx_users_unverified_email table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_unverified_email;

-- pgrollout:step drop_index name=idx_users_two_factor_enabled table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_two_factor_enabled;

-- pgrollout:step drop_index name=idx_users_mfa_not_enabled table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_mfa_not_enabled;

-- pgrollout:step drop_index name=idx_users_force_password_change table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_force_password_change;

-- pgrollout:step drop_index name=idx_users_password_rotation table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_password_rotation;

-- pgrollout:step drop_index name=idx_users_failed_login_monitoring table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_failed_login_monitoring;

-- pgrollout:step drop_index name=idx_users_active_lockouts table=users
DROP INDEX CONCURRENTLY IF EXISTS idx_users_active_lockouts;
