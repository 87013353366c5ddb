/* test_executor.c - pgrollout-agent apply/rollback/status/verify against real PostgreSQL 15:
 * the four White Cross migrations on fixture tenants, orphans, invalid leftovers, lock waits
 * with retries, drift, the runner lock, backups and the audit hash chain. */
#include "agent_run.h"

#include <sodium.h>
#include <sys/stat.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static char out[1 << 20];

static void new_tenant(char *db, size_t len, int scale, int orphans)
{
    itest_create_db("itest_exec", db, len);
    itest_load_white_cross(db, scale, orphans);
}

/* Removes a migrations directory the test wrote (a mkdtemp name). */
static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static long count_valid_indexes(PGconn *c)
{
    return itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = "
                           "i.indexrelid WHERE x.relname LIKE 'idx\\_%' AND i.indisvalid");
}

static long fk_validated(PGconn *c)
{
    return itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                           "'fk_medication_logs_medication_id' AND convalidated");
}

static void test_executor_apply_twice_rollback_and_apply_again(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *c = itest_connect(db);
    assert_int_equal(agent("apply", db, MIGS, "--operator alice", out, sizeof(out)), 0);
    assert_int_equal(count_valid_indexes(c), 34);
    assert_int_equal(fk_validated(c), 1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'applied' AND operator = 'alice'"),
                     4);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.steps WHERE part = 'up' "
                                     "AND phase = 'done'"),
                     37);
    /* no orphan: the foreign key was added validated in one transaction, never NOT VALID */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'fk_added' AND "
                                     "(record::jsonb->>'orphans')::int = 0"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'fk_added_not_valid'"),
                     0);
    /* state version 3: job envelopes are stored uncompressed (4: the pool owner table) */
    const char *storage = "SELECT (SELECT max(version) FROM pgrollout.state_version) * 1000 + "
                          "ascii(attstorage) FROM pg_attribute WHERE attrelid = "
                          "'pgrollout.jobs'::regclass AND attname = 'envelope'";
    assert_int_equal(itest_scalar(c, storage), 4000 + 'e');
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.owner"), 0);
    /* a tenant set up by an older agent (version 2) is brought to 4 by the next run */
    itest_exec(c, "DELETE FROM pgrollout.state_version WHERE version >= 3; ALTER TABLE "
                  "pgrollout.jobs ALTER COLUMN envelope SET STORAGE EXTENDED; DROP TABLE "
                  "pgrollout.owner");
    assert_int_equal(itest_scalar(c, storage), 2000 + 'x');
    char *first = catalog_snapshot(c);
    /* a second apply runs no step */
    assert_int_equal(agent("apply", db, MIGS, "--json", out, sizeof(out)), 0);
    assert_null(strstr(out, "\"event\":\"step_start\""));
    assert_null(strstr(out, "\"event\":\"migration_start\""));
    assert_int_equal(itest_scalar(c, storage), 4000 + 'e');
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.owner"), 0);
    assert_int_equal(agent("verify", db, MIGS, "", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "verify: 0 problem(s)"));
    /* roll everything back */
    assert_int_equal(agent("rollback", db, MIGS, "--to 0", out, sizeof(out)), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'idx\\_%'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'rolled_back'"),
                     4);
    assert_int_equal(agent("status", db, MIGS, "--json", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"state\": \"rolled_back\""));
    /* and apply again: the same catalog as the first time */
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 0);
    char *again = catalog_snapshot(c);
    assert_string_equal(first, again);
    free(first);
    free(again);
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_rollback_to_a_version(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *c = itest_connect(db);
    assert_int_equal(agent("apply", db, MIGS, "--target 20251106000001", out, sizeof(out)), 0);
    assert_int_equal(count_valid_indexes(c), 12);
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 0);
    assert_int_equal(count_valid_indexes(c), 34);
    assert_int_equal(agent("rollback", db, MIGS, "--to 20251106000001", out, sizeof(out)), 0);
    assert_int_equal(count_valid_indexes(c), 12);
    assert_int_equal(fk_validated(c), 1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                     "('pg_trgm', 'unaccent')"),
                     2);
    assert_int_equal(agent("rollback", db, MIGS, "", out, sizeof(out)), 2); /* --to required */
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_orphans_abort_then_quarantine(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 7);
    PGconn *c = itest_connect(db);
    long before = itest_scalar(c, "SELECT count(*) FROM medication_logs");
    /* abort: exact count, first ids, nothing changed */
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 1);
    assert_non_null(strstr(out, "7 orphan row(s) in \"medication_logs\""));
    assert_non_null(strstr(out, "first ids: "));
    assert_non_null(strstr(out, "nothing was changed"));
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM medication_logs"), before);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT (to_regclass('pgrollout_quarantine.medication_logs') "
                                     "IS NOT NULL)::int"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'orphans_found' AND "
                                     "(record::jsonb->>'orphans')::int = 7"),
                     1);
    /* quarantine: the orphans move, the counts add up, the constraint is validated */
    assert_int_equal(agent("apply", db, MIGS, "--orphans quarantine", out, sizeof(out)), 0);
    long after = itest_scalar(c, "SELECT count(*) FROM medication_logs");
    long moved = itest_scalar(c, "SELECT count(*) FROM pgrollout_quarantine.medication_logs "
                                 "WHERE pgr_job_id IS NOT NULL AND pgr_quarantined_at IS NOT NULL");
    assert_int_equal(moved, 7);
    assert_int_equal(before, after + moved);
    assert_int_equal(fk_validated(c), 1);
    assert_int_equal(count_valid_indexes(c), 34);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'fk_added_not_valid' AND "
                                     "(record::jsonb->>'quarantined')::int = 7"),
                     1);
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_invalid_leftover_is_dropped_and_rebuilt(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *c = itest_connect(db);
    /* a failed concurrent build leaves an INVALID index of the name a migration uses */
    PGresult *r = PQexec(c, "CREATE UNIQUE INDEX CONCURRENTLY idx_allergies_severity_active ON "
                            "allergies (severity)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND "
                                     "indexrelid = 'idx_allergies_severity_active'::regclass"),
                     1);
    assert_int_equal(agent("apply", db, MIGS, "--json", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"action\":\"invalid_index_dropped\""));
    assert_int_equal(count_valid_indexes(c), 34);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                     "'idx_allergies_severity_active' AND indexdef NOT LIKE "
                                     "'%UNIQUE%' AND indexdef LIKE '%(severity, active, "
                                     "\"deletedAt\")%'"),
                     1);
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_valid_index_with_other_definition_is_drift(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *c = itest_connect(db);
    /* the older upstream migration's index of the same name (facts file, inconsistency 7) */
    itest_exec(c, "CREATE INDEX idx_student_medications_active_dates ON student_medications "
                  "(\"isActive\", \"startDate\", \"endDate\") WHERE \"isActive\" = true");
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 3);
    assert_non_null(strstr(out, "idx_student_medications_active_dates\" already exists with a "
                                "different definition"));
    /* the old index is untouched */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                     "'idx_student_medications_active_dates' AND indexdef LIKE "
                                     "'%WHERE%'"),
                     1);
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_lock_wait_retries_and_app_is_not_blocked(void **state)
{
    char db[64];
    bg_agent b;
    int retries = 0;
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *holder = itest_connect(db);
    PGconn *app = itest_connect(db);
    itest_exec(holder, "BEGIN");
    itest_exec(holder, "LOCK TABLE allergies IN SHARE UPDATE EXCLUSIVE MODE");
    bg_start(&b, "apply", db, MIGS, "--lock-timeout 500 --retries 20 --target 20251106000001");
    assert_non_null(bg_wait_for(&b, "\"event\":\"retry\"", "idx_allergies_severity_active"));
    /* while the migration waits and retries, the application keeps working on allergies */
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double t0 = now_s();
        itest_exec(app, "UPDATE allergies SET verified = verified WHERE id = (SELECT id FROM "
                        "allergies ORDER BY id LIMIT 1)");
        itest_exec(app, "SELECT count(*) FROM allergies");
        double dt = now_s() - t0;
        worst = dt > worst ? dt : worst;
        struct timespec pause = {0, 200000000L};
        nanosleep(&pause, NULL);
    }
    print_message("worst application query latency while blocked: %.1f ms (lock timeout 500)\n",
                  worst * 1000);
    assert_true(worst < 0.5);
    itest_exec(holder, "COMMIT");
    assert_int_equal(bg_finish(&b, "\"event\":\"retry\"", &retries), 0);
    PGconn *c = itest_connect(db);
    assert_int_equal(count_valid_indexes(c), 12);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), 0);
    PQfinish(c);
    PQfinish(holder);
    PQfinish(app);
    itest_drop_db(db);
}

