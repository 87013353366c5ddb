/* test_injection.c - SQL injection through every identifier or value a job, a file or an operator
 * gives pgrollout: an index name, a table name and a second statement in migration files (lint,
 * plan, the agent, a rollout), a tenant id (agent configuration, plan, --tenant, status), a
 * rollout name and operator names (run, approve, pause, abort, report). Each is either refused
 * with an error naming where it came from, changing nothing, or stored verbatim as a value; the
 * tenant and control tables are intact and hold their rows afterwards. */
#include "rollout_env.h"

#include <jansson.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];
static char plain_db[64];

/* Hostile strings. The shell gets them in single quotes (double quotes for the tenant id). */
#define EVIL_TENANT   "t1'; DROP TABLE tenants; --"
#define EVIL_ROLLOUT  "r1\"); DROP TABLE pgrollout_control.rollouts; --"
#define EVIL_OP_RUN   "o\"; DROP TABLE pgrollout.schema_migrations; -- <script>x</script>"
#define EVIL_OP_PAUSE "p\"); DELETE FROM pgrollout_control.operator_log; -- %s%n"
#define EVIL_OP_APPR  "a$1\\\"); UPDATE pgrollout_control.rollouts SET state = $$x$$; --"
#define EVIL_OP_ABORT "x\" OR \"1\"=\"1"

static int setup(void **state)
{
    (void)state;
    /* two tenants (a keyring line needs one each); the rollout uses district-001 (agent 1) */
    fleet_setup_n(&F, 2, 4 * 1024 * 1024);
    itest_create_db("sec_inj", plain_db, sizeof(plain_db));
    itest_load_white_cross(plain_db, 1, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.agent_pid[0] > 0)
        assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    itest_drop_db(plain_db);
    itest_drop_db(F.db[0]);
    itest_drop_db(F.db[1]);
    itest_drop_db(F.ctl_db);
    return 0;
}

/* Runs a command line built with printf-style arguments; returns the exit code. */
static int cmdf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cmdf(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return run_cmd(line, out, sizeof(out));
}

static void expect_exit(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s exited %d, want %d:\n%s", what, got, want, out);
}

static void expect_out(const char *fragment)
{
    if (strstr(out, fragment) == NULL)
        fail_msg("output lacks \"%s\":\n%s", fragment, out);
}

/* The tenant database as it was: every table, its rows, no pgrollout state, no new index. */
static void tenant_untouched(const char *dbname)
{
    PGconn *c = itest_connect(dbname);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
                     8);
    assert_int_equal(itest_scalar(c, "SELECT ((SELECT count(*) FROM students) > 0 AND (SELECT "
                                     "count(*) FROM users) > 0 AND (SELECT count(*) FROM "
                                     "medication_logs) > 0)::int"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
                                     "'pgrollout%'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE "
                                     "'idx\\_%'"),
                     0);
    PQfinish(c);
}

/* A directory with one migration file holding `up` as its up part. */
static void write_migration(char *dir, size_t dirlen, const char *file, const char *up)
{
    char path[512], text[4096];
    snprintf(dir, dirlen, "/tmp/pgrinj.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(text, sizeof(text),
             "-- pgrollout:up\n%s-- pgrollout:down\n-- pgrollout:step drop_index name=idx_x "
             "table=students\nDROP INDEX CONCURRENTLY IF EXISTS idx_x;\n",
             up);
    itest_write_file(path, text);
}

