/* test_sql_one_statement.c - a second statement smuggled into an index, drop_index or extension
 * step behind a "--" comment that a CR ends (PostgreSQL's scanner ends "--" comments at CR as well
 * as LF; the migration parser splits lines at LF only). The real `pgrollout lint` and
 * `pgrollout-agent apply` refuse the directory, naming the file and the step's line; against a
 * real tenant database the victim table is still in the catalog with its row, no smuggled object
 * exists and no version of the directory is recorded applied. */
#include "rollout_env.h"

static char db[64];
static char out[1 << 16];

static int setup(void **state)
{
    (void)state;
    itest_create_db("sec_onestmt", db, sizeof(db));
    PGconn *c = itest_connect(db);
    itest_exec(c, "CREATE TABLE sec_canary (id int PRIMARY KEY); CREATE TABLE sec_victim (id int); "
                  "INSERT INTO sec_victim VALUES (42)");
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    itest_drop_db(db);
    return 0;
}

static int cmdf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cmdf(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return run_cmd(line, out, sizeof(out));
}

static void expect_out(const char *fragment)
{
    if (strstr(out, fragment) == NULL)
        fail_msg("output lacks \"%s\":\n%s", fragment, out);
}

/* The victim table and its row are in place; nothing of the directory ran or was recorded. */
static void tenant_intact(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE oid = "
                                     "to_regclass('public.sec_victim') AND relkind = 'r'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM sec_victim WHERE id = 42"), 1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE "
                                     "'idx\\_smuggle%'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"),
                     0);
    assert_int_equal(itest_scalar_or(c, "SELECT count(*) FROM pgrollout.schema_migrations", 0), 0);
}

/* A directory holding one migration whose up part is `up`; refused by lint and apply. */
static void smuggle_refused(const char *file, const char *up, const char *kind)
{
    char dir[64], path[256], text[2048], where[320], why[128];
    PGconn *c = itest_connect(db);

    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(text, sizeof(text),
             "-- pgrollout:up\n%s-- pgrollout:down\n-- pgrollout:step sql\n"
             "SELECT 1;\n",
             up);
    itest_write_file(path, text);
    snprintf(where, sizeof(where), "%s:2: ", path);
    snprintf(why, sizeof(why), "step \"%s\" must hold exactly one SQL statement", kind);

    assert_int_equal(cmdf(COORD_BIN " lint %s", dir), 1);
    expect_out(where);
    expect_out(why);
    assert_int_equal(cmdf(AGENT_BIN " apply --dsn dbname=%s --migrations %s", db, dir), 2);
    expect_out(where);
    expect_out(why);
    tenant_intact(c);
    PQfinish(c);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_sql_one_statement_cr_comment_smuggle_is_refused(void **state)
{
    (void)state;
    /* the brief's case: an index step, CONCURRENTLY */
    smuggle_refused("20260101000000-smuggle-index.sql",
                    "-- pgrollout:step index name=idx_smuggle table=sec_canary\n"
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_smuggle ON sec_canary (id); "
                    "-- x\rDROP TABLE sec_victim;\n",
                    "index");
    /* without CONCURRENTLY both statements would run in one implicit transaction */
    smuggle_refused("20260101000001-smuggle-index-plain.sql",
                    "-- pgrollout:step index name=idx_smuggle2 table=sec_canary\n"
                    "CREATE INDEX IF NOT EXISTS idx_smuggle2 ON sec_canary (id); "
                    "-- x\rDROP TABLE sec_victim;\n",
                    "index");
    smuggle_refused("20260101000002-smuggle-drop-index.sql",
                    "-- pgrollout:step drop_index name=idx_smuggle3 table=sec_canary\n"
                    "DROP INDEX IF EXISTS idx_smuggle3; -- x\rDROP TABLE sec_victim;\n",
                    "drop_index");
    /* an extension step runs in a transaction: the smuggled statement would commit with it */
    smuggle_refused("20260101000003-smuggle-extension.sql",
                    "-- pgrollout:step extension name=pg_trgm\n"
                    "CREATE EXTENSION IF NOT EXISTS pg_trgm; -- x\rDROP TABLE sec_victim;\n",
                    "extension");
    /* CRLF file: the parser drops the CR of each line end, not the one inside the line */
    smuggle_refused("20260101000004-smuggle-crlf.sql",
                    "-- pgrollout:step extension name=pg_trgm\r\n"
                    "CREATE EXTENSION IF NOT EXISTS pg_trgm -- x\r; DROP TABLE sec_victim\r\n",
                    "extension");
}

/* The same statements without the smuggled part are applied: the refusal above is the CR. */
static void test_sql_one_statement_clean_step_applies(void **state)
{
    char dir[64], path[256];
    PGconn *c = itest_connect(db);
    (void)state;

    assert_non_null(mkdtemp(strcpy_safe_tmp(dir, sizeof(dir))));
    snprintf(path, sizeof(path), "%s/20260101000010-clean.sql", dir);
    itest_write_file(path, "-- pgrollout:up\n"
                           "-- pgrollout:step index name=idx_clean table=sec_canary\n"
                           "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_clean ON sec_canary (id) "
                           "/* /* nested */ ; */; -- x DROP TABLE sec_victim;\n"
                           "-- pgrollout:down\n"
                           "-- pgrollout:step drop_index name=idx_clean table=sec_canary\n"
                           "DROP INDEX CONCURRENTLY IF EXISTS idx_clean;\n");
    if (cmdf(AGENT_BIN " apply --dsn dbname=%s --migrations %s", db, dir) != 0)
        fail_msg("apply of the clean step failed:\n%s", out);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                     "'idx_clean'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM sec_victim WHERE id = 42"), 1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "version = '20260101000010' AND status = 'applied'"),
                     1);
    PQfinish(c);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_one_statement_cr_comment_smuggle_is_refused),
        cmocka_unit_test(test_sql_one_statement_clean_step_applies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