static void test_executor_drift_is_refused_with_exit_3(void **state)
{
    char db[64], dir[64], cmd[512];
    (void)state;
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    snprintf(cmd, sizeof(cmd), "cp " MIGS "/*.sql %s/", dir);
    assert_int_equal(system(cmd), 0);
    new_tenant(db, sizeof(db), 1, 0);
    assert_int_equal(agent("apply", db, dir, "", out, sizeof(out)), 0);
    /* one character of an applied migration changes */
    snprintf(cmd, sizeof(cmd),
             "sed -i 's/\"failedLoginAttempts\" >= 3/\"failedLoginAttempts\" >= 4/' "
             "%s/20251106000002-add-user-security-indexes.sql",
             dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(agent("apply", db, dir, "", out, sizeof(out)), 3);
    assert_non_null(strstr(out, "drift: migration 20251106000002"));
    assert_int_equal(agent("status", db, dir, "", out, sizeof(out)), 3);
    assert_non_null(strstr(out, " drift "));
    assert_non_null(strstr(out, "DRIFT: an applied migration differs from its file"));
    itest_drop_db(db);
}

static void test_executor_second_runner_is_refused(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *other = itest_connect(db);
    itest_exec(other, "SELECT pg_advisory_lock(1886545775, 1)");
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 3);
    assert_non_null(strstr(out, "another migration is running"));
    itest_exec(other, "SELECT pg_advisory_unlock(1886545775, 1)");
    assert_int_equal(agent("apply", db, MIGS, "", out, sizeof(out)), 0);
    PQfinish(other);
    itest_drop_db(db);
}

