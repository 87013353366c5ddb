/*
 * run.c - `pgrollout run --plan FILE` and `pgrollout resume ROLLOUT`: the staged rollout
 * engine. The rollout, its waves and every tenant run live in the control database; this loop
 * only moves them forward: it starts a wave, publishes at most max_parallel jobs at a time
 * (each written to the job outbox with its tenant run in one transaction, then published, then
 * marked sent), folds the agents' signed events in, and gates each wave on success within its
 * failure budget, its soak time and, if asked, a manual approval. Kill it anywhere and
 * `resume` carries on without publishing a job twice; a second coordinator is refused.
 */
#include "coord.h"
#include "coord_cli.h"
#include "ctldb.h"
#include "waves.h"

#include "pgr/job.h"
#include "pgr/log.h"
#include "pgr/parse.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COORD_EXIT_PAUSED 4

static volatile sig_atomic_t run_stop = 0;

static void on_signal(int sig)
{
    PGR_UNUSED(sig);
    run_stop = 1;
}

static void uuid4(char out[37])
{
    uint8_t b[16];
    char hex[33];
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static int atoi_safe(const char *s)
{
    int64_t v = 0;
    return pgr_parse_int64(s, 0, INT32_MAX, &v, NULL) == PGR_OK ? (int)v : 0;
}

/* One line on stderr, escaped for the terminal: plan, wave and tenant names and stored errors
 * may hold control characters. */
static void say(const char *fmt, ...) PGR_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pgr_term_vprintf(stderr, fmt, ap);
    va_end(ap);
}

typedef struct engine {
    coord *c;
    rollout_plan plan;
    pgr_migration_set *set;
    const char *op;
    bool json;
    char **last; /* last line printed per tenant run row */
    size_t last_count;
    char *wave_line[64]; /* last summary printed per wave */
    bool cancels_sent;
    rd_kafka_t *audit; /* --collect-audit: the collector runs inside the engine loop */
    coord_ctldb ctldb; /* control-database reconnection state (ctldb.c) */
    bool slot_freed;   /* a result arrived since the last round */
    bool again;        /* a wave passed in this round: advance again at once */
    /* --collect-audit: an audit message read but not stored (control database away); the
     * drain after the loop starts from it, so that no later offset is committed past it */
    rd_kafka_message_t *held_audit;
    bool slots_wanted; /* the last dispatch left tenants waiting for a free place */
    size_t wave_line_count;
} engine;

static pgr_code exec1(coord *c, const char *sql, int n, const char *const *params, pgr_error *err)
{
    return pgr_pg_execp(c->db, sql, n, params, NULL, err);
}

/* Records an operator action (pause, resume, approve, abort, automatic ones) append-only. */
pgr_code coord_operator_log(coord *c, const char *rollout, const char *action, const char *wave,
                            const char *op, const char *detail)
{
    const char *params[] = {rollout, action, wave, op, detail};
    return exec1(c,
                 "INSERT INTO pgrollout_control.operator_log (rollout_id, action, wave, operator, "
                 "detail) VALUES ($1, $2, $3, $4, $5)",
                 5, params, NULL);
}

/* A signed job for one tenant run: next seq, envelope in the outbox, run row updated, one
 * transaction. */
