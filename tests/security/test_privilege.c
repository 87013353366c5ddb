/* test_privilege.c - the agent's least-privilege role (docs/OPERATIONS.md, "Least privilege for
 * the agent's database role"): deploy/sql/agent-role.sql sets a White Cross tenant up exactly as
 * documented, pgrollout-agent applies (quarantining orphans), verifies and rolls back the four
 * migrations logged in as that role, the catalog shows all 34 indexes valid and the foreign key
 * validated, and everything the role must not do fails with a permission error: read a table
 * that is not a tenant table, create roles, schemas, extensions or temporary tables, write the
 * catalog, read server files, drop a database, connect to another tenant's database, read the
 * tables of a database not set up for it, and take a backup of a database it cannot fully read. */
#include "agent_run.h"

#include "pgr/migration.h"

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define ORPHANS 3

static char db[64], other_db[64], plain_db[64];
static char agent_role[64], owner_role[64], app_role[64], other_agent[64], other_owner[64];
static char out[1 << 20];

/* Runs deploy/sql/agent-role.sql on dbname as the superuser, as the docs say. */
static void role_script(const char *dbname, const char *agent_r, const char *owner_r,
                        const char *app_r)
{
    char vars[512];
    snprintf(vars, sizeof(vars), "-v agent_role=%s -v owner_role=%s -v app_role=%s", agent_r,
             owner_r, app_r);
    itest_psql_file(dbname, "deploy/sql/agent-role.sql", vars);
}

static void drop_role(PGconn *admin, const char *role)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
    itest_exec(admin, sql);
}

static void drop_roles(void)
{
    PGconn *admin = itest_connect("postgres");
    drop_role(admin, agent_role);
    drop_role(admin, other_agent);
    drop_role(admin, app_role);
    drop_role(admin, owner_role);
    drop_role(admin, other_owner);
    PQfinish(admin);
}

static int setup(void **state)
{
    (void)state;
    int pid = (int)getpid();
    snprintf(agent_role, sizeof(agent_role), "sec_agent_%d", pid);
    snprintf(owner_role, sizeof(owner_role), "sec_owner_%d", pid);
    snprintf(app_role, sizeof(app_role), "sec_app_%d", pid);
    snprintf(other_agent, sizeof(other_agent), "sec_agent_b_%d", pid);
    snprintf(other_owner, sizeof(other_owner), "sec_owner_b_%d", pid);
    drop_roles();
    PGconn *admin = itest_connect("postgres");
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN", app_role);
    itest_exec(admin, sql);
    PQfinish(admin);

    /* the tenant: White Cross tables with orphans, plus a table that is not the agent's */
    itest_create_db("sec_priv", db, sizeof(db));
    itest_load_white_cross(db, 1, ORPHANS);
    PGconn *c = itest_connect(db);
    itest_exec(c, "CREATE TABLE public.billing_accounts (id int PRIMARY KEY, card text);"
                  "INSERT INTO public.billing_accounts VALUES (1, '4111-1111-1111-1111')");
    PQfinish(c);
    role_script(db, agent_role, owner_role, app_role);
    /* another tenant on the same cluster, served by another agent role */
    itest_create_db("sec_priv_other", other_db, sizeof(other_db));
    itest_load_white_cross(other_db, 1, 0);
    role_script(other_db, other_agent, other_owner, "");
    /* a database nobody set up: PUBLIC may connect, the superuser owns the tables */
    itest_create_db("sec_priv_plain", plain_db, sizeof(plain_db));
    itest_load_white_cross(plain_db, 1, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    itest_drop_db(db);
    itest_drop_db(other_db);
    itest_drop_db(plain_db);
    drop_roles();
    return 0;
}

static int agent_as(const char *role, const char *cmd, const char *extra)
{
    char line[2048];
    snprintf(line, sizeof(line),
             AGENT_BIN " %s --dsn 'dbname=%s user=%s' --migrations %s --tenant district-sec %s",
             cmd, db, role, MIGS, extra);
    return run_cmd(line, out, sizeof(out));
}

static PGconn *connect_as(const char *dbname, const char *role)
{
    char dsn[256];
    snprintf(dsn, sizeof(dsn), "dbname=%s user=%s connect_timeout=10", dbname, role);
    return PQconnectdb(dsn);
}

/* The index names of every up step of kind index in the migrations. */
static size_t index_names(char names[][64], size_t max)
{
    pgr_migration_set *set = NULL;
    size_t n = 0;
    assert_int_equal(pgr_migration_dir_load(MIGS, &set, NULL), PGR_OK);
    for (size_t i = 0; i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        for (size_t s = 0; s < m->up_count; s++) {
            if (m->up[s].kind == PGR_STEP_INDEX && n < max)
                snprintf(names[n++], 64, "%s", m->up[s].name);
        }
    }
    pgr_migration_set_free(set);
    return n;
}

/* Indexes of that name that are valid and ready, owned by owner (the table's owner). */
static long index_valid(PGconn *c, const char *name, const char *owner)
{
    const char *params[] = {name, owner};
    PGresult *r = PQexecParams(c,
                               "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = "
                               "i.indexrelid WHERE c.relname = $1 AND i.indisvalid AND "
                               "i.indisready AND c.relowner = to_regrole($2)",
                               2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static long fk_validated(PGconn *c)
{
    return itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                           "'fk_medication_logs_medication_id' AND contype = 'f' AND "
                           "convalidated AND conrelid = 'public.medication_logs'::regclass");
}

/* --backup needs to read every table: as this role pg_dump cannot read billing_accounts, so the
 * run stops before the first step and changes nothing. */
static void backup_refused(PGconn *admin)
{
    char dir[64], extra[128];
    strcpy_safe_tmp(dir, sizeof(dir));
    assert_non_null(mkdtemp(dir));
    snprintf(extra, sizeof(extra), "--backup %s --orphans quarantine", dir);
    int rc = agent_as(agent_role, "apply", extra);
    if (rc != 1)
        fail_msg("apply --backup as %s exited %d, want 1:\n%s", agent_role, rc, out);
    assert_non_null(strstr(out, "pg_dump exited"));
    assert_non_null(strstr(out, "nothing was migrated"));
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pgrollout.schema_migrations"), 0);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE "
                                         "'idx\\_%'"),
                     0);
    assert_int_equal(rmdir(dir), 0); /* the failed dump left no file */
}