/* After generated steps the agent skips its session check (and runs prepared bookkeeping
 * statements); user SQL in between must bring both back: DEALLOCATE ALL does not break the next
 * step, and a released runner lock stops the run before the next step. */
static void test_executor_user_sql_is_checked_before_the_next_step(void **state)
{
    char db[64], dir[64], path[128];
    (void)state;
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    snprintf(path, sizeof(path), "%s/20251201000000-session-games.sql", dir);
    itest_write_file(
        path, "-- 20251201000000 session-games\n-- pgrollout:up\n\n"
              "-- pgrollout:step index name=idx_pgr_a table=allergies\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_a ON allergies (severity);\n\n"
              "-- pgrollout:step sql\nDEALLOCATE ALL;\n\n"
              "-- pgrollout:step index name=idx_pgr_b table=allergies\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_b ON allergies (active);\n\n"
              "-- pgrollout:down\n\n-- pgrollout:step drop_index name=idx_pgr_b table=allergies\n"
              "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_b;\n\n"
              "-- pgrollout:step drop_index name=idx_pgr_a table=allergies\n"
              "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_a;\n");
    snprintf(path, sizeof(path), "%s/20251201000001-release-lock.sql", dir);
    itest_write_file(
        path,
        "-- 20251201000001 release-lock\n-- pgrollout:up\n\n"
        "-- pgrollout:step sql\nSELECT pg_advisory_unlock_all();\n\n"
        "-- pgrollout:step index name=idx_pgr_c table=allergies\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_c ON allergies (severity, active);\n\n"
        "-- pgrollout:down\n\n-- pgrollout:step drop_index name=idx_pgr_c table=allergies\n"
        "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_c;\n");
    new_tenant(db, sizeof(db), 1, 0);
    assert_int_equal(agent("apply", db, dir, "", out, sizeof(out)), 3);
    assert_non_null(strstr(out, "the runner lock of tenant"));
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname IN "
                                     "('idx_pgr_a', 'idx_pgr_b')"),
                     2);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname = 'idx_pgr_c'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "version = '20251201000000' AND status = 'applied'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "version = '20251201000001' AND status = 'failed'"),
                     1);
    PQfinish(c);
    remove_dir(dir);
    itest_drop_db(db);
}

/* A database whose search_path starts with the state schema: migration SQL still creates its
 * unqualified objects where it would without pgrollout (ARCHITECTURE.md 9.1), on the run that
 * creates the state schema and on a later one that finds it; and it plans with the server's
 * plan_cache_mode, not the agent's session setting, also after an index step (whose check set
 * the agent's setting again). */
