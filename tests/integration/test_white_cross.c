/* test_white_cross.c - the four White Cross migrations, step by step straight through libpq (no
 * agent): every up step on a fixture tenant, then the catalog (34 valid indexes with their
 * tables and access methods, the validated foreign key, both extensions), then every down step
 * and the catalog again. */
#include "itest.h"

#include "pgr/migration.h"
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

static void run_sql(PGconn *c, const char *sql, bool txn)
{
    if (txn)
        itest_exec(c, "BEGIN");
    itest_exec(c, sql);
    if (txn)
        itest_exec(c, "COMMIT");
}

static void run_fk(PGconn *c, const pgr_step *s)
{
    pgr_buf q, add, val;
    pgr_buf_init(&q);
    pgr_buf_init(&add);
    pgr_buf_init(&val);
    assert_int_equal(pgr_buf_appendf(&q, "SELECT count(*) "), PGR_OK);
    assert_int_equal(pgr_sqlgen_orphan_from(c, s, &q, NULL), PGR_OK);
    assert_int_equal(pgr_sqlgen_fk_add(c, s, true, &add, NULL), PGR_OK);
    assert_int_equal(pgr_sqlgen_fk_validate(c, s, &val, NULL), PGR_OK);
    /* the exact generated statements: every identifier quoted */
    assert_string_equal(add.data,
                        "ALTER TABLE \"medication_logs\" ADD CONSTRAINT "
                        "\"fk_medication_logs_medication_id\" FOREIGN KEY (\"medicationId\") "
                        "REFERENCES \"medications\" (\"id\") ON UPDATE CASCADE ON DELETE "
                        "RESTRICT NOT VALID");
    assert_string_equal(q.data, "SELECT count(*) FROM \"medication_logs\" c WHERE "
                                "c.\"medicationId\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                                "\"medications\" p WHERE p.\"id\" = c.\"medicationId\")");
    itest_exec(c, "BEGIN");
    itest_exec(c, add.data);
    assert_int_equal(itest_scalar(c, q.data), 0);
    itest_exec(c, "COMMIT");
    run_sql(c, val.data, true);
    pgr_buf_free(&q);
    pgr_buf_free(&add);
    pgr_buf_free(&val);
}

static void run_step(PGconn *c, const pgr_step *s)
{
    pgr_buf b;
    switch (s->kind) {
    case PGR_STEP_FOREIGN_KEY:
        run_fk(c, s);
        break;
    case PGR_STEP_DROP_FOREIGN_KEY:
        pgr_buf_init(&b);
        assert_int_equal(pgr_sqlgen_fk_drop(c, s, &b, NULL), PGR_OK);
        run_sql(c, b.data, true);
        pgr_buf_free(&b);
        break;
    default:
        run_sql(c, s->sql, pgr_migration_step_transactional(s));
    }
}

static void check_up_catalog(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON "
                                     "x.oid = i.indexrelid WHERE x.relname LIKE 'idx\\_%' "
                                     "AND i.indisvalid AND i.indisready"),
                     34);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class x JOIN pg_am a ON "
                                     "a.oid = x.relam WHERE x.relname LIKE 'idx\\_%' "
                                     "AND a.amname = 'btree'"),
                     23);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class x JOIN pg_am a ON "
                                     "a.oid = x.relam WHERE x.relname LIKE 'idx\\_%' "
                                     "AND a.amname = 'gin'"),
                     11);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON "
                                     "x.oid = i.indexrelid WHERE x.relname LIKE 'idx\\_%' "
                                     "AND i.indpred IS NOT NULL"),
                     29);
    /* per table, as in the facts file */
    PGresult *r = PQexec(c, "SELECT string_agg(t || '=' || n, ',' ORDER BY t) FROM (SELECT "
                            "tablename t, count(*) n FROM pg_indexes WHERE indexname LIKE "
                            "'idx\\_%' GROUP BY 1) s");
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "allergies=5,chronic_conditions=5,inventory_items=3,medications=3,"
                        "student_medications=4,students=3,users=11");
    PQclear(r);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id' AND convalidated AND "
                                     "confupdtype = 'c' AND confdeltype = 'r' AND "
                                     "conrelid = 'medication_logs'::regclass AND "
                                     "confrelid = 'medications'::regclass"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                     "('pg_trgm', 'unaccent')"),
                     2);
}

static void check_down_catalog(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname LIKE "
                                     "'idx\\_%' AND relkind = 'i'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id'"),
                     0);
    /* down keeps the extensions, as the originals do */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                     "('pg_trgm', 'unaccent')"),
                     2);
}

static void test_white_cross_up_then_down_through_libpq(void **state)
{
    char db[64];
    pgr_migration_set *set = NULL;
    pgr_error e;
    (void)state;
    assert_int_equal(pgr_migration_dir_load(PGR_SOURCE_DIR "/migrations", &set, &e), PGR_OK);
    itest_create_db("itest_wc", db, sizeof(db));
    itest_load_white_cross(db, 1, 0);
    PGconn *c = itest_connect(db);
    long rows = itest_scalar(c, "SELECT count(*) FROM medication_logs");
    assert_true(rows >= 10000);
    for (size_t i = 0; i < set->count; i++) {
        for (size_t j = 0; j < set->items[i]->up_count; j++)
            run_step(c, &set->items[i]->up[j]);
    }
    check_up_catalog(c);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM medication_logs"), rows);
    for (size_t i = set->count; i-- > 0;) {
        for (size_t j = 0; j < set->items[i]->down_count; j++)
            run_step(c, &set->items[i]->down[j]);
    }
    check_down_catalog(c);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM medication_logs"), rows);
    PQfinish(c);
    itest_drop_db(db);
    pgr_migration_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_white_cross_up_then_down_through_libpq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