/* lint, plan and the agent refuse the file at line 2, and the tenant is untouched. */
static void file_refused(const char *file, const char *up, const char *why)
{
    char dir[64], where[512];
    write_migration(dir, sizeof(dir), file, up);
    snprintf(where, sizeof(where), "%s/%s:2: ", dir, file);
    expect_exit(cmdf(COORD_BIN " lint %s", dir), 1, "pgrollout lint");
    expect_out(where);
    expect_out(why);
    expect_exit(cmdf(COORD_BIN " plan --migrations %s", dir), 2, "pgrollout plan");
    expect_out(where);
    expect_out(why);
    expect_exit(cmdf(AGENT_BIN " apply --dsn dbname=%s --migrations %s", plain_db, dir), 2,
                "pgrollout-agent apply");
    expect_out(where);
    expect_out(why);
    tenant_untouched(plain_db);
    snprintf(where, sizeof(where), "%s/%s", dir, file);
    assert_int_equal(unlink(where), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_injection_migration_identifiers_are_refused(void **state)
{
    (void)state;
    /* an index name that closes the quotes the executor would put around it */
    file_refused("20260101000000-evil-index.sql",
                 "-- pgrollout:step index name=idx\"; DROP TABLE students; -- table=students\n"
                 "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"idx\"\"; DROP TABLE students; --\" "
                 "ON students (id);\n",
                 "invalid value for attribute \"name\"");
    /* table names with a quote and a semicolon, for an index and for a foreign key */
    file_refused("20260101000001-evil-table.sql",
                 "-- pgrollout:step index name=idx_x table=students\";DROP\n"
                 "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_x ON students (id);\n",
                 "invalid value for attribute \"table\"");
    file_refused("20260101000002-evil-fk.sql",
                 "-- pgrollout:step foreign_key name=fk_x table=medication_logs;DROP "
                 "columns=medicationId ref_table=medications ref_columns=id orphans=abort\n",
                 "invalid value for attribute \"table\"");
    file_refused("20260101000003-evil-columns.sql",
                 "-- pgrollout:step foreign_key name=fk_x table=medication_logs "
                 "columns=a\"),(b ref_table=medications ref_columns=id orphans=abort\n",
                 "invalid value for attribute \"columns\"");
    /* valid names, but a second statement behind the index */
    file_refused("20260101000004-smuggled.sql",
                 "-- pgrollout:step index name=idx_x table=students\n"
                 "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_x ON students (id); DROP TABLE IF "
                 "EXISTS students; --\n",
                 "step \"index\" must hold exactly one SQL statement");
}

static void test_injection_tenant_ids_are_refused(void **state)
{
    (void)state;
    char path[256], text[8192];
    /* the agent's configuration: refused at start, naming the file */
    snprintf(path, sizeof(path), "%s/agent1.ini", F.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    snprintf(text + n, sizeof(text) - n, EVIL_TENANT " = dbname=%s\n", plain_db);
    snprintf(path, sizeof(path), "%s/evil-agent.ini", F.dir);
    itest_write_file(path, text);
    /* timeout: an agent that took the file would run until stopped */
    expect_exit(cmdf("timeout 30 " AGENT_BIN " run --config %s", path), 2, "pgrollout-agent run");
    expect_out(path);
    expect_out("invalid tenant id");
    /* --tenant of the standalone agent */
    expect_exit(cmdf(AGENT_BIN " apply --dsn dbname=%s --migrations " MIGS " --tenant \"%s\"",
                     plain_db, EVIL_TENANT),
                2, "pgrollout-agent apply --tenant");
    expect_out("--tenant: invalid tenant id");
    tenant_untouched(plain_db);
    /* a plan: refused by plan --plan and by run, before any rollout is recorded */
    snprintf(path, sizeof(path), "%s/evil-plan.json", F.dir);
    snprintf(text, sizeof(text),
             "{\"name\": \"evil-tenant\", \"migrations\": \"" MIGS "\", \"tenants\": "
             "[\"district-001\", \"%s\"]}",
             EVIL_TENANT);
    itest_write_file(path, text);
    expect_exit(cmdf(COORD_BIN " plan --plan %s", path), 2, "pgrollout plan --plan");
    expect_out("tenants[1]: expected a tenant id");
    expect_exit(cmdf(COORD_BIN " run --config %s/coord.ini --plan %s --timeout 30", F.dir, path), 2,
                "pgrollout run");
    expect_out("tenants[1]: expected a tenant id");
    tenant_untouched(F.db[0]);
}

/* Every table of the control schema is still there. */
static void control_intact(PGconn *ctl)
{
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                                       "'pgrollout_control' AND tablename IN ('rollouts', "
                                       "'rollout_waves', 'tenant_runs', 'tenants', "
                                       "'operator_log', 'audit_log')"),
                     6);
}

/* Exactly one row of operator_log has this action and operator (a parameter, verbatim). */
static void logged(PGconn *ctl, const char *action, const char *op)
{
    const char *params[] = {EVIL_ROLLOUT, action, op};
    PGresult *r = PQexecParams(ctl,
                               "SELECT count(*) FROM pgrollout_control.operator_log WHERE "
                               "rollout_id = $1 AND action = $2 AND operator = $3",
                               3, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (strcmp(PQgetvalue(r, 0, 0), "1") != 0)
        fail_msg("operator_log: %s rows for action %s by \"%s\"", PQgetvalue(r, 0, 0), action, op);
    PQclear(r);
}

/* A rollout with a hostile name and operator: the name and operator reach the tenant's
 * history as values; the rollout waits for a manual approval. */
static void run_evil_rollout(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/plan.json", F.dir);
    itest_write_file(path, "{\"name\": \"r1\\\"); DROP TABLE pgrollout_control.rollouts; --\", "
                           "\"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "
                           "\"tenants\": [\"district-001\"], \"waves\": [{\"name\": \"w1\\\" --\", "
                           "\"tenants\": [\"district-001\"], \"approval\": \"manual\"}]}");
    expect_exit(cmdf(COORD_BIN " run --config %s/coord.ini --plan %s --timeout 240 "
                               "--operator '%s'",
                     F.dir, path, EVIL_OP_RUN),
                4, "pgrollout run (waits for approval)");
    PGconn *c = itest_connect(F.db[0]);
    const char *params[] = {EVIL_OP_RUN};
    PGresult *r = PQexecParams(c,
                               "SELECT count(*) FROM pgrollout.schema_migrations WHERE status = "
                               "'applied' AND operator = $1",
                               1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "4");
    PQclear(r);
    assert_true(itest_scalar(c, "SELECT count(*) FROM students") > 0);
    PQfinish(c);
}

static void operator_commands(PGconn *ctl)
{
    expect_exit(cmdf(COORD_BIN " approve '%s' --config %s/coord.ini --operator '%s'", EVIL_ROLLOUT,
                     F.dir, EVIL_OP_APPR),
                0, "pgrollout approve");
    const char *params[] = {EVIL_ROLLOUT, EVIL_OP_APPR};
    PGresult *r = PQexecParams(ctl,
                               "SELECT count(*) FROM pgrollout_control.rollout_waves WHERE "
                               "rollout_id = $1 AND approved_by = $2 AND name = 'w1\" --'",
                               2, NULL, params, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    expect_exit(cmdf(COORD_BIN " pause '%s' --config %s/coord.ini --operator '%s'", EVIL_ROLLOUT,
                     F.dir, EVIL_OP_PAUSE),
                0, "pgrollout pause");
    expect_out(EVIL_OP_PAUSE); /* printed as a value, not used as a format */
    expect_exit(cmdf(COORD_BIN " abort '%s' --config %s/coord.ini --operator '%s'", EVIL_ROLLOUT,
                     F.dir, EVIL_OP_ABORT),
                0, "pgrollout abort");
    logged(ctl, "approve", EVIL_OP_APPR);
    logged(ctl, "pause", EVIL_OP_PAUSE);
    logged(ctl, "abort", EVIL_OP_ABORT);
    const char *p1[] = {EVIL_ROLLOUT, EVIL_OP_RUN};
    r = PQexecParams(ctl,
                     "SELECT count(*) FROM pgrollout_control.rollouts WHERE rollout_id = $1 AND "
                     "operator = $2 AND state = 'aborted'",
                     2, NULL, p1, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
}

/* status --json is valid JSON holding the name; the HTML report escapes the markup. */
static void outputs_escape(void)
{
    expect_exit(cmdf(COORD_BIN " status '%s' --config %s/coord.ini --json", EVIL_ROLLOUT, F.dir), 0,
                "pgrollout status");
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    if (doc == NULL)
        fail_msg("status --json is not JSON (%s):\n%s", je.text, out);
    json_decref(doc);
    char html[256];
    snprintf(html, sizeof(html), "%s/report.html", F.dir);
    expect_exit(
        cmdf(COORD_BIN " report '%s' --html %s --config %s/coord.ini", EVIL_ROLLOUT, html, F.dir),
        0, "pgrollout report");
    FILE *h = fopen(html, "r");
    assert_non_null(h);
    size_t n = fread(out, 1, sizeof(out) - 1, h);
    out[n] = '\0';
    fclose(h);
    assert_null(strstr(out, "<script"));
    expect_out("&lt;script&gt;x&lt;/script&gt;");
    expect_out("r1&quot;); DROP TABLE pgrollout_control.rollouts; --");
    /* an unknown rollout whose name is SQL is just unknown */
    expect_exit(cmdf(COORD_BIN " status \"x'; DROP TABLE pgrollout_control.tenants; --\" "
                               "--config %s/coord.ini",
                     F.dir),
                1, "pgrollout status (unknown)");
    expect_out("no rollout");
}

static void test_injection_rollout_and_operator_names_are_values(void **state)
{
    (void)state;
    fleet_start_agent(&F, 0);
    run_evil_rollout();
    PGconn *ctl = itest_connect(F.ctl_db);
    operator_commands(ctl);
    outputs_escape();
    control_intact(ctl);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.rollouts"), 1);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenants WHERE "
                                       "tenant_id = 'district-001'"),
                     1);
    PQfinish(ctl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injection_migration_identifiers_are_refused),
        cmocka_unit_test(test_injection_tenant_ids_are_refused),
        cmocka_unit_test(test_injection_rollout_and_operator_names_are_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
