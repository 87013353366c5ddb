/* test_metrics_unit.c - the metrics table (common/src/metrics.c): exposition text byte for byte,
 * families grouped under one HELP and TYPE, histogram buckets cumulative, off when NULL, and
 * concurrent updates from threads counted exactly. */
#include "pgr_test.h"

#include "pgr/metrics.h"

#include <pthread.h>

static void test_metrics_text(void **state)
{
    (void)state;
    pgr_metrics *m = pgr_metrics_new();
    assert_non_null(m);
    pgr_metrics_add(m, "pgrollout_x_total", "x things", "kind=\"a\"", 2);
    pgr_metrics_set(m, "pgrollout_y", "y now", NULL, 7);
    pgr_metrics_add(m, "pgrollout_x_total", "x things", "kind=\"b\"", 1);
    pgr_metrics_add(m, "pgrollout_x_total", "x things", "kind=\"a\"", 3);
    pgr_metrics_observe(m, "pgrollout_z_seconds", "z", "k=\"i\"", 0.02);
    pgr_metrics_observe(m, "pgrollout_z_seconds", "z", "k=\"i\"", 2.5);
    pgr_metrics_observe(m, "pgrollout_z_seconds", "z", "k=\"i\"", 1000);
    char *text = pgr_metrics_render(m);
    assert_string_equal(text, "# HELP pgrollout_x_total x things\n"
                              "# TYPE pgrollout_x_total counter\n"
                              "pgrollout_x_total{kind=\"a\"} 5\n"
                              "pgrollout_x_total{kind=\"b\"} 1\n"
                              "# HELP pgrollout_y y now\n"
                              "# TYPE pgrollout_y gauge\n"
                              "pgrollout_y 7\n"
                              "# HELP pgrollout_z_seconds z\n"
                              "# TYPE pgrollout_z_seconds histogram\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"0.01\"} 0\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"0.05\"} 1\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"0.1\"} 1\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"0.5\"} 1\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"1\"} 1\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"5\"} 2\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"10\"} 2\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"60\"} 2\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"300\"} 2\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"600\"} 2\n"
                              "pgrollout_z_seconds_bucket{k=\"i\",le=\"+Inf\"} 3\n"
                              "pgrollout_z_seconds_sum{k=\"i\"} 1002.520000\n"
                              "pgrollout_z_seconds_count{k=\"i\"} 3\n");
    free(text);
    pgr_metrics_free(m);
    /* off: every update is a no-op */
    pgr_metrics_add(NULL, "pgrollout_x_total", "x", NULL, 1);
    pgr_metrics_observe(NULL, "pgrollout_z_seconds", "z", NULL, 1);
}

static void *adder(void *arg)
{
    for (int i = 0; i < 10000; i++)
        pgr_metrics_add(arg, "pgrollout_c_total", "c", i % 2 ? "p=\"odd\"" : "p=\"even\"", 1);
    return NULL;
}

static void test_metrics_threads(void **state)
{
    (void)state;
    pgr_metrics *m = pgr_metrics_new();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, m), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = pgr_metrics_render(m);
    assert_non_null(strstr(text, "pgrollout_c_total{p=\"even\"} 20000\n"));
    assert_non_null(strstr(text, "pgrollout_c_total{p=\"odd\"} 20000\n"));
    free(text);
    pgr_metrics_free(m);
}

static void test_metrics_listen_refused(void **state)
{
    (void)state;
    pgr_metrics *m = pgr_metrics_new();
    pgr_error e;
    assert_int_equal(pgr_metrics_serve(m, "localhost:9187", &e), PGR_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "not an IPv4 address"));
    assert_int_equal(pgr_metrics_serve(m, "127.0.0.1", &e), PGR_ERR_CONFIG);
    assert_int_equal(pgr_metrics_serve(m, "127.0.0.1:70000", &e), PGR_ERR_CONFIG);
    pgr_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_metrics_threads),
        cmocka_unit_test(test_metrics_listen_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
