/* test_connpool.c - the agent daemon's kept session per tenant (agent/connpool.c) against the
 * real PostgreSQL: nothing of one session reaches the next (settings, advisory locks, prepared
 * statements, temporary tables), a session inside a transaction or ended by the server is never
 * handed out again, only one is kept, and an idle one is closed. */
#include "itest.h"

#include "connpool.h"

#include <time.h>

static char db[64];

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    (void)state;
    itest_create_db("itest_pool", db, sizeof(db));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    itest_drop_db(db);
    return 0;
}

/* Backends of this database other than the observer's own, once that count is `want` (a
 * closed session's backend exits a moment after its client left) or 5 s have passed. */
static long others(PGconn *observer, long want)
{
    long n = -1;
    for (int i = 0; i < 50; i++) {
        n = itest_scalar(observer, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                   "current_database() AND pid <> pg_backend_pid()");
        if (n == want)
            break;
        pause_ms(100);
    }
    return n;
}

static void test_connpool_reset_session_is_reused(void **state)
{
    (void)state;
    agent_connpool p;
    agent_connpool_init(&p);
    assert_null(agent_connpool_take(&p));
    PGconn *a = itest_connect(db);
    long pid = PQbackendPID(a);
    itest_exec(a, "SET lock_timeout = 1234; SELECT pg_advisory_lock(4242); PREPARE q AS SELECT 1;"
                  " CREATE TEMP TABLE scratch (x int)");
    agent_connpool_give(&p, a);
    PGconn *b = agent_connpool_take(&p);
    assert_non_null(b);
    assert_int_equal(PQbackendPID(b), pid); /* the same backend: no new session */
    assert_null(agent_connpool_take(&p));   /* handed out once */
    assert_int_equal(itest_scalar(b, "SELECT setting::int FROM pg_settings WHERE name = "
                                     "'lock_timeout'"),
                     0);
    assert_int_equal(itest_scalar(b, "SELECT count(*) FROM pg_prepared_statements"), 0);
    assert_int_equal(itest_scalar(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND pid = pg_backend_pid()"),
                     0);
    assert_int_equal(itest_scalar(b, "SELECT count(*) FROM pg_class WHERE relname = 'scratch'"), 0);
    agent_connpool_free(&p);
    PQfinish(b);
}

static void test_connpool_never_hands_out_a_bad_session(void **state)
{
    (void)state;
    agent_connpool p;
    agent_connpool_init(&p);
    PGconn *observer = itest_connect(db);
    /* inside a transaction: closed, not kept */
    PGconn *a = itest_connect(db);
    itest_exec(a, "BEGIN");
    agent_connpool_give(&p, a);
    assert_null(agent_connpool_take(&p));
    assert_int_equal(others(observer, 0), 0);
    /* ended by the server while kept: take notices and closes it */
    PGconn *b = itest_connect(db);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d, 5000)", PQbackendPID(b));
    agent_connpool_give(&p, b);
    itest_exec(observer, sql);
    pause_ms(200);
    assert_null(agent_connpool_take(&p));
    /* one kept at most: the second given is closed */
    PGconn *c = itest_connect(db), *d = itest_connect(db);
    agent_connpool_give(&p, c);
    agent_connpool_give(&p, d);
    assert_int_equal(others(observer, 1), 1);
    /* not idle long enough: kept; then closed */
    agent_connpool_expire(&p, 60000);
    assert_int_equal(others(observer, 1), 1);
    agent_connpool_expire(&p, 0);
    assert_int_equal(others(observer, 0), 0);
    assert_null(agent_connpool_take(&p));
    agent_connpool_free(&p);
    PQfinish(observer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connpool_reset_session_is_reused),
        cmocka_unit_test(test_connpool_never_hands_out_a_bad_session),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
