/* test_lint.c - every lint rule fires on its bad example and stays silent on the good one
 * (tests/lint/<rule>/{bad,good}/), and the White Cross migrations lint clean. */
#include "pgr_test.h"

#include "pgr/lint.h"
#include "pgr/parse.h"

#include <dirent.h>

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lints every .sql of dir (in name order) like `pgrollout lint DIR` does. */
static pgr_lint_report *lint_dir(const char *dir)
{
    pgr_lint_report *r = pgr_lint_report_new();
    pgr_migration *ms[64];
    char *names[64];
    size_t n = 0, nm = 0;
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        fail_msg("missing example directory %s", dir);
    while ((e = readdir(d)) != NULL && n < 64) {
        if (strstr(e->d_name, ".sql") != NULL)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    assert_true(n > 0);
    qsort(names, n, sizeof(char *), name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[1024], *buf = NULL;
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        assert_int_equal(pgr_file_read(path, PGR_MIGRATION_MAX_BYTES, &buf, &len, NULL), PGR_OK);
        pgr_lint_buffer(r, buf, len, path, &ms[nm]);
        if (ms[nm] != NULL)
            nm++;
        free(buf);
        free(names[i]);
    }
    pgr_lint_across(r, ms, nm);
    for (size_t i = 0; i < nm; i++)
        pgr_migration_free(ms[i]);
    return r;
}

static void test_lint_each_rule_fires_on_bad_and_not_on_good(void **state)
{
    (void)state;
    for (const pgr_lint_rule *rule = pgr_lint_rules(); rule->name != NULL; rule++) {
        char dir[512];
        bool fired = false;
        snprintf(dir, sizeof(dir), "%s/tests/lint/%s/bad", PGR_SOURCE_DIR, rule->name);
        pgr_lint_report *r = lint_dir(dir);
        for (size_t i = 0; i < r->count; i++) {
            fired = fired || strcmp(r->items[i].rule, rule->name) == 0;
            assert_true(r->items[i].line >= 0);
        }
        if (!fired)
            fail_msg("rule %s did not fire on %s", rule->name, dir);
        pgr_lint_report_free(r);
        snprintf(dir, sizeof(dir), "%s/tests/lint/%s/good", PGR_SOURCE_DIR, rule->name);
        r = lint_dir(dir);
        if (r->count != 0)
            fail_msg("good example of %s has finding %s: %s", rule->name, r->items[0].rule,
                     r->items[0].message);
        pgr_lint_report_free(r);
    }
}

static void test_lint_white_cross_migrations_are_clean(void **state)
{
    (void)state;
    pgr_lint_report *r = lint_dir(PGR_SOURCE_DIR "/migrations");
    for (size_t i = 0; i < r->count; i++)
        print_error("%s:%d: %s: %s\n", r->items[i].file, r->items[i].line, r->items[i].rule,
                    r->items[i].message);
    assert_int_equal(r->count, 0);
    pgr_lint_report_free(r);
}

static bool has(const pgr_lint_report *r, const char *rule, int line)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->items[i].rule, rule) == 0 && (line < 0 || r->items[i].line == line))
            return true;
    }
    return false;
}

static void test_lint_reports_line_of_offending_step(void **state)
{
    const char *text = "-- pgrollout:up\n"
                       "-- pgrollout:step sql\n"
                       "create index idx_x on users (\"lockoutUntil\") where \"lockoutUntil\" > now ();\n"
                       "-- pgrollout:down\n"
                       "-- pgrollout:step sql\n"
                       "drop index idx_x;\n";
    pgr_lint_report *r = pgr_lint_report_new();
    (void)state;
    pgr_lint_buffer(r, text, strlen(text), "20250101000000-x.sql", NULL);
    assert_true(has(r, "index-concurrently", 2));
    assert_true(has(r, "volatile-in-index", 2));
    assert_true(has(r, "if-exists", 2));
    assert_true(has(r, "drop-index-concurrently", 5));
    assert_true(has(r, "if-exists", 5));
    assert_false(has(r, "missing-down", -1));
    pgr_lint_report_free(r);
}

static void test_lint_ignores_keywords_in_comments_and_literals(void **state)
{
    const char *text = "-- pgrollout:up\n"
                       "-- pgrollout:step sql\n"
                       "-- CREATE INDEX idx_y ON users (now());\n"
                       "COMMENT ON TABLE users IS 'CREATE INDEX x ON y (now())';\n"
                       "-- pgrollout:down\n"
                       "-- pgrollout:step sql\n"
                       "COMMENT ON TABLE users IS NULL;\n";
    pgr_lint_report *r = pgr_lint_report_new();
    (void)state;
    pgr_lint_buffer(r, text, strlen(text), "20250101000000-x.sql", NULL);
    assert_int_equal(r->count, 0);
    pgr_lint_report_free(r);
}

static void test_lint_normalize_sql(void **state)
{
    (void)state;
    char *n = pgr_lint_normalize_sql("create  index\n  concurrently -- c\n x on t using gin (a) "
                                     "where b = 'it''s now()'");
    assert_string_equal(n, "CREATE INDEX CONCURRENTLY X ON T USING GIN(A) WHERE B = ''");
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lint_each_rule_fires_on_bad_and_not_on_good),
        cmocka_unit_test(test_lint_white_cross_migrations_are_clean),
        cmocka_unit_test(test_lint_reports_line_of_offending_step),
        cmocka_unit_test(test_lint_ignores_keywords_in_comments_and_literals),
        cmocka_unit_test(test_lint_normalize_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