static pgr_code create_job_as(engine *e, const char *tenant, const char *type, const char *target,
                              pgr_error *err)
{
    pgr_job job;
    PGresult *r = NULL;
    char *payload = NULL, *env = NULL, *versions = NULL, seq[32];
    memset(&job, 0, sizeof(job));
    pgr_code rc = pgr_pg_exec(e->c->db, "BEGIN", NULL, err);
    /* the tenant's next seq (1 for a tenant never seen), one round trip */
    if (rc == PGR_OK)
        rc = pgr_pg_execp(e->c->db,
                          "INSERT INTO pgrollout_control.tenants AS t (tenant_id, next_seq) VALUES "
                          "($1, 1) ON CONFLICT (tenant_id) DO UPDATE SET next_seq = t.next_seq + "
                          "1 RETURNING next_seq",
                          1, (const char *[]){tenant}, &r, err);
    if (rc == PGR_OK) {
        snprintf(job.type, sizeof(job.type), "%s", type);
        uuid4(job.job_id);
        job.rollout_id = (char *)(uintptr_t)e->plan.name;
        job.tenant_id = (char *)(uintptr_t)tenant;
        job.seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        job.issued_at = time(NULL);
        job.expires_at = job.issued_at + e->plan.ttl_seconds;
        job.operator_name = (char *)(uintptr_t)e->op;
        job.target = (char *)(uintptr_t)target;
        job.options = e->plan.options;
        job.options.verify_in_job = e->plan.options.verify_in_job && strcmp(type, "apply") == 0;
        payload = pgr_job_build(&job, e->set);
        versions = pgr_job_versions_json(&job, e->set);
        env = payload != NULL
                  ? pgr_envelope_seal(PGR_DOMAIN_JOB, &e->c->key, payload, strlen(payload))
                  : NULL;
        if (env == NULL || versions == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    snprintf(seq, sizeof(seq), "%lld", job.seq);
    /* the envelope in the outbox and the run pointing at it, one statement; a cancel job
     * leaves the run's job as it is */
    if (rc == PGR_OK)
        rc = exec1(e->c,
                   "WITH o AS (INSERT INTO pgrollout_control.job_outbox (job_id, tenant_id, "
                   "envelope, versions) VALUES ($3, $2, $6, $7::jsonb)) UPDATE "
                   "pgrollout_control.tenant_runs SET "
                   "job_id = $3, seq = $4, state = 'queued', job_type = $5, verified_at = "
                   "NULL, updated_at = now() "
                   "WHERE rollout_id = $1 AND tenant_id = $2 AND $5 <> 'cancel'",
                   7, (const char *[]){e->plan.name, tenant, job.job_id, seq, type, env, versions},
                   err);
    rc = rc == PGR_OK ? pgr_pg_exec(e->c->db, "COMMIT", NULL, err) : rc;
    if (rc != PGR_OK)
        PGR_IGNORE(pgr_pg_exec(e->c->db, "ROLLBACK", NULL, NULL));
    free(payload);
    free(env);
    free(versions);
    return rc;
}

static pgr_code create_job(engine *e, const char *tenant, pgr_error *err)
{
    return create_job_as(e, tenant, e->plan.type, e->plan.target, err);
}

/* Jobs are created, published and marked sent this many at a time: with 10,000 tenants in a
 * wave, one round held every envelope twice in memory (the outbox rows and librdkafka's copies,
 * 27 KB each) and published nothing until the last job was signed. */
#define PUBLISH_CHUNK 200

/* Publishes up to PUBLISH_CHUNK unsent outbox rows of the rollout, waits for the broker's
 * acknowledgements, then marks them sent; *more says whether rows were left. A crash before
 * the mark republishes them; agents absorb the duplicate. */
static pgr_code publish_chunk(engine *e, bool *more, pgr_error *err)
{
    PGresult *r = NULL;
    coord *c = e->c;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", PUBLISH_CHUNK);
    pgr_code rc = pgr_pg_execp(c->db,
                               "SELECT o.job_id, o.tenant_id, o.envelope FROM "
                               "pgrollout_control.job_outbox o WHERE o.sent_at IS NULL AND "
                               "o.tenant_id IN (SELECT tenant_id FROM "
                               "pgrollout_control.tenant_runs WHERE rollout_id = $1) ORDER BY "
                               "o.created_at LIMIT $2::int",
                               2, (const char *[]){e->plan.name, limit}, &r, err);
    int n = rc == PGR_OK ? PQntuples(r) : 0;
    *more = n == PUBLISH_CHUNK;
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
        rc = exec1(c,
                   "WITH s AS (UPDATE pgrollout_control.job_outbox SET sent_at = now() WHERE "
                   "job_id = ANY($1::text[])) UPDATE pgrollout_control.tenant_runs SET state = "
                   "'sent' WHERE job_id = ANY($1::text[]) AND state = 'queued'",
                   1, (const char *[]){ids.data}, err);
    pgr_buf_free(&ids);
    if (rc == PGR_OK && n > 0)
        say("rollout %s: %d job(s) published", e->plan.name, n);
    PQclear(r);
    return rc;
}

static pgr_code publish_outbox(engine *e, pgr_error *err)
{
    bool more = true;
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && more)
        rc = publish_chunk(e, &more, err);
    return rc;
}

/* First run of a plan: the rollout, its waves and a pending run per tenant, one transaction.
 * The stored plan carries the absolute migrations path, so `resume` needs nothing else. */
static pgr_code create_rollout(engine *e, pgr_error *err)
{
    rollout_plan *p = &e->plan;
    json_object_set_new(p->doc, "migrations", json_string(p->dir));
    char *text = json_dumps(p->doc, JSON_COMPACT | JSON_SORT_KEYS);
    pgr_code rc = pgr_pg_exec(e->c->db, "BEGIN", NULL, err);
    if (rc == PGR_OK)
        rc = exec1(e->c,
                   "INSERT INTO pgrollout_control.rollouts (rollout_id, plan, state, "
                   "operator) VALUES ($1, $2::jsonb, 'running', $3)",
                   3, (const char *[]){p->name, text, e->op}, err);
    for (size_t w = 0; rc == PGR_OK && w < p->wave_count; w++) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%zu", w);
        rc = exec1(e->c,
                   "INSERT INTO pgrollout_control.rollout_waves (rollout_id, idx, name, "
                   "state) VALUES ($1, $2, $3, 'pending')",
                   3, (const char *[]){p->name, idx, p->waves[w].name}, err);
        for (size_t t = 0; rc == PGR_OK && t < p->waves[w].count; t++)
            rc = exec1(e->c,
                       "INSERT INTO pgrollout_control.tenant_runs (rollout_id, tenant_id, "
                       "wave, state) VALUES ($1, $2, $3, 'pending')",
                       3, (const char *[]){p->name, p->waves[w].tenants[t], idx}, err);
    }
    rc = rc == PGR_OK ? pgr_pg_exec(e->c->db, "COMMIT", NULL, err) : rc;
    if (rc != PGR_OK)
        PGR_IGNORE(pgr_pg_exec(e->c->db, "ROLLBACK", NULL, NULL));
    free(text);
    return rc;
}

typedef struct wave_counts {
    int total, pending, inflight, succeeded, failed;
} wave_counts;

static pgr_code count_wave(engine *e, int w, wave_counts *n, pgr_error *err)
{
    char idx[16];
    PGresult *r = NULL;
    snprintf(idx, sizeof(idx), "%d", w);
    pgr_code rc = pgr_pg_execp(
        e->c->db,
        "SELECT count(*), count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE "
        "state IN ('queued', 'sent', 'running', 'interrupted')), count(*) FILTER (WHERE state = "
        "'succeeded'), count(*) FILTER (WHERE state IN ('failed', 'rejected')) FROM "
        "pgrollout_control.tenant_runs WHERE rollout_id = $1 AND wave = $2",
        2, (const char *[]){e->plan.name, idx}, &r, err);
    if (rc == PGR_OK) {
        n->total = atoi_safe(PQgetvalue(r, 0, 0));
        n->pending = atoi_safe(PQgetvalue(r, 0, 1));
        n->inflight = atoi_safe(PQgetvalue(r, 0, 2));
        n->succeeded = atoi_safe(PQgetvalue(r, 0, 3));
        n->failed = atoi_safe(PQgetvalue(r, 0, 4));
        PQclear(r);
    }
    return rc;
}

typedef enum advance_result { ADV_CONTINUE, ADV_DONE, ADV_FAILED, ADV_PAUSED } advance_result;

/* Stores the rollout's state; false when the control database could not. */
static bool set_rollout(engine *e, const char *state)
{
    return exec1(e->c,
                 "UPDATE pgrollout_control.rollouts SET state = $2, updated_at = now() WHERE "
                 "rollout_id = $1",
                 2, (const char *[]){e->plan.name, state}, NULL) == PGR_OK;
}

static pgr_code set_wave(engine *e, int w, const char *state, int soak)
{
    char idx[16], s[16];
    snprintf(idx, sizeof(idx), "%d", w);
    snprintf(s, sizeof(s), "%d", soak);
    return exec1(e->c,
                 "UPDATE pgrollout_control.rollout_waves SET state = $3, started_at = "
                 "coalesce(started_at, now()), soak_until = CASE WHEN $3 = 'soaking' THEN "
                 "now() + make_interval(secs => $4::int) ELSE soak_until END, finished_at = "
                 "CASE WHEN $3 = 'passed' THEN now() END WHERE rollout_id = $1 AND idx = $2",
                 4, (const char *[]){e->plan.name, idx, state, s}, NULL);
}

