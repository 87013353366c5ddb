/* test_indexdef.c - the canonical comparison of index definitions: every White Cross index step
 * equals what PostgreSQL 15's pg_get_indexdef() printed for it (tests/fixtures/
 * pg15_indexdefs.txt, captured from a real server), and real differences are told apart. */
#include "pgr_test.h"

#include "pgr/indexdef.h"
#include "pgr/migration.h"

static void test_indexdef_white_cross_matches_pg_get_indexdef(void **state)
{
    pgr_migration_set *set = NULL;
    char *defs = NULL;
    size_t len = 0;
    int matched = 0;
    (void)state;
    FILE *f = fopen(PGR_SOURCE_DIR "/tests/fixtures/pg15_indexdefs.txt", "rb");
    assert_non_null(f);
    assert_true(getdelim(&defs, &len, '\0', f) > 0);
    fclose(f);
    for (char *p = defs; *p != '\0'; p++) {
        if (*p == '\n')
            *p = '\0'; /* one definition per line; find_def stops at each NUL */
    }
    assert_int_equal(pgr_migration_dir_load(PGR_SOURCE_DIR "/migrations", &set, NULL), PGR_OK);
    for (size_t i = 0; i < set->count; i++) {
        for (size_t j = 0; j < set->items[i]->up_count; j++) {
            const pgr_step *s = &set->items[i]->up[j];
            if (s->kind != PGR_STEP_INDEX)
                continue;
            const char *def = NULL;
            for (char *line = defs; line < defs + len && def == NULL; line += strlen(line) + 1) {
                size_t n = strlen(s->name);
                if (strncmp(line, s->name, n) == 0 && line[n] == '|')
                    def = line + n + 1;
            }
            assert_non_null(def);
            if (!pgr_indexdef_equal(s->sql, def)) {
                char *a = pgr_indexdef_canonical(s->sql), *b = pgr_indexdef_canonical(def);
                fail_msg("%s differs:\n step: %s\n   pg: %s", s->name, a, b);
            }
            matched++;
        }
    }
    assert_int_equal(matched, 34);
    pgr_migration_set_free(set);
    free(defs);
}

static void test_indexdef_detects_different_definitions(void **state)
{
    (void)state;
    const char *ours =
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_student_medications_active_dates "
        "ON student_medications USING btree (\"isActive\", \"startDate\", "
        "\"endDate\", \"studentId\");";
    /* the older migration's index of the same name (facts file, inconsistency 7) */
    const char *old = "CREATE INDEX idx_student_medications_active_dates ON "
                      "public.student_medications USING btree (\"isActive\", \"startDate\", "
                      "\"endDate\") WHERE (\"isActive\" = true)";
    const char *same = "CREATE INDEX idx_student_medications_active_dates ON "
                       "public.student_medications USING btree (\"isActive\", \"startDate\", "
                       "\"endDate\", \"studentId\")";
    assert_false(pgr_indexdef_equal(ours, old));
    assert_true(pgr_indexdef_equal(ours, same));
    assert_false(
        pgr_indexdef_equal("CREATE INDEX a ON t (x) WHERE y = 'A B'",
                           "CREATE INDEX a ON public.t USING btree (x) WHERE (y = 'a b'::text)"));
    assert_false(pgr_indexdef_equal("CREATE INDEX a ON t USING gin (x)",
                                    "CREATE INDEX a ON public.t USING btree (x)"));
    /* a cast must not swallow the rest of the predicate */
    assert_false(pgr_indexdef_equal("CREATE INDEX a ON t (x) WHERE kind = 'v'::text AND d IS NULL",
                                    "CREATE INDEX a ON public.t USING btree (x) WHERE (kind = "
                                    "'v'::text)"));
    assert_true(pgr_indexdef_equal("CREATE INDEX a ON t (x) WHERE name = 'a' AND b",
                                   "CREATE INDEX a ON public.t USING btree (x) WHERE "
                                   "(((name)::text = ('a'::character varying)::text) AND b)"));
    assert_false(pgr_indexdef_equal("CREATE UNIQUE INDEX a ON t (x)",
                                    "CREATE INDEX a ON public.t USING btree (x)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_indexdef_white_cross_matches_pg_get_indexdef),
        cmocka_unit_test(test_indexdef_detects_different_definitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