static void test_executor_state_schema_stays_out_of_search_path(void **state)
{
    char db[64], dir[64], path[128], sql[1024];
    (void)state;
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/2025120200000%d-probe-%d.sql", dir, i, i);
        snprintf(sql, sizeof(sql),
                 "-- 2025120200000%d probe-%d\n-- pgrollout:up\n\n-- pgrollout:step sql\n"
                 "CREATE TABLE pin_probe_%d AS SELECT current_setting('plan_cache_mode') AS "
                 "mode;\n\n-- pgrollout:step index name=pinx_%d table=pin_probe_%d\n"
                 "CREATE INDEX CONCURRENTLY IF NOT EXISTS pinx_%d ON pin_probe_%d (mode);\n\n"
                 "-- pgrollout:step sql\n"
                 "CREATE TABLE pin_after_%d AS SELECT current_setting('plan_cache_mode') AS "
                 "mode;\n\n-- pgrollout:down\n\n"
                 "-- pgrollout:step sql\nDROP TABLE pin_after_%d;\n\n"
                 "-- pgrollout:step drop_index name=pinx_%d table=pin_probe_%d\n"
                 "DROP INDEX CONCURRENTLY IF EXISTS pinx_%d;\n\n"
                 "-- pgrollout:step sql\nDROP TABLE pin_probe_%d;\n",
                 i, i, i, i, i, i, i, i, i, i, i, i, i);
        itest_write_file(path, sql);
    }
    new_tenant(db, sizeof(db), 1, 0);
    PGconn *c = itest_connect(db);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET search_path = pgrollout, public", db);
    itest_exec(c, sql);
    const char *where = "SELECT coalesce(string_agg(n.nspname || '.' || c.relname, ',' ORDER BY "
                        "c.relname), '') FROM pg_class c JOIN pg_namespace n ON n.oid = "
                        "c.relnamespace WHERE c.relname LIKE 'pin\\_probe\\_%'";
    snprintf(sql, sizeof(sql), "--target 20251202000000");
    assert_int_equal(agent("apply", db, dir, sql, out, sizeof(out)), 0);
    PGresult *r = PQexec(c, where);
    assert_string_equal(PQgetvalue(r, 0, 0), "public.pin_probe_0");
    PQclear(r);
    assert_int_equal(agent("apply", db, dir, "", out, sizeof(out)), 0);
    r = PQexec(c, where);
    assert_string_equal(PQgetvalue(r, 0, 0), "public.pin_probe_0,public.pin_probe_1");
    PQclear(r);
    /* and the author's SQL plans as the server says (the agent's own statements do not), also
     * in the step after an index step */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM public.pin_probe_0 p0, "
                                     "public.pin_probe_1 p1, public.pin_after_0 a0, "
                                     "public.pin_after_1 a1 WHERE p0.mode = 'auto' AND "
                                     "p1.mode = 'auto' AND a0.mode = 'auto' AND a1.mode = 'auto'"),
                     1);
    PQfinish(c);
    remove_dir(dir);
    itest_drop_db(db);
}

static void test_executor_backup_is_private_verified_and_audited(void **state)
{
    char db[64], dir[64], extra[128];
    struct stat st;
    (void)state;
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    new_tenant(db, sizeof(db), 1, 0);
    snprintf(extra, sizeof(extra), "--backup %s --target 20251106000000", dir);
    assert_int_equal(agent("apply", db, MIGS, extra, out, sizeof(out)), 0);
    PGconn *c = itest_connect(db);
    PGresult *r = PQexec(c, "SELECT record::jsonb->>'file', record::jsonb->>'sha256', "
                            "record::jsonb->>'bytes' FROM pgrollout.audit_outbox WHERE "
                            "record::jsonb->>'action' = 'backup'");
    assert_int_equal(PQntuples(r), 1);
    const char *file = PQgetvalue(r, 0, 0);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal((long)st.st_size, strtol(PQgetvalue(r, 0, 2), NULL, 10));
    char cmd[1024], sum[128];
    snprintf(cmd, sizeof(cmd), "sha256sum %s | cut -c1-64", file);
    assert_int_equal(run_cmd(cmd, sum, sizeof(sum)), 0);
    assert_memory_equal(sum, PQgetvalue(r, 0, 1), 64);
    PQclear(r);
    /* a backup directory that does not exist: nothing is migrated */
    assert_int_equal(agent("apply", db, MIGS, "--backup /nonexistent/dir", out, sizeof(out)), 1);
    assert_non_null(strstr(out, "backup directory \"/nonexistent/dir\" does not exist"));
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations"), 1);
    PQfinish(c);
    itest_drop_db(db);
}