/* The current wave (first not passed), its state, approval and soak; -1 when all passed. */
static int current_wave(engine *e, char state[32], bool *approved, bool *soak_due)
{
    PGresult *r = NULL;
    int w = -1;
    if (pgr_pg_execp(e->c->db,
                     "SELECT idx, state, approved_at IS NOT NULL, coalesce(soak_until <= now(), "
                     "true) FROM pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state "
                     "<> 'passed' ORDER BY idx LIMIT 1",
                     1, (const char *[]){e->plan.name}, &r, NULL) != PGR_OK)
        return -2;
    if (PQntuples(r) == 1) {
        w = atoi_safe(PQgetvalue(r, 0, 0));
        snprintf(state, 32, "%s", PQgetvalue(r, 0, 1));
        *approved = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        *soak_due = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    }
    PQclear(r);
    return w;
}

static void rollout_state(engine *e, char out[32])
{
    PGresult *r = NULL;
    snprintf(out, 32, "running");
    if (pgr_pg_execp(e->c->db, "SELECT state FROM pgrollout_control.rollouts WHERE rollout_id = $1",
                     1, (const char *[]){e->plan.name}, &r, NULL) == PGR_OK) {
        if (PQntuples(r) == 1)
            snprintf(out, 32, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

/* Starts jobs of the wave while fewer than max_parallel run: pending tenants are taken in
 * order, PUBLISH_CHUNK at a time, and each chunk is published before the next is signed. */
static pgr_code dispatch(engine *e, int w, wave_counts *n, pgr_error *err)
{
    char idx[16], limit[16];
    snprintf(idx, sizeof(idx), "%d", w);
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && n->pending > 0 && n->inflight < e->plan.waves[w].max_parallel) {
        PGresult *r = NULL;
        int want = e->plan.waves[w].max_parallel - n->inflight;
        snprintf(limit, sizeof(limit), "%d", want < PUBLISH_CHUNK ? want : PUBLISH_CHUNK);
        rc = pgr_pg_execp(e->c->db,
                          "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = "
                          "$1 AND wave = $2 AND state = 'pending' ORDER BY tenant_id LIMIT $3::int",
                          3, (const char *[]){e->plan.name, idx, limit}, &r, err);
        int got = rc == PGR_OK ? PQntuples(r) : 0;
        for (int i = 0; rc == PGR_OK && i < got; i++)
            rc = create_job(e, PQgetvalue(r, i, 0), err);
        PQclear(r);
        n->pending = got == 0 ? 0 : n->pending - got;
        n->inflight += got;
        if (rc == PGR_OK)
            rc = publish_outbox(e, err);
    }
    e->slots_wanted = n->pending > 0;
    return rc == PGR_OK ? publish_outbox(e, err) : rc;
}

/* abort: every tenant still running its job gets a cancel job; the agent stops the job at
 * once (a concurrent index build is cancelled and its invalid leftover dropped). */
static void cancel_inflight(engine *e)
{
    PGresult *r = NULL;
    pgr_error err;
    e->cancels_sent = true;
    if (pgr_pg_execp(e->c->db,
                     "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND state IN ('queued', 'sent', 'running', 'interrupted')",
                     1, (const char *[]){e->plan.name}, &r, NULL) != PGR_OK)
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        if (create_job_as(e, PQgetvalue(r, i, 0), "cancel", NULL, &err) != PGR_OK)
            say("pgrollout: cancel of %s: %s", PQgetvalue(r, i, 0), err.msg);
    }
    PQclear(r);
    if (publish_outbox(e, &err) != PGR_OK)
        say("pgrollout: %s", err.msg);
}

/* on_failure rollback: every tenant of the wave that succeeded gets a rollback job back to
 * the version it had before this rollout's job (its result reported from_version). Tenants
 * still running finish first; their results are rolled back on the next round. */
static int rollback_wave(engine *e, int w)
{
    int created = 0;
    char idx[16];
    PGresult *r = NULL;
    pgr_error err;
    snprintf(idx, sizeof(idx), "%d", w);
    if (pgr_pg_execp(e->c->db,
                     "SELECT tenant_id, from_version FROM "
                     "pgrollout_control.tenant_runs WHERE rollout_id = $1 AND wave = $2 AND "
                     "state = 'succeeded' AND coalesce(job_type, 'apply') IN ('apply', 'verify') "
                     "AND from_version IS NOT NULL",
                     2, (const char *[]){e->plan.name, idx}, &r, NULL) != PGR_OK)
        return 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (create_job_as(e, PQgetvalue(r, i, 0), "rollback", PQgetvalue(r, i, 1), &err) != PGR_OK)
            say("pgrollout: rollback of %s: %s", PQgetvalue(r, i, 0), err.msg);
        else
            created++;
    }
    PQclear(r);
    if (publish_outbox(e, &err) != PGR_OK)
        say("pgrollout: %s", err.msg);
    return created;
}

/* Failures beyond the wave's budget: the plan's on_failure, recorded. */
static void over_budget(engine *e, int w, const wave_counts *n)
{
    char detail[160];
    const char *action = strcmp(e->plan.on_failure, "abort") == 0      ? "aborted"
                         : strcmp(e->plan.on_failure, "rollback") == 0 ? "rolling_back"
                                                                       : "paused";
    snprintf(detail, sizeof(detail), "%d failure(s) in wave %s, budget %d: on_failure %s",
             n->failed, e->plan.waves[w].name, wave_budget(&e->plan.waves[w]), e->plan.on_failure);
    set_rollout(e, action);
    PGR_IGNORE(coord_operator_log(e->c, e->plan.name, action, e->plan.waves[w].name,
                                  "pgrollout (automatic)", detail));
    say("ROLLOUT %s %s: %s", e->plan.name, action, detail);
    if (strcmp(action, "rolling_back") == 0)
        PGR_IGNORE(rollback_wave(e, w));
}

static advance_result finish(engine *e)
{
    PGresult *r = NULL;
    int failed = 0;
    if (pgr_pg_execp(e->c->db,
                     "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND state IN ('failed', 'rejected')",
                     1, (const char *[]){e->plan.name}, &r, NULL) != PGR_OK)
        return ADV_CONTINUE; /* the control database hiccuped: count again next round */
    failed = atoi_safe(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!set_rollout(e, failed == 0 ? "succeeded" : "failed"))
        return ADV_CONTINUE; /* not stored: the next round decides again */
    say("rollout %s: %s (%d failed)", e->plan.name, failed == 0 ? "succeeded" : "failed", failed);
    return failed == 0 ? ADV_DONE : ADV_FAILED;
}

