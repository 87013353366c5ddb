/* test_lint.c - every lint rule fires on its bad example and stays silent on the good one
 * (tests/lint/<rule>/{bad,good}/), and the White Cross migrations lint clean. */
#include "pgr_test.h"

#include "pgr/lint.h"
#include "pgr/file.h"

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
    const char *text =
        "-- pgrollout:up\n"
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

/* Lints one migration text (file name 20250101000000-x.sql) and returns the report. */
static pgr_lint_report *lint_text(const char *text)
{
    pgr_lint_report *r = pgr_lint_report_new();
    pgr_lint_buffer(r, text, strlen(text), "20250101000000-x.sql", NULL);
    return r;
}

static void test_lint_block_comments_are_ignored(void **state)
{
    const char *text = "-- pgrollout:up\n"
                       "-- pgrollout:step index name=idx_a table=users\n"
                       "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON users (a)\n"
                       "  /* was: WHERE x > now() /* nested: random() */ still now() */;\n"
                       "-- pgrollout:step index name=idx_b table=users\n"
                       "/* c */ CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_b ON users (b) "
                       "WHERE b > now();\n"
                       "-- pgrollout:down\n"
                       "-- pgrollout:step sql\n"
                       "COMMENT ON TABLE users IS '/* not a comment';\n";
    pgr_lint_report *r = lint_text(text);
    char *n = pgr_lint_normalize_sql("a /* x */b/*/*y*/*/c '/*' \"d/*\" e");
    (void)state;
    assert_false(has(r, "volatile-in-index", 2));
    assert_true(has(r, "volatile-in-index", 5));
    assert_int_equal(r->count, 1);
    assert_string_equal(n, "A B C '' \"D/*\" E");
    free(n);
    pgr_lint_report_free(r);
}

static void test_lint_concurrently_matches_whole_words(void **state)
{
    const char *text =
        "-- pgrollout:up\n"
        "-- pgrollout:step sql\n"
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS \"maxSessionsConcurrently\" int;\n"
        "-- pgrollout:step sql\n"
        "CREATE INDEX concurrently_idx ON users (a);\n"
        "-- pgrollout:down\n"
        "-- pgrollout:step sql\n"
        "DROP INDEX concurrently_idx;\n";
    pgr_lint_report *r = lint_text(text);
    (void)state;
    assert_false(has(r, "concurrently-in-transaction", -1));
    assert_true(has(r, "index-concurrently", 4));
    assert_true(has(r, "drop-index-concurrently", 7));
    assert_true(has(r, "if-exists", 7));
    pgr_lint_report_free(r);
}

static void test_lint_concurrently_in_transaction_only_for_refused_commands(void **state)
{
    const char *text = "-- pgrollout:up\n"
                       "-- pgrollout:step sql\n"
                       "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_attendance;\n"
                       "-- pgrollout:step sql\n"
                       "REINDEX (VERBOSE) INDEX CONCURRENTLY idx_a;\n"
                       "-- pgrollout:step sql\n"
                       "ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY;\n"
                       "-- pgrollout:step sql\n"
                       "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;\n"
                       "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_u ON t (a);\n"
                       "-- pgrollout:down\n"
                       "-- pgrollout:step sql\n"
                       "DROP INDEX CONCURRENTLY IF EXISTS idx_u;\n"
                       "-- pgrollout:step sql no_transaction\n"
                       "REINDEX INDEX CONCURRENTLY idx_a;\n";
    pgr_lint_report *r = lint_text(text);
    (void)state;
    assert_false(has(r, "concurrently-in-transaction", 2));
    assert_true(has(r, "concurrently-in-transaction", 4));
    assert_true(has(r, "concurrently-in-transaction", 6));
    assert_true(has(r, "concurrently-in-transaction", 8));
    assert_true(has(r, "concurrently-in-transaction", 12));
    assert_false(has(r, "concurrently-in-transaction", 14));
    pgr_lint_report_free(r);
}

static bool has_version_finding(const pgr_lint_report *r, const char *version)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->items[i].rule, "version-order") == 0 &&
            strstr(r->items[i].file, version) != NULL)
            return true;
    }
    return false;
}

