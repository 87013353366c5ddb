/* test_audit_records.c - the paths that build audit records never carry PHI values: a step
 * whose SQL holds a student's name and birth date and a medication detail is recorded by object
 * name, kind and the SHA-256 of its SQL only; the canonical record bytes are compact JSON with
 * sorted keys. No database: the record builders are pure. */
#include "pgr_test.h"

#include "audit.h"

#include "pgr/migration.h"

static const char *const phi_migration =
    "-- pgrollout:up\n"
    "-- pgrollout:step sql phi\n"
    "UPDATE students SET \"firstName\" = 'Zo\xc3\xab', \"lastName\" = 'M\xc3\xbcller', "
    "\"dateOfBirth\" = '2014-03-09' WHERE \"studentNumber\" = 'S-000123';\n"
    "-- pgrollout:step index name=idx_meds_dose table=medications phi\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_meds_dose ON medications (name) WHERE name = "
    "'Methylphenidate 18mg';\n"
    "-- pgrollout:down\n"
    "-- pgrollout:step sql\nSELECT 1;\n";

static void test_audit_records_hold_no_phi_values(void **state)
{
    pgr_migration *m = NULL;
    agent_exec_opts o;
    agent_exec x;
    (void)state;
    assert_int_equal(pgr_migration_parse(phi_migration, strlen(phi_migration),
                                         "20260101000000-phi.sql", &m, NULL),
                     PGR_OK);
    agent_exec_opts_init(&o);
    o.agent_id = "agent-1";
    memset(&x, 0, sizeof(x));
    x.o = &o;
    snprintf(x.tenant, sizeof(x.tenant), "district-001");
    snprintf(x.job_id, sizeof(x.job_id), "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f");
    snprintf(x.operator_name, sizeof(x.operator_name), "alice");
    static const char *const phi[] = {"Zo",       "M\xc3\xbc",       "ller", "2014-03-09",
                                      "S-000123", "Methylphenidate", "18mg", NULL};
    for (size_t i = 0; i < m->up_count; i++) {
        json_t *rec = agent_audit_new(&x, "step_done");
        agent_audit_step_fields(rec, m, &m->up[i]);
        char *bytes = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        assert_non_null(bytes);
        for (int k = 0; phi[k] != NULL; k++) {
            if (strstr(bytes, phi[k]) != NULL)
                fail_msg("audit record holds \"%s\": %s", phi[k], bytes);
        }
        /* what it does carry: the object, the PHI flag and the hash of the SQL */
        assert_non_null(strstr(bytes, "\"phi\":true"));
        assert_non_null(strstr(bytes, "\"sql_sha256\":\""));
        assert_non_null(strstr(bytes, "\"tenant_id\":\"district-001\""));
        if (m->up[i].kind == PGR_STEP_INDEX)
            assert_non_null(strstr(bytes, "index idx_meds_dose on medications"));
        /* canonical: keys sorted, so "action" comes first and "version" last */
        assert_int_equal(strncmp(bytes, "{\"action\":", 10), 0);
        free(bytes);
        json_decref(rec);
    }
    pgr_migration_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_records_hold_no_phi_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