static advance_result gate(engine *e, int w, bool approved)
{
    if (e->plan.waves[w].manual_approval && !approved) {
        set_wave(e, w, "awaiting_approval", 0);
        say("rollout %s: wave %s waits for approval: pgrollout approve %s --wave %s", e->plan.name,
            e->plan.waves[w].name, e->plan.name, e->plan.waves[w].name);
        return ADV_PAUSED;
    }
    /* only a recorded pass moves on at once (a failed update is tried on the next round) */
    e->again = set_wave(e, w, "passed", 0) == PGR_OK;
    return ADV_CONTINUE;
}

/* The post-apply check of a wave: a verify job to every tenant that succeeded (indexes valid
 * and as written, constraints validated, extensions present) and whose apply job did not pass
 * the same check itself (options.verify_in_job: its result said `verified`); a problem is a
 * failure that counts against the wave's budget. Returns how many jobs it queued, or -1 when
 * the control database failed it or one job could not be queued (the wave stays `running`: the
 * next round sends the missing ones, once the queued ones are back). */
static int send_verify(engine *e, int w)
{
    char idx[16];
    PGresult *r = NULL;
    pgr_error err;
    snprintf(idx, sizeof(idx), "%d", w);
    if (pgr_pg_execp(e->c->db,
                     "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND wave = $2 AND state = 'succeeded' AND job_type = 'apply' AND "
                     "verified_at IS NULL",
                     2, (const char *[]){e->plan.name, idx}, &r, NULL) != PGR_OK)
        return -1;
    int n = PQntuples(r), queued = 0;
    for (int i = 0; i < n; i++) {
        if (create_job_as(e, PQgetvalue(r, i, 0), "verify", e->plan.target, &err) == PGR_OK)
            queued++;
        else
            say("pgrollout: verify of %s: %s", PQgetvalue(r, i, 0), err.msg);
    }
    PQclear(r);
    if (queued > 0 && publish_outbox(e, &err) != PGR_OK)
        say("pgrollout: %s", err.msg);
    return queued == n ? n : -1;
}

static advance_result soak_or_gate(engine *e, int w, bool approved)
{
    if (e->plan.waves[w].soak_seconds > 0) {
        set_wave(e, w, "soaking", e->plan.waves[w].soak_seconds);
        return ADV_CONTINUE;
    }
    return gate(e, w, approved);
}

static advance_result advance(engine *e, pgr_error *err)
{
    char rstate[32], wstate[32];
    bool approved = false, soak_due = false;
    wave_counts n;
    rollout_state(e, rstate);
    int w = current_wave(e, wstate, &approved, &soak_due);
    if (w == -1)
        return finish(e);
    if (w < 0 || count_wave(e, w, &n, err) != PGR_OK)
        return ADV_CONTINUE; /* the control DB hiccuped: try again on the next round */
    bool over = n.failed > wave_budget(&e->plan.waves[w]);
    if (over && strcmp(rstate, "running") == 0) {
        over_budget(e, w, &n);
        rollout_state(e, rstate);
        /* over_budget may have queued jobs (rollback): count again */
        if (count_wave(e, w, &n, err) != PGR_OK)
            return ADV_CONTINUE;
    }
    if (strcmp(rstate, "running") != 0) {
        if (strcmp(rstate, "aborted") == 0 && n.inflight > 0 && !e->cancels_sent)
            cancel_inflight(e);
        /* tenants that finished after the decision (those without a reported starting
         * version cannot be rolled back: they stay as they are, and are reported) */
        if (strcmp(rstate, "rolling_back") == 0 && n.inflight == 0 && n.succeeded > 0 &&
            rollback_wave(e, w) > 0)
            return ADV_CONTINUE;
        if (n.inflight > 0)
            return ADV_CONTINUE; /* no new jobs; running ones finish */
        if (strcmp(rstate, "rolling_back") == 0) {
            set_rollout(e, "rolled_back");
            say("rollout %s: wave %s rolled back", e->plan.name, e->plan.waves[w].name);
        }
        return strcmp(rstate, "paused") == 0 ? ADV_PAUSED : ADV_FAILED;
    }
    if (strcmp(wstate, "pending") == 0 || (n.pending > 0 && strcmp(wstate, "running") != 0)) {
        /* a resumed wave may have tenants to (re)run whatever gate it had reached */
        set_wave(e, w, "running", 0);
        snprintf(wstate, sizeof(wstate), "running");
    }
    if (strcmp(wstate, "running") == 0) {
        if (dispatch(e, w, &n, err) != PGR_OK)
            say("pgrollout: %s", err->msg);
        if (n.pending > 0 || n.inflight > 0)
            return ADV_CONTINUE;
        int verifies =
            strcmp(e->plan.type, "apply") == 0 && n.succeeded > 0 ? send_verify(e, w) : 0;
        if (verifies < 0)
            return ADV_CONTINUE; /* not every verify job was queued: the rest on the next round */
        if (verifies > 0) {
            set_wave(e, w, "verifying", 0);
            return ADV_CONTINUE;
        }
        return soak_or_gate(e, w, approved);
    }
    if (strcmp(wstate, "verifying") == 0)
        return n.inflight > 0 ? ADV_CONTINUE : soak_or_gate(e, w, approved);
    if (strcmp(wstate, "soaking") == 0)
        return soak_due ? gate(e, w, approved) : ADV_CONTINUE;
    return gate(e, w, approved); /* awaiting_approval */
}

/* A number column as JSON: an integer when it is one, else a real (percent). */
static json_t *number_json(const char *s)
{
    int64_t i = 0;
    double d = 0;
    if (pgr_parse_int64(s, INT64_MIN, INT64_MAX, &i, NULL) == PGR_OK)
        return json_integer((json_int_t)i);
    if (pgr_parse_double(s, -1e308, 1e308, &d, NULL) == PGR_OK)
        return json_real(d);
    return json_null();
}

/* One progress line for --json: o encoded by jansson (o is consumed), or NULL. */
static char *json_line(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return line;
}

/* Prints line (owned) when it differs from *last, which then holds it. */
static void print_changed(char **last, char *line)
{
    if (line == NULL)
        return;
    if (*last != NULL && strcmp(*last, line) == 0) {
        free(line);
        return;
    }
    printf("%s\n", line);
    free(*last);
    *last = line;
}

