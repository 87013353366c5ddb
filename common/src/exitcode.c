/*
 * exitcode.c - the exit code table (exitcode.h).
 */
#include "pgr/exitcode.h"

static const char *const meanings[PGR_EXIT_COUNT] = {
    [PGR_EXIT_OK] = "success, or nothing to do",
    [PGR_EXIT_FAIL] = ("failure: a step, a tenant, a check or a service (database, Kafka) failed; "
                       "the database is left consistent"),
    [PGR_EXIT_USAGE] = "usage or configuration error: an option, a file, a key or a keyring",
    [PGR_EXIT_BLOCKED] = "blocked: drift, or another runner or coordinator holds the lock",
    [PGR_EXIT_PAUSED] = "the rollout paused, or a wave waits for an approval",
};

const char *pgr_exitcode_meaning(pgr_exit code)
{
    if ((int)code < 0 || (int)code >= PGR_EXIT_COUNT)
        return "unknown exit code";
    return meanings[code];
}

pgr_exit pgr_exitcode_from(pgr_code rc)
{
    switch (rc) {
    case PGR_OK:
        return PGR_EXIT_OK;
    case PGR_ERR_DRIFT:
    case PGR_ERR_LOCKED:
        return PGR_EXIT_BLOCKED;
    default:
        return PGR_EXIT_FAIL;
    }
}

void pgr_exitcode_print_table(FILE *out)
{
    fputs("exit codes:\n", out);
    for (int i = 0; i < PGR_EXIT_COUNT; i++)
        fprintf(out, "  %d  %s\n", i, meanings[i]);
}
