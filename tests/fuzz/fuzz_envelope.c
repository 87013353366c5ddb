/*
 * fuzz_envelope.c - what an agent does with a message of the jobs topic: open the envelope
 * (scanner, base64, Ed25519 over the job domain) with a fixed keyring, then parse the job it
 * carries. The input also goes straight to the job parser, so that the parser is explored
 * without having to forge signatures. A parsed job is rebuilt with pgr_job_build and must parse
 * again to the same job.
 */
#include "fuzz_common.h"

#include "pgr/envelope.h"
#include "pgr/job.h"

#include <stdlib.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_options(const pgr_job_options *a, const pgr_job_options *b)
{
    return a->lock_timeout_ms == b->lock_timeout_ms &&
           a->statement_timeout_ms == b->statement_timeout_ms && a->retries == b->retries &&
           a->backup == b->backup && strcmp(a->orphans, b->orphans) == 0;
}

/* The fields pgr_job_build writes back; migrations above an apply job's target are dropped by
 * the builder, so only the count of those kept is compared. */
static void check_same_job(const pgr_job *a, const pgr_job *b)
{
    if (strcmp(a->type, b->type) != 0 || strcmp(a->job_id, b->job_id) != 0 || a->seq != b->seq ||
        a->issued_at != b->issued_at || a->expires_at != b->expires_at ||
        !same_str(a->rollout_id, b->rollout_id) || !same_str(a->wave, b->wave) ||
        !same_str(a->tenant_id, b->tenant_id) || !same_str(a->operator_name, b->operator_name) ||
        !same_str(a->target, b->target) || !same_options(&a->options, &b->options))
        fuzz_fail("a rebuilt job differs from the job it was built from");
    if (b->migrations->count > a->migrations->count)
        fuzz_fail("a rebuilt job carries more migrations than its source");
    for (size_t i = 0; i < b->migrations->count; i++) {
        const pgr_migration *m =
            pgr_migration_set_find(a->migrations, b->migrations->items[i]->version);
        if (m == NULL || strcmp(m->checksum, b->migrations->items[i]->checksum) != 0)
            fuzz_fail("a rebuilt job's migration differs from its source");
    }
}

static void parse_job(const char *buf, size_t len)
{
    pgr_job *job = NULL, *again = NULL;
    pgr_job_reject why = PGR_JOB_OK;
    pgr_error err;

    if (pgr_job_parse(buf, len, &job, &why, &err) != PGR_OK) {
        if (why == PGR_JOB_OK || err.msg[0] == '\0')
            fuzz_fail("a refused job has no reason or message");
        return;
    }
    if (job->migrations == NULL || job->migrations->count > 1000 || !pgr_uuid_valid(job->job_id))
        fuzz_fail("an accepted job breaks the parser's own limits");
    char *built = pgr_job_build(job, job->migrations);
    if (built == NULL)
        fuzz_fail("an accepted job cannot be rebuilt");
    if (pgr_job_parse(built, strlen(built), &again, &why, &err) != PGR_OK)
        fuzz_fail("a rebuilt job does not parse");
    check_same_job(job, again);
    pgr_job_free(again);
    free(built);
    pgr_job_free(job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t plen = 0;
    const pgr_keyring_entry *e = NULL;
    pgr_envelope_reject why = PGR_REJECT_NONE;
    pgr_error err;

    pgr_code rc = pgr_envelope_open(buf, size, PGR_ENVELOPE_MAX_DEFAULT, PGR_DOMAIN_JOB,
                                    fuzz_keyring(), &payload, &plen, &e, kid, &why, &err);
    if (rc == PGR_OK) {
        if (e == NULL || e->revoked || why != PGR_REJECT_NONE || strlen(payload) > plen)
            fuzz_fail("an opened envelope has an unusable key, reason or payload");
        parse_job(payload, plen);
        free(payload);
    } else if (why == PGR_REJECT_NONE || strlen(kid) >= PGR_KID_LEN) {
        fuzz_fail("a refused envelope has no reason");
    }
    parse_job(buf, size);
    return 0;
}