/* A wave's progress line: JSON, or text escaped for the terminal (wave names are the plan's,
 * states come from the control database). */
static char *wave_line(const engine *e, const PGresult *r, int i)
{
    int total = atoi_safe(PQgetvalue(r, i, 3)), done = atoi_safe(PQgetvalue(r, i, 4));
    if (e->json) {
        json_t *o = json_object();
        json_object_set_new(o, "wave", pgr_term_json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "state", pgr_term_json_string(PQgetvalue(r, i, 2)));
        json_object_set_new(o, "done", json_integer(done));
        json_object_set_new(o, "total", json_integer(total));
        json_object_set_new(o, "failed", json_integer(atoi_safe(PQgetvalue(r, i, 5))));
        return json_line(o);
    }
    char bar[21], line[1024];
    int fill = total > 0 ? done * 20 / total : 0;
    for (int k = 0; k < 20; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[20] = '\0';
    pgr_term_format(line, sizeof(line), "wave %-12s %-18s [%s] %d/%d done, %s failed",
                    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), bar, done, total,
                    PQgetvalue(r, i, 5));
    return strdup(line);
}

/* One line per wave when its counts change: state, done/total and a bar. */
static void show_waves(engine *e)
{
    PGresult *r = NULL;
    if (pgr_pg_execp(e->c->db,
                     "SELECT w.idx, w.name, w.state, count(t.*), count(t.*) FILTER (WHERE "
                     "t.state IN ('succeeded', 'failed', 'rejected', 'rolled_back')), count(t.*) "
                     "FILTER (WHERE t.state IN ('failed', 'rejected')) FROM "
                     "pgrollout_control.rollout_waves w LEFT JOIN pgrollout_control.tenant_runs t "
                     "ON t.rollout_id = w.rollout_id AND t.wave = w.idx WHERE w.rollout_id = $1 "
                     "GROUP BY w.idx, w.name, w.state ORDER BY w.idx",
                     1, (const char *[]){e->plan.name}, &r, NULL) != PGR_OK)
        return;
    for (int i = 0; i < PQntuples(r) && (size_t)i < e->wave_line_count; i++)
        print_changed(&e->wave_line[i], wave_line(e, r, i));
    PQclear(r);
}

/* A tenant run's progress line: JSON, or text escaped for the terminal (the error is an
 * agent's free text). */
static char *tenant_line(const engine *e, const PGresult *r, int i)
{
    const char *pct = PQgetvalue(r, i, 6);
    if (e->json) {
        json_t *o = json_object();
        json_object_set_new(o, "wave", pgr_term_json_string(PQgetvalue(r, i, 8)));
        json_object_set_new(o, "tenant_id", pgr_term_json_string(PQgetvalue(r, i, 0)));
        json_object_set_new(o, "state", pgr_term_json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "version", pgr_term_json_string(PQgetvalue(r, i, 2)));
        json_object_set_new(o, "step", number_json(PQgetvalue(r, i, 3)));
        json_object_set_new(o, "steps", number_json(PQgetvalue(r, i, 4)));
        json_object_set_new(o, "percent", number_json(pct));
        return json_line(o);
    }
    char line[2048];
    pgr_term_format(line, sizeof(line), "[%s] %-20s %-10s %s %s/%s %s %s%s%s", PQgetvalue(r, i, 8),
                    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                    PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                    strcmp(pct, "0") != 0 ? pct : "", strcmp(pct, "0") != 0 ? "% " : "",
                    PQgetvalue(r, i, 7));
    return strdup(line);
}

/* Prints each tenant run whose line changed (text, or one JSON object per line). */
static void show(engine *e)
{
    show_waves(e);
    PGresult *r = NULL;
    if (pgr_pg_execp(e->c->db,
                     "SELECT t.tenant_id, t.state, coalesce(t.version, ''), coalesce(t.step, 0), "
                     "coalesce(t.steps, 0), coalesce(t.object, ''), coalesce(t.percent, 0), "
                     "coalesce(t.error, ''), w.name FROM pgrollout_control.tenant_runs t JOIN "
                     "pgrollout_control.rollout_waves w ON w.rollout_id = t.rollout_id AND "
                     "w.idx = t.wave WHERE t.rollout_id = $1 ORDER BY t.wave, t.tenant_id",
                     1, (const char *[]){e->plan.name}, &r, NULL) != PGR_OK)
        return;
    if (e->last == NULL) {
        e->last_count = (size_t)PQntuples(r);
        e->last = calloc(e->last_count + 1, sizeof(char *));
    }
    for (int i = 0; e->last != NULL && i < PQntuples(r) && (size_t)i < e->last_count; i++)
        print_changed(&e->last[i], tenant_line(e, r, i));
    fflush(stdout);
    PQclear(r);
}

/* Stores one event (coord_ctldb_consume commits its offset after). A result frees a place in
 * the wave: fill it within milliseconds, not at the next 250 ms tick (with short jobs the tick,
 * not the tenants, set the pace). */
static void store_event(coord *c, const rd_kafka_message_t *m, void *user)
{
    engine *e = user;
    json_t *ev = coord_ingest_event(c, m);
    const char *type = json_string_value(json_object_get(ev, "type"));
    /* any result: a freed place, or the last result a wave's next step (verify, gate) waits for */
    e->slot_freed = e->slot_freed || (type != NULL && strcmp(type, "result") == 0);
    json_decref(ev);
}

static void store_audit(coord *c, const rd_kafka_message_t *m, void *user)
{
    PGR_UNUSED(user);
    coord_audit_ingest(c, m);
}

/* Reads and stores what the agents sent: an event, then up to 100 audit records. Offsets are
 * committed only for what was stored; a message read while the control database was away is
 * held and stored after the reconnect. */
static coord_consumed consume(engine *e, rd_kafka_message_t **held_ev,
                              rd_kafka_message_t **held_audit)
{
    coord_consumed got = coord_ctldb_consume(e->c, &e->ctldb, e->c->consumer, held_ev,
                                             e->slot_freed ? 10 : 200, true, store_event, e);
    for (int k = 0; e->audit != NULL && k < 100; k++) {
        if (coord_ctldb_consume(e->c, &e->ctldb, e->audit, held_audit, 0, false, store_audit,
                                NULL) != COORD_CONSUMED_STORED)
            break;
    }
    return got;
}