/* Runs the agent as the role and requires exit 0. */
static void agent_ok(const char *cmd, const char *extra)
{
    int rc = agent_as(agent_role, cmd, extra);
    if (rc != 0)
        fail_msg("%s %s as %s exited %d:\n%s", cmd, extra, agent_role, rc, out);
}

/* Every migration index present (want 1) or absent (want 0). */
static void indexes_are(PGconn *admin, char names[][64], size_t n, long want)
{
    for (size_t i = 0; i < n; i++) {
        if (index_valid(admin, names[i], owner_role) != want)
            fail_msg("index %s: want %ld valid index(es) owned by %s", names[i], want, owner_role);
    }
}

/* The script left the role exactly what the docs say. */
static void role_is_narrow(PGconn *admin)
{
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM pg_roles WHERE rolname = '%s' AND rolcanlogin AND rolinherit "
             "AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole AND NOT rolreplication "
             "AND NOT rolbypassrls",
             agent_role);
    assert_int_equal(itest_scalar(admin, q), 1);
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM pg_auth_members WHERE member = to_regrole('%s') AND "
             "roleid <> to_regrole('%s')",
             agent_role, owner_role);
    assert_int_equal(itest_scalar(admin, q), 0); /* a member of the owner role only */
    snprintf(q, sizeof(q),
             "SELECT has_database_privilege('%s', current_database(), 'CREATE')::int + "
             "has_database_privilege('%s', current_database(), 'TEMPORARY')::int",
             agent_role, agent_role);
    assert_int_equal(itest_scalar(admin, q), 0);
}

/* After the first apply: objects, quarantine and the agent's own state. */
static void applied_state_is_right(PGconn *admin)
{
    char q[512];
    assert_int_equal(fk_validated(admin), 1);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                         "('pg_trgm', 'unaccent')"),
                     2);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pgrollout_quarantine."
                                         "medication_logs"),
                     ORPHANS);
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM pg_tables WHERE schemaname IN ('pgrollout', "
             "'pgrollout_quarantine') AND tableowner <> '%s'",
             agent_role);
    assert_int_equal(itest_scalar(admin, q), 0);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                         "status = 'applied'"),
                     4);
}