static void test_executor_audit_chain_verifies_and_holds_no_phi(void **state)
{
    char db[64];
    uint8_t prev[32] = {0};
    (void)state;
    new_tenant(db, sizeof(db), 1, 3);
    assert_int_equal(agent("apply", db, MIGS, "--orphans quarantine", out, sizeof(out)), 0);
    PGconn *c = itest_connect(db);
    PGresult *r = PQexec(c, "SELECT seq, prev_hash, hash, record FROM pgrollout.audit_outbox "
                            "ORDER BY seq");
    PGresult *names = PQexec(c, "SELECT \"firstName\", \"lastName\" FROM students "
                                "UNION SELECT name, \"genericName\" FROM medications");
    assert_true(PQntuples(r) > 40);
    for (int i = 0; i < PQntuples(r); i++) {
        char hex[65], prev_hex[65];
        uint8_t d[32];
        const char *rec = PQgetvalue(r, i, 3);
        assert_int_equal(strtol(PQgetvalue(r, i, 0), NULL, 10), i + 1);
        sodium_bin2hex(prev_hex, sizeof(prev_hex), prev, 32);
        assert_string_equal(PQgetvalue(r, i, 1), prev_hex);
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, prev, 32);
        crypto_hash_sha256_update(&st, (const unsigned char *)rec, strlen(rec));
        crypto_hash_sha256_final(&st, d);
        sodium_bin2hex(hex, sizeof(hex), d, 32);
        assert_string_equal(PQgetvalue(r, i, 2), hex);
        memcpy(prev, d, 32);
        for (int n = 0; n < PQntuples(names); n++) {
            for (int f = 0; f < 2; f++) {
                const char *v = PQgetvalue(names, n, f);
                if (strlen(v) >= 4 && strstr(rec, v) != NULL)
                    fail_msg("audit record %d holds the value \"%s\"", i + 1, v);
            }
        }
    }
    PQclear(names);
    PQclear(r);
    PQfinish(c);
    itest_drop_db(db);
}

/* A data error whose PostgreSQL message quotes the offending value (here a PHI-looking name):
 * neither the operator's output, nor the jobs table, nor the audit chain may carry it. */
static void test_executor_data_errors_never_leak_values(void **state)
{
    char db[64], dir[64], path[128];
    (void)state;
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    snprintf(path, sizeof(path), "%s/20260101000000-phi-probe.sql", dir);
    itest_write_file(
        path, "-- pgrollout:up\n-- pgrollout:step sql phi\nUPDATE students SET \"dateOfBirth\" = "
              "'Zo\xc3\xab \xc3\x93lafsd\xc3\xb3ttir 2014'::date WHERE false;\n"
              "-- pgrollout:down\n-- pgrollout:step sql\nSELECT 1;\n");
    new_tenant(db, sizeof(db), 1, 0);
    assert_int_equal(agent("apply", db, dir, "--json", out, sizeof(out)), 1);
    assert_null(strstr(out, "lafsd"));
    assert_non_null(strstr(out, "SQLSTATE 22007"));
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE record "
                                     "LIKE '%lafsd%' OR record LIKE '%\\u00d3%'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE error LIKE "
                                     "'%lafsd%'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'step_failed' AND "
                                     "(record::jsonb->>'phi')::boolean"),
                     1);
    PQfinish(c);
    itest_drop_db(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_apply_twice_rollback_and_apply_again),
        cmocka_unit_test(test_executor_rollback_to_a_version),
        cmocka_unit_test(test_executor_orphans_abort_then_quarantine),
        cmocka_unit_test(test_executor_invalid_leftover_is_dropped_and_rebuilt),
        cmocka_unit_test(test_executor_valid_index_with_other_definition_is_drift),
        cmocka_unit_test(test_executor_lock_wait_retries_and_app_is_not_blocked),
        cmocka_unit_test(test_executor_drift_is_refused_with_exit_3),
        cmocka_unit_test(test_executor_second_runner_is_refused),
        cmocka_unit_test(test_executor_user_sql_is_checked_before_the_next_step),
        cmocka_unit_test(test_executor_state_schema_stays_out_of_search_path),
        cmocka_unit_test(test_executor_backup_is_private_verified_and_audited),
        cmocka_unit_test(test_executor_audit_chain_verifies_and_holds_no_phi),
        cmocka_unit_test(test_executor_data_errors_never_leak_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