/* advance(), repeated at once while waves pass (the next wave, or the end, need not wait for
 * the next round: 200 ms each). */
static advance_result advance_now(engine *e, pgr_error *err)
{
    advance_result res;
    int rounds = 0;
    do {
        e->again = false;
        pgr_error_clear(err);
        res = advance(e, err);
    } while (res == ADV_CONTINUE && e->again && ++rounds < 16);
    return res;
}

static int engine_loop(engine *e, int timeout_s)
{
    pgr_error err;
    time_t deadline = time(NULL) + timeout_s;
    long long last = 0, last_advance = 0;
    advance_result res = ADV_CONTINUE;
    rd_kafka_message_t *held_ev = NULL;
    coord_ctldb_init(&e->ctldb, e->plan.name);
    e->slot_freed = false;
    /* the first jobs go out now, not after the first wait for an event */
    if (coord_ctldb_ready(e->c, &e->ctldb)) {
        res = advance_now(e, &err);
        show(e);
        last = last_advance = pgr_clock_mono_ms();
    }
    while (!run_stop && res == ADV_CONTINUE && time(NULL) < deadline) {
        PGR_IGNORE(coord_reload_keyring(e->c)); /* SIGHUP: between two messages */
        /* without the control database nothing is read (no offset moves) and nothing decided */
        if (!coord_ctldb_ready(e->c, &e->ctldb)) {
            if (e->ctldb.lock_lost)
                break;
            struct timespec pause = {0, 100000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        coord_consumed got = consume(e, &held_ev, &e->held_audit);
        if (pgr_pg_conn_lost(e->c->db))
            continue;
        long long now = pgr_clock_mono_ms();
        if (now - last >= 250 || got != COORD_CONSUMED_STORED) {
            res = advance_now(e, &err);
            show(e);
            last = last_advance = now;
            e->slot_freed = false;
        } else if (e->slot_freed && now - last_advance >= 10) {
            res = advance_now(e, &err); /* the live view waits for the tick */
            last_advance = now;
            e->slot_freed = false;
        }
    }
    coord_ctldb_flush(&e->ctldb);
    /* not committed: the next coordinator reads them again */
    if (held_ev != NULL)
        rd_kafka_message_destroy(held_ev);

    for (size_t i = 0; i < e->last_count; i++)
        free(e->last[i]);
    free(e->last);
    e->last = NULL;
    for (size_t i = 0; i < e->wave_line_count; i++) {
        free(e->wave_line[i]);
        e->wave_line[i] = NULL;
    }
    if (e->ctldb.lock_lost)
        return COORD_EXIT_CONFLICT;
    if (res == ADV_CONTINUE) {
        say("pgrollout: %s; \"pgrollout resume %s\" carries on",
            run_stop ? "interrupted" : "timed out", e->plan.name);
        return COORD_EXIT_FAIL;
    }
    return res == ADV_DONE     ? COORD_EXIT_OK
           : res == ADV_PAUSED ? COORD_EXIT_PAUSED
                               : COORD_EXIT_FAIL;
}

/* Every partition assigned to rk read up to its end (high watermark), by position or, for a
 * partition nothing was read from yet, by the group's committed offset. */
static bool audit_caught_up(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    bool done = rd_kafka_assignment(rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a != NULL &&
                a->cnt > 0 && rd_kafka_position(rk, a) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; done && i < a->cnt; i++) {
        rd_kafka_topic_partition_t *p = &a->elems[i];
        int64_t lo = 0, hi = 0;
        done = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 2000) ==
               RD_KAFKA_RESP_ERR_NO_ERROR;
        if (done && p->offset < 0 && hi > lo) {
            rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(one, p->topic, p->partition);
            done = rd_kafka_committed(rk, one, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                   one->elems[0].offset >= hi;
            rd_kafka_topic_partition_list_destroy(one);
        } else if (done && hi > lo) {
            done = p->offset >= hi;
        }
    }
    if (a != NULL)
        rd_kafka_topic_partition_list_destroy(a);
    return done;
}

/* --collect-audit: before exiting, store what the audit topic holds by now, the rollout's own
 * last records included, for up to 15 s (joining the consumer group alone takes seconds). */
static void drain_audit(engine *e)
{
    rd_kafka_message_t **held = &e->held_audit; /* the loop's, if it left one */
    time_t until = time(NULL) + 15;
    while (!run_stop && time(NULL) < until) {
        if (!coord_ctldb_ready(e->c, &e->ctldb)) {
            struct timespec pause = {0, 100000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        if (coord_ctldb_consume(e->c, &e->ctldb, e->audit, held, 200, false, store_audit, NULL) ==
                COORD_CONSUMED_NONE &&
            audit_caught_up(e->audit))
            break;
    }
}

typedef struct run_args {
    const char *config, *plan, *op, *wave, *rollout;
    const char *rollback_wave; /* `pgrollout rollback`: the wave to roll back */
    bool collect_audit;
    bool rolled_back; /* out: the rollout ended rolled_back */
    bool json;
    int timeout_s;
} run_args;

static int parse_args(int argc, char **argv, const char *cmd, const char *usage, run_args *a,
                      bool want_rollout)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"plan", required_argument, NULL, 'p'},
                                         {"operator", required_argument, NULL, 'o'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"wave", required_argument, NULL, 'w'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"collect-audit", no_argument, NULL, 'A'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    int64_t t = 0;
    memset(a, 0, sizeof(*a));
    a->op = getenv("USER") != NULL ? getenv("USER") : "unknown";
    a->timeout_s = 3600;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c')
            a->config = optarg;
        else if (c == 'p')
            a->plan = optarg;
        else if (c == 'o')
            a->op = optarg;
        else if (c == 'w')
            a->wave = optarg;
        else if (c == 'j')
            a->json = true;
        else if (c == 'A')
            a->collect_audit = true;
        else if (c == 't' && pgr_parse_int64(optarg, 1, 7 * 86400, &t, NULL) == PGR_OK)
            a->timeout_s = (int)t;
        else if (c == 'h') {
            printf("%s", usage);
            return -1;
        } else {
            fprintf(stderr, "pgrollout %s: invalid or unknown option \"%s\"\n%s", cmd,
                    argv[optind - 1], usage);
            return COORD_EXIT_USAGE;
        }
    }
    if (want_rollout && optind == argc - 1)
        a->rollout = argv[optind++];
    if (a->config == NULL || optind != argc || (want_rollout && a->rollout == NULL)) {
        fprintf(stderr, "pgrollout %s: missing or unexpected arguments\n%s", cmd, usage);
        return COORD_EXIT_USAGE;
    }
    return 0;
}

static json_t *stored_plan(coord *c, const char *name)
{
    PGresult *r = NULL;
    json_t *doc = NULL;
    if (pgr_pg_execp(c->db,
                     "SELECT plan::text FROM pgrollout_control.rollouts WHERE rollout_id = $1", 1,
                     (const char *[]){name}, &r, NULL) == PGR_OK) {
        if (PQntuples(r) == 1)
            doc = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        PQclear(r);
    }
    return doc;
}

/* Resume: running again, and the failed tenants of the current wave get a new job. */
static void reopen(engine *e)
{
    set_rollout(e, "running");
    /* a wave stopped while verifying runs again for the tenants that get a new job */
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.rollout_waves SET state = 'running' WHERE "
                     "rollout_id = $1 AND state = 'verifying'",
                     1, (const char *[]){e->plan.name}, NULL));
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.tenant_runs SET state = 'pending', job_id = NULL, "
                     "seq = NULL, error = NULL, updated_at = now() WHERE rollout_id = $1 AND state "
                     "IN ('failed', 'rejected') AND wave = (SELECT min(idx) FROM "
                     "pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state <> 'passed')",
                     1, (const char *[]){e->plan.name}, NULL));
    PGR_IGNORE(coord_operator_log(e->c, e->plan.name, "resume", NULL, e->op, NULL));
}

