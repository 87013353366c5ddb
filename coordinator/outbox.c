/*
 * outbox.c - the job outbox of a rollout (outbox.h).
 */
#include "outbox.h"

#include "pgr/job.h"
#include "pgr/pg.h"
#include "pgr/term.h"
#include "pgr/uuid.h"
#include "pgr/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pgr_code coord_outbox_create_job(const coord_outbox *o, const char *tenant, const char *type,
                                 const char *target, pgr_error *err)
{
    pgr_job job;
    PGresult *r = NULL;
    char *payload = NULL, *env = NULL, *versions = NULL, seq[32];
    memset(&job, 0, sizeof(job));
    pgr_code rc = pgr_pg_exec(o->c->db, "BEGIN", NULL, err);
    /* the tenant's next seq (1 for a tenant never seen), one round trip */
    if (rc == PGR_OK)
        rc = pgr_pg_execp(o->c->db,
                          "INSERT INTO pgrollout_control.tenants AS t (tenant_id, next_seq) VALUES "
                          "($1, 1) ON CONFLICT (tenant_id) DO UPDATE SET next_seq = t.next_seq + "
                          "1 RETURNING next_seq",
                          1, (const char *[]){tenant}, &r, err);
    if (rc == PGR_OK) {
        snprintf(job.type, sizeof(job.type), "%s", type);
        pgr_uuid_v4(job.job_id);
        job.rollout_id = (char *)(uintptr_t)o->plan->name;
        job.tenant_id = (char *)(uintptr_t)tenant;
        job.seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        job.issued_at = time(NULL);
        job.expires_at = job.issued_at + o->plan->ttl_seconds;
        job.operator_name = (char *)(uintptr_t)o->op;
        job.target = (char *)(uintptr_t)target;
        job.options = o->plan->options;
        /* the manifests go with apply and rollback jobs: the agent checks what they release */
        bool runs_sql = strcmp(type, "apply") == 0 || strcmp(type, "rollback") == 0;
        job.releases = runs_sql ? o->plan->releases : NULL;
        job.release_count = runs_sql ? o->plan->release_count : 0;
        if (strcmp(type, "rollback") == 0 && strcmp(o->plan->type, "apply") == 0)
            job.carry_max = o->plan->target; /* NULL: every migration, as before */
        job.options.verify_in_job = o->plan->options.verify_in_job && strcmp(type, "apply") == 0;
        payload = pgr_job_build(&job, o->set);
        versions = pgr_job_versions_json(&job, o->set);
        env = payload != NULL
                  ? pgr_envelope_seal(PGR_DOMAIN_JOB, &o->c->key, payload, strlen(payload))
                  : NULL;
        if (env == NULL || versions == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    snprintf(seq, sizeof(seq), "%lld", job.seq);
    /* the envelope in the outbox and the run pointing at it, one statement; a cancel job
     * leaves the run's job as it is */
    if (rc == PGR_OK)
        rc = pgr_pg_execp(
            o->c->db,
            "WITH o AS (INSERT INTO pgrollout_control.job_outbox (job_id, tenant_id, "
            "envelope, versions) VALUES ($3, $2, $6, $7::jsonb)) UPDATE "
            "pgrollout_control.tenant_runs SET "
            "job_id = $3, seq = $4, state = 'queued', job_type = $5, verified_at = "
            "NULL, updated_at = now() "
            "WHERE rollout_id = $1 AND tenant_id = $2 AND $5 <> 'cancel'",
            7, (const char *[]){o->plan->name, tenant, job.job_id, seq, type, env, versions}, NULL,
            err);
    rc = rc == PGR_OK ? pgr_pg_exec(o->c->db, "COMMIT", NULL, err) : rc;
    if (rc != PGR_OK)
        PGR_IGNORE(pgr_pg_exec(o->c->db, "ROLLBACK", NULL, NULL));
    free(payload);
    free(env);
    free(versions);
    return rc;
}

/* Publishes up to COORD_OUTBOX_CHUNK unsent outbox rows of the rollout, waits for the broker's
 * acknowledgements, then marks them sent; *more says whether rows were left. A crash before
 * the mark republishes them; agents absorb the duplicate. */
static pgr_code publish_chunk(const coord_outbox *o, bool *more, pgr_error *err)
{
    PGresult *r = NULL;
    coord *c = o->c;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", COORD_OUTBOX_CHUNK);
    pgr_code rc = pgr_pg_execp(c->db,
                               "SELECT o.job_id, o.tenant_id, o.envelope FROM "
                               "pgrollout_control.job_outbox o WHERE o.sent_at IS NULL AND "
                               "o.tenant_id IN (SELECT tenant_id FROM "
                               "pgrollout_control.tenant_runs WHERE rollout_id = $1) ORDER BY "
                               "o.created_at LIMIT $2::int",
                               2, (const char *[]){o->plan->name, limit}, &r, err);
    int n = rc == PGR_OK ? PQntuples(r) : 0;
    *more = n == COORD_OUTBOX_CHUNK;
    int before = c->delivery_errors;
    for (int i = 0; rc == PGR_OK && i < n; i++)
        rc = pgr_kafka_send(c->producer, c->topic_jobs, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                            strlen(PQgetvalue(r, i, 2)), err);
    if (rc == PGR_OK && n > 0 &&
        (rd_kafka_flush(c->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
         c->delivery_errors != before))
        rc = pgr_error_set(err, PGR_ERR_KAFKA,
                           "jobs were not acknowledged by Kafka; they stay in the outbox and are "
                           "sent again by the next attempt");
    /* the ids as a text[] literal: UUIDs need no quoting */
    pgr_buf ids;
    pgr_buf_init(&ids);
    for (int i = 0; rc == PGR_OK && i < n; i++)
        rc = pgr_buf_appendf(&ids, "%s%s", i == 0 ? "{" : ",", PQgetvalue(r, i, 0));
    if (rc == PGR_OK && n > 0)
        rc = pgr_buf_appendf(&ids, "}");
    if (rc == PGR_OK && n > 0)
        rc = pgr_pg_execp(
            c->db,
            "WITH s AS (UPDATE pgrollout_control.job_outbox SET sent_at = now() WHERE "
            "job_id = ANY($1::text[])) UPDATE pgrollout_control.tenant_runs SET state = "
            "'sent' WHERE job_id = ANY($1::text[]) AND state = 'queued'",
            1, (const char *[]){ids.data}, NULL, err);
    pgr_buf_free(&ids);
    if (rc == PGR_OK && n > 0) {
        pgr_term_printf(stderr, "rollout %s: %d job(s) published", o->plan->name, n);
        pgr_metrics_add(c->metrics, "pgrollout_coordinator_jobs_published_total",
                        "signed jobs acknowledged by Kafka", NULL, n);
    }
    PQclear(r);
    return rc;
}

pgr_code coord_outbox_publish(const coord_outbox *o, pgr_error *err)
{
    bool more = true;
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && more)
        rc = publish_chunk(o, &more, err);
    return rc;
}