static void test_lint_version_rejects_impossible_dates(void **state)
{
    static const struct {
        const char *version;
        bool valid;
    } cases[] = {
        {"20000229120000", true},  {"20210229120000", false}, {"20240229120000", true},
        {"20250131120000", true},  {"20250231120000", false}, {"20250431120000", false},
        {"20250930235959", true},  {"20250931000000", false}, {"20251231235959", true},
        {"21000229000000", false},
    };
    const char *body = "-- pgrollout:up\n-- pgrollout:step sql\nSELECT 1;\n"
                       "-- pgrollout:down\n-- pgrollout:step sql\nSELECT 1;\n";
    size_t count = sizeof(cases) / sizeof(cases[0]);
    pgr_migration *ms[sizeof(cases) / sizeof(cases[0])];
    pgr_lint_report *r = pgr_lint_report_new();
    (void)state;
    for (size_t i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s-x.sql", cases[i].version);
        pgr_lint_buffer(r, body, strlen(body), name, &ms[i]);
        assert_non_null(ms[i]);
    }
    assert_int_equal(r->count, 0);
    pgr_lint_across(r, ms, count);
    for (size_t i = 0; i < count; i++) {
        if (has_version_finding(r, cases[i].version) == cases[i].valid)
            fail_msg("version %s: expected %s", cases[i].version,
                     cases[i].valid ? "no finding" : "a version-order finding");
        pgr_migration_free(ms[i]);
    }
    pgr_lint_report_free(r);
}

static void test_lint_escape_and_dollar_strings_are_literals(void **state)
{
    const char *text = "-- pgrollout:up\n"
                       "-- pgrollout:step sql\n"
                       "COMMENT ON TABLE users IS E'it\\'s';\n"
                       "CREATE INDEX IF NOT EXISTS idx_a ON users (a);\n"
                       "-- pgrollout:step sql\n"
                       "COMMENT ON TABLE users IS $$don't$$;\n"
                       "CREATE INDEX IF NOT EXISTS idx_b ON users (b);\n"
                       "-- pgrollout:step sql\n"
                       "DO $body$ BEGIN EXECUTE 'x'; -- CREATE INDEX i ON t (now()) $$\n"
                       "END $body$;\n"
                       "-- pgrollout:down\n"
                       "-- pgrollout:step sql\n"
                       "COMMENT ON TABLE users IS NULL;\n";
    pgr_lint_report *r = lint_text(text);
    char *n = pgr_lint_normalize_sql("select e'a\\\\' , E'\\'', $1, a$$b, $t$ x $$ $t$ -- z");
    (void)state;
    assert_true(has(r, "index-concurrently", 2));
    assert_true(has(r, "index-concurrently", 5));
    assert_false(has(r, "index-concurrently", 8));
    assert_false(has(r, "volatile-in-index", -1));
    assert_int_equal(r->count, 2);
    assert_string_equal(n, "SELECT E'' , E'', $1, A$$B, $$ ");
    free(n);
    pgr_lint_report_free(r);
}

/* Unquoted SQL folds names to lower case, so annotations must name indexes in lower case: an
 * upper-case name would make the step's name and the SQL's name two different objects. */
static void test_lint_upper_case_index_names_are_refused(void **state)
{
    const char *a = "-- pgrollout:up\n"
                    "-- pgrollout:step index name=idx_Users_a table=users\n"
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_Users_a ON users (a);\n"
                    "-- pgrollout:down\n"
                    "-- pgrollout:step drop_index name=idx_users_a table=users\n"
                    "DROP INDEX CONCURRENTLY IF EXISTS idx_users_a;\n";
    pgr_lint_report *r = pgr_lint_report_new();
    pgr_migration *m = NULL;
    (void)state;
    pgr_lint_buffer(r, a, strlen(a), "20250101000000-a.sql", &m);
    assert_null(m);
    assert_true(has(r, "parse", 2));
    pgr_lint_report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lint_each_rule_fires_on_bad_and_not_on_good),
        cmocka_unit_test(test_lint_white_cross_migrations_are_clean),
        cmocka_unit_test(test_lint_reports_line_of_offending_step),
        cmocka_unit_test(test_lint_ignores_keywords_in_comments_and_literals),
        cmocka_unit_test(test_lint_normalize_sql),
        cmocka_unit_test(test_lint_block_comments_are_ignored),
        cmocka_unit_test(test_lint_concurrently_matches_whole_words),
        cmocka_unit_test(test_lint_concurrently_in_transaction_only_for_refused_commands),
        cmocka_unit_test(test_lint_version_rejects_impossible_dates),
        cmocka_unit_test(test_lint_escape_and_dollar_strings_are_literals),
        cmocka_unit_test(test_lint_upper_case_index_names_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