static int load_migrations(engine *e)
{
    pgr_error err;
    pgr_error_clear(&err);
    if (pgr_migration_dir_load(e->plan.dir, &e->set, &err) != PGR_OK) {
        say("pgrollout: %s", err.msg);
        return COORD_EXIT_USAGE;
    }
    if (e->plan.target != NULL && pgr_migration_set_find(e->set, e->plan.target) == NULL) {
        say("pgrollout: target %s is not one of the migrations", e->plan.target);
        return COORD_EXIT_USAGE;
    }
    return 0;
}

static const char *const run_usage =
    "usage: pgrollout run --config FILE --plan FILE [--operator NAME] [--timeout SEC] [--json]\n"
    "                     [--collect-audit]\n"
    "       pgrollout resume ROLLOUT --config FILE [--operator NAME] [--timeout SEC] [--json]\n\n"
    "run: start the rollout of a plan (docs/ROLLOUTS.md), or carry on with it if it exists;\n"
    "resume: carry on with a paused or interrupted rollout (failed tenants of the current wave\n"
    "get a new job). Both follow the agents' events and move the waves forward.\n"
    "exit codes: 0 complete, 1 failed, aborted or interrupted, 2 usage, 3 another coordinator\n"
    "            runs this rollout, 4 paused (failure budget exceeded, or waiting for approval)\n";

/* `pgrollout rollback ROLLOUT --wave NAME`: that wave becomes the current one again and its
 * tenants that succeeded get rollback jobs to their starting version; the engine then waits
 * for them and ends the rollout as rolled_back. */
static int start_rollback(engine *e, const char *wave)
{
    int w = -1;
    for (size_t i = 0; i < e->plan.wave_count; i++) {
        if (strcmp(e->plan.waves[i].name, wave) == 0)
            w = (int)i;
    }
    if (w < 0) {
        say("pgrollout rollback: rollout %s has no wave \"%s\"", e->plan.name, wave);
        return COORD_EXIT_USAGE;
    }
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", w);
    /* this wave and every later one are no longer passed: nothing after it may proceed */
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.rollout_waves SET state = 'rolling_back' WHERE "
                     "rollout_id = $1 AND idx >= $2::int AND state = 'passed'",
                     2, (const char *[]){e->plan.name, idx}, NULL));
    set_rollout(e, "rolling_back");
    PGR_IGNORE(coord_operator_log(e->c, e->plan.name, "rollback", wave, e->op, NULL));
    PGR_IGNORE(rollback_wave(e, w));
    return 0;
}

static int run_engine(run_args *a, bool resume)
{
    coord c;
    engine e;
    char perr[512];
    memset(&e, 0, sizeof(e));
    e.wave_line_count = 64;
    e.c = &c;
    e.op = a->op;
    e.json = a->json;
    int rc = coord_open(&c, a->config, resume ? "resume" : "run", true);
    json_t *doc = NULL;
    if (rc == 0 && !resume) {
        if (rollout_plan_load(a->plan, c.db, &e.plan, perr, sizeof(perr)) != 0) {
            say("pgrollout run: plan \"%s\": %s", a->plan, perr);
            rc = COORD_EXIT_USAGE;
        } else if ((doc = stored_plan(&c, e.plan.name)) != NULL) {
            say("rollout %s exists: carrying on with its stored plan", e.plan.name);
            rollout_plan_free(&e.plan);
            resume = true;
            a->rollout = NULL;
        }
    }
    if (rc == 0 && resume) {
        if (doc == NULL)
            doc = stored_plan(&c, a->rollout);
        if (doc == NULL) {
            say("pgrollout resume: no rollout \"%s\"", a->rollout);
            rc = COORD_EXIT_USAGE;
        } else if (rollout_plan_resolve(doc, c.db, &e.plan, perr, sizeof(perr)) != 0) {
            say("pgrollout resume: stored plan: %s", perr);
            rc = COORD_EXIT_FAIL;
        }
    }
    if (rc == 0 && !coord_ctldb_lock_rollout(&c, e.plan.name))
        rc = COORD_EXIT_CONFLICT;
    if (rc == 0)
        rc = load_migrations(&e);
    pgr_error err;
    if (rc == 0 && !resume && create_rollout(&e, &err) != PGR_OK) {
        say("pgrollout run: %s", err.msg);
        rc = COORD_EXIT_FAIL;
    }
    if (rc == 0 && resume && a->rollback_wave == NULL) {
        char st[32];
        rollout_state(&e, st);
        if (strcmp(st, "aborted") == 0 || strcmp(st, "rolled_back") == 0) {
            say("pgrollout resume: rollout %s is %s: it does not start again (run a new plan)",
                e.plan.name, st);
            rc = COORD_EXIT_FAIL;
        } else {
            reopen(&e);
        }
    }
    if (rc == 0)
        rc = coord_kafka(&c, "run");
    if (rc == 0 && a->rollback_wave != NULL)
        rc = start_rollback(&e, a->rollback_wave);
    const char *fp = getenv("PGR_FAILPOINT");
    if (rc == 0 && fp != NULL && strcmp(fp, "coord_after_outbox") == 0) {
        /* crash test: the first wave's jobs written to the outbox, none published */
        wave_counts n;
        if (count_wave(&e, 0, &n, &err) == PGR_OK) {
            set_wave(&e, 0, "running", 0);
            for (int i = 0; i < n.pending && i < e.plan.waves[0].max_parallel; i++) {
                PGresult *r = NULL;
                if (pgr_pg_execp(c.db,
                                 "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE "
                                 "rollout_id = $1 AND state = 'pending' AND wave = 0 ORDER "
                                 "BY tenant_id LIMIT 1",
                                 1, (const char *[]){e.plan.name}, &r, NULL) == PGR_OK &&
                    PQntuples(r) == 1)
                    PGR_IGNORE(create_job(&e, PQgetvalue(r, 0, 0), &err));
                PQclear(r);
            }
        }
        raise(SIGKILL);
    }
    if (rc == 0 && a->collect_audit && (e.audit = coord_audit_consumer(&c)) == NULL)
        rc = COORD_EXIT_FAIL;
    if (rc == 0) {
        coord_reload_on_sighup();
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        rc = engine_loop(&e, a->timeout_s);
        if (e.audit != NULL && !e.ctldb.lock_lost)
            drain_audit(&e);
        char st[32];
        rollout_state(&e, st);
        a->rolled_back = strcmp(st, "rolled_back") == 0;
    }
    if (e.held_audit != NULL) /* not committed: read again by the next collector */
        rd_kafka_message_destroy(e.held_audit);
    if (e.audit != NULL) {
        rd_kafka_consumer_close(e.audit);
        rd_kafka_destroy(e.audit);
    }
    pgr_migration_set_free(e.set);
    rollout_plan_free(&e.plan);
    coord_close(&c);
    return rc;
}

