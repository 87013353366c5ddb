/*
 * fuzz_migration.c - the migration file parser (common/src/migration.c) and the lint rules that
 * run on what it parsed (common/src/lint.c). Each parsed step must describe itself; the input
 * is also tried as a file name with an empty body.
 */
#include "fuzz_common.h"

#include "pgr/lint.h"
#include "pgr/migration.h"

#include <stdlib.h>
#include <string.h>

static void check_steps(const pgr_step *steps, size_t count, bool down)
{
    char what[512];
    for (size_t i = 0; i < count; i++) {
        const pgr_step *s = &steps[i];
        if (s->sql == NULL || s->down != down || s->index != (int)i || s->line < 1)
            fuzz_fail("a parsed step lacks its body or position");
        pgr_migration_step_describe(s, what, sizeof(what));
        if (pgr_migration_step_lock(s) == NULL ||
            strcmp(pgr_migration_step_kind_name(s->kind), "?") == 0)
            fuzz_fail("a parsed step has an unknown kind");
        (void)pgr_migration_step_transactional(s);
    }
}

static void parse_named(const char *buf, size_t len, const char *filename)
{
    pgr_migration *m = NULL;
    pgr_error err;
    if (pgr_migration_parse(buf, len, filename, &m, &err) != PGR_OK) {
        if (err.msg[0] == '\0')
            fuzz_fail("a refused migration has no message");
        return;
    }
    if (m->up_count == 0 || m->text_len != len || memcmp(m->text, buf, len) != 0 ||
        !pgr_migration_version_valid(m->version))
        fuzz_fail("an accepted migration lost its text, version or steps");
    check_steps(m->up, m->up_count, false);
    check_steps(m->down, m->down_count, true);
    pgr_migration_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char sum[PGR_SHA256_HEX_LEN], name[256];

    parse_named(buf, size, "20250101000000-fuzz.sql");

    pgr_lint_report *r = pgr_lint_report_new();
    pgr_migration *m = NULL;
    if (r == NULL)
        fuzz_fail("out of memory");
    pgr_lint_buffer(r, buf, size, "migrations/20250101000000-fuzz.sql", &m);
    if (m != NULL)
        pgr_lint_across(r, &m, 1);
    pgr_migration_free(m);
    pgr_lint_report_free(r);

    pgr_migration_checksum(buf, size, sum);
    if (size < sizeof(name) && memchr(buf, '\0', size) == NULL) {
        memcpy(name, buf, size);
        name[size] = '\0';
        parse_named("", 0, name);
    }
    return 0;
}
