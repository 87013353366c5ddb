-- 20251106000001 add-missing-critical-indexes
--
-- Source: harborgrid-justin/white-cross,
--   backend/src/database/migrations/20251106000001-add-missing-critical-indexes.js
--   (added at 4ece9be1390883fab9014c08ab747d5338ac2d84, never changed afterwards).
--
-- What it does: 12 B-tree indexes, in the original order:
--   allergies 4 (#1-#4), chronic_conditions 4 (#5-#8), student_medications 4 (#9-#12).
--   7 are partial (#3, #4, #5, #6, #8, #11, #12), 5 are plain (#1, #2, #7, #9, #10).
--   Names, tables, key columns, column order and predicates are exactly the original ones.
--
-- Deviations from the original, and why:
--   1. Every index is built CREATE INDEX CONCURRENTLY IF NOT EXISTS, one step per index, outside
--      any transaction. The original built all 12 inside one transaction with plain CREATE INDEX,
--      taking a write-blocking SHARE lock on each table and holding every lock until the commit.
--      Its header asked to switch the five ORM-helper builds (#1, #2, #7, #9, #10) to
--      concurrently: true, which PostgreSQL refuses inside a transaction block. A concurrent build
--      takes SHARE UPDATE EXCLUSIVE: reads and writes continue.
--   2. #1, #2, #7, #9 and #10 were issued by the ORM helper without IF NOT EXISTS; here they have it,
--      like the other seven.
--   3. Idempotency: the executor drops an INVALID leftover of the same name (from a failed
--      concurrent build) before building, and checks indisvalid after. The original looked the name
--      up in pg_indexes without a schema filter or validity check, so an invalid or different
--      index of that name counted as done.
--   4. The migration is no longer all-or-nothing: a concurrent build cannot run in a transaction.
--      A failure leaves the indexes built so far in place; rerunning the job finishes the rest.
--
-- Known caveat kept: an older upstream migration (20251011000000-performance-indexes) creates an
-- index named idx_student_medications_active_dates with a different definition
-- (("isActive","startDate","endDate") WHERE "isActive" = true). On such a tenant IF NOT EXISTS
-- keeps the old definition, as the original did.
--
-- No step touches PHI columns (flags, dates, ids, severities and statuses only).
--
-- Down: the 12 indexes dropped CONCURRENTLY IF EXISTS, in reverse order (the original dropped
-- them in creation order with a plain DROP INDEX, which takes ACCESS EXCLUSIVE on the table).

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_severity_active table=allergies
-- #1 (plain)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_severity_active ON allergies USING btree (severity, active, "deletedAt");

-- pgrollout:step index name=idx_allergies_student_type_active table=allergies
-- #2 (plain)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_type_active ON allergies USING btree ("studentId", "allergyType", active);

-- pgrollout:step index name=idx_allergies_epipen_expiration table=allergies
-- #3 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_epipen_expiration ON allergies USING btree ("epiPenExpiration", "epiPenRequired", active) WHERE "epiPenRequired" = true AND active = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_allergies_unverified table=allergies
-- #4 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_unverified ON allergies USING btree (verified, severity, "createdAt") WHERE verified = false AND active = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_chronic_conditions_iep_compliance table=chronic_conditions
-- #5 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_iep_compliance ON chronic_conditions USING btree ("requiresIEP", status, "isActive", "nextReviewDate") WHERE "requiresIEP" = true AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_chronic_conditions_504_compliance table=chronic_conditions
-- #6 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_504_compliance ON chronic_conditions USING btree ("requires504", status, "isActive", "nextReviewDate") WHERE "requires504" = true AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_chronic_conditions_student_status table=chronic_conditions
-- #7 (plain)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_student_status ON chronic_conditions USING btree ("studentId", status, "isActive", "deletedAt");

-- pgrollout:step index name=idx_chronic_conditions_review_tracking table=chronic_conditions
-- #8 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_chronic_conditions_review_tracking ON chronic_conditions USING btree ("nextReviewDate", "isActive", status) WHERE "nextReviewDate" IS NOT NULL AND "isActive" = true AND "deletedAt" IS NULL;

-- pgrollout:step index name=idx_student_medications_active_dates table=student_medications
-- #9 (plain)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_student_medications_active_dates ON student_medications USING btree ("isActive", "startDate", "endDate", "studentId");

-- pgrollout:step index name=idx_student_medications_student_med table=student_medications
-- #10 (plain)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_student_medications_student_med ON student_medications USING btree ("studentId", "medicationId", "isActive");

-- pgrollout:step index name=idx_student_medications_refill_tracking table=student_medications
-- #11 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_student_medications_refill_tracking ON student_medications USING btree ("refillsRemaining", "studentId", "medicationId") WHERE "isActive" = true AND "refillsRemaining" IS NOT NULL AND "refillsRemaining" <= 2;

-- pgrollout:step index name=idx_student_medications_end_date_monitoring table=student_medications
-- #12 (partial)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_student_medications_end_date_monitoring ON student_medications USING btree ("endDate", "isActive", "studentId") WHERE "endDate" IS NOT NULL AND "isActive" = true;

-- pgrollout:down

-- pgrollout:step drop_index name=idx_student_medications_end_date_monitoring table=student_medications
DROP INDEX CONCURRENTLY IF EXISTS idx_student_medications_end_date_monitoring;

-- pgrollout:step drop_index name=idx_student_medications_refill_tracking table=student_medications
DROP INDEX CONCURRENTLY IF EXISTS idx_student_medications_refill_tracking;

-- pgrollout:step drop_index name=idx_student_medications_student_med table=student_medications
DROP INDEX CONCURRENTLY IF EXISTS idx_student_medications_student_med;

-- pgrollout:step drop_index name=idx_student_medications_active_dates table=student_medications
DROP INDEX CONCURRENTLY IF EXISTS idx_student_medications_active_dates;

-- pgrollout:step drop_index name=idx_chronic_conditions_review_tracking table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_review_tracking;

-- pgrollout:step drop_index name=idx_chronic_conditions_student_status table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_student_status;

-- pgrollout:step drop_index name=idx_chronic_conditions_504_compliance table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_504_compliance;

-- pgrollout:step drop_index name=idx_chronic_conditions_iep_compliance table=chronic_conditions
DROP INDEX CONCURRENTLY IF EXISTS idx_chronic_conditions_iep_compliance;

-- pgrollout:step drop_index name=idx_allergies_unverified table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_unverified;

-- pgrollout:step drop_index name=idx_allergies_epipen_expiration table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_epipen_expiration;

-- pgrollout:step drop_index name=idx_allergies_student_type_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_type_active;

-- pgrollout:step drop_index name=idx_allergies_severity_active table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_severity_active;
