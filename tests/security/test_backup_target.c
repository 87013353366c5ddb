/*
 * test_backup_target.c - a backup is a dump of the tenant's database, whatever form its DSN
 * takes. A bare database name (which the configuration accepts) was not given to pg_dump, which
 * then dumped PGDATABASE or the user's database, and that file was audited as the tenant's.
 * Here PGDATABASE names another database with a table of its own; each DSN form (bare name,
 * key=value, URI) runs `pgrollout-agent apply --backup`, and `pg_restore --list` of each file
 * must show the tenant's marker table and not the other database's.
 */
#include "agent_run.h"

#include <sys/stat.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static char out[65536];

/* The backup file of the latest backup record of db's audit outbox. */
static void latest_backup(PGconn *c, char *file, size_t len)
{
    PGresult *r = PQexec(c, "SELECT record::jsonb->>'file' FROM pgrollout.audit_outbox WHERE "
                            "record::jsonb->>'action' = 'backup' ORDER BY seq DESC LIMIT 1");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(file, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Runs apply with --backup for dsn while PGDATABASE names `other`; checks the dump's table of
 * contents holds the tenant's marker and not the other database's. */
static void expect_tenant_dump(const char *dsn, const char *tenant_db, const char *other,
                               const char *dir)
{
    char cmd[2048], file[1024], list[65536];
    struct stat st;
    snprintf(cmd, sizeof(cmd),
             "PGDATABASE=%s " AGENT_BIN " apply --dsn '%s' --migrations %s --backup %s "
             "--target 20251106000000 --tenant bk-tenant",
             other, dsn, MIGS, dir);
    if (run_cmd(cmd, out, sizeof(out)) != 0)
        fail_msg("apply with DSN \"%s\" failed:\n%s", dsn, out);
    PGconn *c = itest_connect(tenant_db);
    latest_backup(c, file, sizeof(file));
    PQfinish(c);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof(cmd), "pg_restore --list '%s'", file);
    assert_int_equal(run_cmd(cmd, list, sizeof(list)), 0);
    if (strstr(list, "TABLE public bk_tenant_marker") == NULL ||
        strstr(list, "bk_other_db_marker") != NULL)
        fail_msg("backup \"%s\" of DSN \"%s\" is not the tenant's database:\n%s", file, dsn, list);
    /* the database name recorded in the archive header is the tenant's */
    snprintf(cmd, sizeof(cmd), "dbname: %s\n", tenant_db);
    if (strstr(list, cmd) == NULL)
        fail_msg("backup \"%s\" of DSN \"%s\" names another database:\n%s", file, dsn, list);
}

static void test_backup_dumps_the_tenant_database_for_every_dsn_form(void **state)
{
    char db[64], other[64], dir[64], dsn[256];
    (void)state;
    itest_create_db("sec_bkt_tenant", db, sizeof(db));
    itest_load_white_cross(db, 1, 0);
    PGconn *c = itest_connect(db);
    itest_exec(c, "CREATE TABLE public.bk_tenant_marker (id int)");
    PQfinish(c);
    itest_create_db("sec_bkt_other", other, sizeof(other));
    c = itest_connect(other);
    itest_exec(c, "CREATE TABLE public.bk_other_db_marker (id int)");
    PQfinish(c);
    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));

    expect_tenant_dump(db, db, other, dir); /* bare name, as [tenants] accepts it */
    snprintf(dsn, sizeof(dsn), "dbname=%s connect_timeout=10", db);
    expect_tenant_dump(dsn, db, other, dir);
    snprintf(dsn, sizeof(dsn), "postgresql:///%s?connect_timeout=10", db);
    expect_tenant_dump(dsn, db, other, dir);

    snprintf(out, sizeof(out), "rm -rf '%s'", dir);
    if (system(out) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    itest_drop_db(db);
    itest_drop_db(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_dumps_the_tenant_database_for_every_dsn_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