int coord_run_main(int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, "run", run_usage, &a, false);
    if (rc != 0)
        return rc < 0 ? COORD_EXIT_OK : rc;
    if (a.plan == NULL) {
        fprintf(stderr, "pgrollout run: --plan FILE is required\n%s", run_usage);
        return COORD_EXIT_USAGE;
    }
    return run_engine(&a, false);
}

int coord_resume_main(int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, "resume", run_usage, &a, true);
    if (rc != 0)
        return rc < 0 ? COORD_EXIT_OK : rc;
    return run_engine(&a, true);
}

/* pause, abort, approve: a state change in the control database, with the operator. */
static int control_main(int argc, char **argv, const char *cmd)
{
    char usage[256];
    run_args a;
    snprintf(usage, sizeof(usage),
             "usage: pgrollout %s ROLLOUT --config FILE [--operator NAME]%s\n", cmd,
             strcmp(cmd, "approve") == 0 ? " [--wave NAME]" : "");
    int rc = parse_args(argc, argv, cmd, usage, &a, true);
    if (rc != 0)
        return rc < 0 ? COORD_EXIT_OK : rc;
    coord c;
    rc = coord_open(&c, a.config, cmd, false);
    pgr_error err;
    PGresult *r = NULL;
    if (rc == 0 && strcmp(cmd, "approve") == 0)
        rc = pgr_pg_execp(c.db,
                          "UPDATE pgrollout_control.rollout_waves SET approved_by = $3, "
                          "approved_at = now() WHERE rollout_id = $1 AND ($2::text IS NULL OR "
                          "name = $2) AND state <> 'passed' AND idx = (SELECT min(idx) FROM "
                          "pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state <> "
                          "'passed' AND ($2::text IS NULL OR name = $2))",
                          3, (const char *[]){a.rollout, a.wave, a.op}, &r, &err) == PGR_OK
                 ? 0
                 : COORD_EXIT_FAIL;
    else if (rc == 0)
        rc = pgr_pg_execp(
                 c.db,
                 "UPDATE pgrollout_control.rollouts SET state = $2, updated_at = now() "
                 "WHERE rollout_id = $1 AND state IN ('running', 'paused')",
                 2, (const char *[]){a.rollout, strcmp(cmd, "pause") == 0 ? "paused" : "aborted"},
                 &r, &err) == PGR_OK
                 ? 0
                 : COORD_EXIT_FAIL;
    if (rc == 0 && strcmp(PQcmdTuples(r), "0") == 0) {
        say("pgrollout %s: nothing to %s in rollout \"%s\"", cmd, cmd, a.rollout);
        rc = COORD_EXIT_FAIL;
    } else if (rc == 0) {
        PGR_IGNORE(coord_operator_log(&c, a.rollout, cmd, a.wave, a.op, NULL));
        pgr_term_printf(stdout, "rollout %s: %s by %s", a.rollout,
                        strcmp(cmd, "approve") == 0 ? "approved"
                        : strcmp(cmd, "pause") == 0 ? "paused"
                                                    : "aborted",
                        a.op);
    } else if (r == NULL && rc == COORD_EXIT_FAIL) {
        say("pgrollout %s: %s", cmd, err.msg);
    }
    PQclear(r);
    coord_close(&c);
    return rc;
}

int coord_rollback_main(int argc, char **argv)
{
    run_args a;
    const char *usage = "usage: pgrollout rollback ROLLOUT --wave NAME --config FILE "
                        "[--operator NAME] [--timeout SEC] [--json]\n"
                        "Rolls the wave's succeeded tenants back to the version each had before "
                        "the rollout,\nthen ends the rollout as rolled_back.\n";
    int rc = parse_args(argc, argv, "rollback", usage, &a, true);
    if (rc != 0)
        return rc < 0 ? COORD_EXIT_OK : rc;
    if (a.wave == NULL) {
        fprintf(stderr, "pgrollout rollback: --wave NAME is required\n%s", usage);
        return COORD_EXIT_USAGE;
    }
    a.rollback_wave = a.wave;
    a.rolled_back = false;
    rc = run_engine(&a, true);
    return rc == COORD_EXIT_FAIL && a.rolled_back ? COORD_EXIT_OK : rc; /* rolled back as asked */
}

int coord_pause_main(int argc, char **argv)
{
    return control_main(argc, argv, "pause");
}

int coord_abort_main(int argc, char **argv)
{
    return control_main(argc, argv, "abort");
}

int coord_approve_main(int argc, char **argv)
{
    return control_main(argc, argv, "approve");
}