static void test_privilege_agent_role_applies_verifies_rolls_back(void **state)
{
    (void)state;
    char names[64][64];
    size_t n = index_names(names, 64);
    assert_int_equal(n, 34);
    PGconn *admin = itest_connect(db);
    role_is_narrow(admin);
    backup_refused(admin);

    agent_ok("apply", "--orphans quarantine");
    indexes_are(admin, names, n, 1);
    applied_state_is_right(admin);
    agent_ok("verify", "");
    assert_non_null(strstr(out, "verify: 0 problem(s)"));
    agent_ok("rollback", "--to 0");
    indexes_are(admin, names, n, 0);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                         "'fk_medication_logs_medication_id'"),
                     0);
    /* and forward again: the role needs nothing a first run had */
    agent_ok("apply", "");
    indexes_are(admin, names, n, 1);
    assert_int_equal(fk_validated(admin), 1);
    /* the application keeps its access; the table that is not the agent's is untouched */
    PGconn *app = connect_as(db, app_role);
    assert_int_equal(PQstatus(app), CONNECTION_OK);
    assert_true(itest_scalar(app, "SELECT count(*) FROM students") > 0);
    PQfinish(app);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM billing_accounts"), 1);
    PQfinish(admin);
}

/* Runs sql and requires it to fail with SQLSTATE 42501 (insufficient privilege). */
static void expect_denied(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || st == NULL || strcmp(st, "42501") != 0)
        fail_msg("as the agent role, %s: want permission denied (42501), got %s %s: %s", sql,
                 PQresStatus(PQresultStatus(r)), st != NULL ? st : "-", PQerrorMessage(c));
    PQclear(r);
}

static void test_privilege_agent_role_cannot_do_more(void **state)
{
    (void)state;
    static const char *const denied[] = {
        "SELECT * FROM public.billing_accounts",
        "UPDATE public.billing_accounts SET card = 'x'",
        "CREATE ROLE sec_evil LOGIN SUPERUSER",
        "ALTER ROLE CURRENT_USER SUPERUSER",
        "GRANT pg_read_all_data TO CURRENT_USER",
        "UPDATE pg_catalog.pg_class SET relname = relname WHERE relname = 'students'",
        "DELETE FROM pg_catalog.pg_proc WHERE false",
        "SELECT rolpassword FROM pg_catalog.pg_authid",
        "SELECT pg_read_file('/etc/hostname')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "CREATE SCHEMA sec_evil",
        "CREATE EXTENSION pgcrypto",
        "CREATE TEMP TABLE sec_evil (x int)",
    };
    char sql[256];
    PGconn *c = connect_as(db, agent_role);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
        expect_denied(c, denied[i]);
    snprintf(sql, sizeof(sql), "DROP DATABASE %s", other_db);
    expect_denied(c, sql);
    snprintf(sql, sizeof(sql), "DROP DATABASE %s", plain_db);
    expect_denied(c, sql);
    PQfinish(c);

    /* another tenant's database, set up for another agent role: no connection at all */
    c = connect_as(other_db, agent_role);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "permission denied for database"));
    PQfinish(c);
    /* a database left open to PUBLIC: the role connects but reads nothing */
    c = connect_as(plain_db, agent_role);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    expect_denied(c, "SELECT * FROM public.students");
    expect_denied(c, "CREATE INDEX sec_evil ON public.students (id)");
    PQfinish(c);
    /* what the role cannot do the agent cannot do either: apply on that database fails */
    char line[1024];
    snprintf(line, sizeof(line), AGENT_BIN " apply --dsn 'dbname=%s user=%s' --migrations %s",
             plain_db, agent_role, MIGS);
    int rc = run_cmd(line, out, sizeof(out));
    if (rc != 1)
        fail_msg("apply on an unprepared database exited %d, want 1:\n%s", rc, out);
    assert_non_null(strstr(out, "permission denied"));
    PGconn *admin = itest_connect(plain_db);
    assert_int_equal(itest_scalar(admin, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE "
                                         "'idx\\_%'"),
                     0);
    PQfinish(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_privilege_agent_role_applies_verifies_rolls_back),
        cmocka_unit_test(test_privilege_agent_role_cannot_do_more),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
