/*
 * engine.c - the staged rollout engine (engine.h). The rollout, its waves and every tenant run
 * live in the control database; this loop only moves them forward: it starts a wave, publishes
 * at most max_parallel jobs at a time through the job outbox (outbox.c), folds the agents'
 * signed events in, and gates each wave on success within its failure budget, its soak time
 * and, if asked, a manual approval. Kill it anywhere and `resume` carries on without
 * publishing a job twice.
 */
#include "engine.h"
#include "audit_ingest.h"
#include "ctldb.h"
#include "event_ingest.h"
#include "live.h"
#include "outbox.h"
#include "verbs.h"

#include "pgr/clock.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct coord_engine {
    coord *c;
    coord_planfile *plan;
    pgr_migration_set *set;
    const char *op;
    coord_outbox outbox; /* the jobs of this rollout: c, plan, set and op */
    coord_live live;
    bool cancels_sent;
    rd_kafka_t *audit; /* --collect-audit: the collector runs inside the engine loop */
    coord_ctldb ctldb; /* control-database reconnection state (ctldb.c) */
    bool slot_freed;   /* a result arrived since the last round */
    bool again;        /* a wave passed in this round: advance again at once */
    /* --collect-audit: an audit message read but not stored (control database away); the
     * drain after the loop starts from it, so that no later offset is committed past it */
    rd_kafka_message_t *held_audit;
    bool slots_wanted;                 /* the last dispatch left tenants waiting for a free place */
    const volatile sig_atomic_t *stop; /* set by a signal: the loop and the drain end */
};

static pgr_code exec1(coord *c, const char *sql, int n, const char *const *params, pgr_error *err)
{
    return pgr_pg_execp(c->db, sql, n, params, NULL, err);
}

static pgr_code create_job(coord_engine *e, const char *tenant, pgr_error *err)
{
    return coord_outbox_create_job(&e->outbox, tenant, e->plan->type, e->plan->target, err);
}

coord_engine *coord_engine_new(coord *c, coord_planfile *plan, const char *op, bool json)
{
    coord_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->c = c;
    e->plan = plan;
    e->op = op;
    e->outbox = (coord_outbox){.c = c, .plan = plan, .set = NULL, .op = op};
    coord_live_init(&e->live, json);
    return e;
}

void coord_engine_free(coord_engine *e)
{
    if (e == NULL)
        return;
    if (e->held_audit != NULL) /* not committed: read again by the next collector */
        rd_kafka_message_destroy(e->held_audit);
    if (e->audit != NULL) {
        rd_kafka_consumer_close(e->audit);
        rd_kafka_destroy(e->audit);
    }
    pgr_migration_set_free(e->set);
    coord_live_free(&e->live);
    free(e);
}

pgr_code coord_engine_collect_audit(coord_engine *e, pgr_error *err)
{
    return coord_audit_consumer(e->c, &e->audit, err);
}

pgr_code coord_engine_create_rollout(coord_engine *e, pgr_error *err)
{
    coord_planfile *p = e->plan;
    json_object_set_new(p->doc, "migrations", json_string(p->dir));
    char *text = json_dumps(p->doc, JSON_COMPACT | JSON_SORT_KEYS);
    pgr_code rc = pgr_pg_exec(e->c->db, "BEGIN", NULL, err);
    if (rc == PGR_OK)
        rc = exec1(e->c,
                   "INSERT INTO pgrollout_control.rollouts (rollout_id, plan, state, "
                   "operator) VALUES ($1, $2::jsonb, 'running', $3)",
                   3, (const char *[]){p->name, text, e->op}, err);
    for (size_t w = 0; rc == PGR_OK && w < p->wave_count; w++) {
        char idx[24];
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

static pgr_code count_wave(coord_engine *e, int w, wave_counts *n, pgr_error *err)
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
        2, (const char *[]){e->plan->name, idx}, &r, err);
    if (rc == PGR_OK) {
        n->total = coord_ctldb_int(r, 0, 0);
        n->pending = coord_ctldb_int(r, 0, 1);
        n->inflight = coord_ctldb_int(r, 0, 2);
        n->succeeded = coord_ctldb_int(r, 0, 3);
        n->failed = coord_ctldb_int(r, 0, 4);
        PQclear(r);
    }
    return rc;
}

typedef enum advance_result { ADV_CONTINUE, ADV_DONE, ADV_FAILED, ADV_PAUSED } advance_result;

/* Stores the rollout's state; false when the control database could not. */
static bool set_rollout(coord_engine *e, const char *state)
{
    return exec1(e->c,
                 "UPDATE pgrollout_control.rollouts SET state = $2, updated_at = now() WHERE "
                 "rollout_id = $1",
                 2, (const char *[]){e->plan->name, state}, NULL) == PGR_OK;
}

static pgr_code set_wave(coord_engine *e, int w, const char *state, int soak)
{
    char idx[16], s[16];
    snprintf(idx, sizeof(idx), "%d", w);
    snprintf(s, sizeof(s), "%d", soak);
    return exec1(e->c,
                 "UPDATE pgrollout_control.rollout_waves SET state = $3, started_at = "
                 "coalesce(started_at, now()), soak_until = CASE WHEN $3 = 'soaking' THEN "
                 "now() + make_interval(secs => $4::int) ELSE soak_until END, finished_at = "
                 "CASE WHEN $3 = 'passed' THEN now() END WHERE rollout_id = $1 AND idx = $2",
                 4, (const char *[]){e->plan->name, idx, state, s}, NULL);
}

/* The current wave (first not passed), its state, approval and soak; -1 when all passed. */
static int current_wave(coord_engine *e, char state[32], bool *approved, bool *soak_due)
{
    PGresult *r = NULL;
    int w = -1;
    if (pgr_pg_execp(e->c->db,
                     "SELECT idx, state, approved_at IS NOT NULL, coalesce(soak_until <= now(), "
                     "true) FROM pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state "
                     "<> 'passed' ORDER BY idx LIMIT 1",
                     1, (const char *[]){e->plan->name}, &r, NULL) != PGR_OK)
        return -2;
    if (PQntuples(r) == 1) {
        w = coord_ctldb_int(r, 0, 0);
        snprintf(state, 32, "%s", PQgetvalue(r, 0, 1));
        *approved = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        *soak_due = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    }
    PQclear(r);
    return w;
}

void coord_engine_rollout_state(coord_engine *e, char out[32])
{
    PGresult *r = NULL;
    snprintf(out, 32, "running");
    if (pgr_pg_execp(e->c->db, "SELECT state FROM pgrollout_control.rollouts WHERE rollout_id = $1",
                     1, (const char *[]){e->plan->name}, &r, NULL) == PGR_OK) {
        if (PQntuples(r) == 1)
            snprintf(out, 32, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

/* Starts jobs of the wave while fewer than max_parallel run: pending tenants are taken in
 * order, COORD_OUTBOX_CHUNK at a time, and each chunk is published before the next is signed. */
static pgr_code dispatch(coord_engine *e, int w, wave_counts *n, pgr_error *err)
{
    char idx[16], limit[16];
    snprintf(idx, sizeof(idx), "%d", w);
    pgr_code rc = PGR_OK;
    while (rc == PGR_OK && n->pending > 0 && n->inflight < e->plan->waves[w].max_parallel) {
        PGresult *r = NULL;
        int want = e->plan->waves[w].max_parallel - n->inflight;
        snprintf(limit, sizeof(limit), "%d", want < COORD_OUTBOX_CHUNK ? want : COORD_OUTBOX_CHUNK);
        rc = pgr_pg_execp(e->c->db,
                          "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = "
                          "$1 AND wave = $2 AND state = 'pending' ORDER BY tenant_id LIMIT $3::int",
                          3, (const char *[]){e->plan->name, idx, limit}, &r, err);
        int got = rc == PGR_OK ? PQntuples(r) : 0;
        for (int i = 0; rc == PGR_OK && i < got; i++)
            rc = create_job(e, PQgetvalue(r, i, 0), err);
        PQclear(r);
        n->pending = got == 0 ? 0 : n->pending - got;
        n->inflight += got;
        if (rc == PGR_OK)
            rc = coord_outbox_publish(&e->outbox, err);
    }
    e->slots_wanted = n->pending > 0;
    return rc == PGR_OK ? coord_outbox_publish(&e->outbox, err) : rc;
}

/* abort: every tenant still running its job gets a cancel job; the agent stops the job at
 * once (a concurrent index build is cancelled and its invalid leftover dropped). */
static void cancel_inflight(coord_engine *e)
{
    PGresult *r = NULL;
    pgr_error err;
    e->cancels_sent = true;
    if (pgr_pg_execp(e->c->db,
                     "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND state IN ('queued', 'sent', 'running', 'interrupted')",
                     1, (const char *[]){e->plan->name}, &r, NULL) != PGR_OK)
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        if (coord_outbox_create_job(&e->outbox, PQgetvalue(r, i, 0), "cancel", NULL, &err) !=
            PGR_OK)
            pgr_term_printf(stderr, "pgrollout: cancel of %s: %s", PQgetvalue(r, i, 0), err.msg);
    }
    PQclear(r);
    if (coord_outbox_publish(&e->outbox, &err) != PGR_OK)
        pgr_term_printf(stderr, "pgrollout: %s", err.msg);
}

/* on_failure rollback: every tenant of the wave that succeeded gets a rollback job back to
 * the version it had before this rollout's job (its result reported from_version). Tenants
 * still running finish first; their results are rolled back on the next round. */
static int rollback_wave(coord_engine *e, int w)
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
                     2, (const char *[]){e->plan->name, idx}, &r, NULL) != PGR_OK)
        return 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (coord_outbox_create_job(&e->outbox, PQgetvalue(r, i, 0), "rollback",
                                    PQgetvalue(r, i, 1), &err) != PGR_OK)
            pgr_term_printf(stderr, "pgrollout: rollback of %s: %s", PQgetvalue(r, i, 0), err.msg);
        else
            created++;
    }
    PQclear(r);
    if (coord_outbox_publish(&e->outbox, &err) != PGR_OK)
        pgr_term_printf(stderr, "pgrollout: %s", err.msg);
    return created;
}

/* Failures beyond the wave's budget: the plan's on_failure, recorded. */
static void over_budget(coord_engine *e, int w, const wave_counts *n)
{
    char detail[160];
    const char *action = strcmp(e->plan->on_failure, "abort") == 0      ? "aborted"
                         : strcmp(e->plan->on_failure, "rollback") == 0 ? "rolling_back"
                                                                        : "paused";
    snprintf(detail, sizeof(detail), "%d failure(s) in wave %s, budget %d: on_failure %s",
             n->failed, e->plan->waves[w].name, coord_planfile_wave_budget(&e->plan->waves[w]),
             e->plan->on_failure);
    set_rollout(e, action);
    PGR_IGNORE(coord_verbs_log(e->c, e->plan->name, action, e->plan->waves[w].name,
                               "pgrollout (automatic)", detail));
    pgr_term_printf(stderr, "ROLLOUT %s %s: %s", e->plan->name, action, detail);
    if (strcmp(action, "rolling_back") == 0)
        PGR_IGNORE(rollback_wave(e, w));
}

static advance_result finish(coord_engine *e)
{
    PGresult *r = NULL;
    int failed = 0;
    if (pgr_pg_execp(e->c->db,
                     "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND state IN ('failed', 'rejected')",
                     1, (const char *[]){e->plan->name}, &r, NULL) != PGR_OK)
        return ADV_CONTINUE; /* the control database hiccuped: count again next round */
    failed = coord_ctldb_int(r, 0, 0);
    PQclear(r);
    if (!set_rollout(e, failed == 0 ? "succeeded" : "failed"))
        return ADV_CONTINUE; /* not stored: the next round decides again */
    pgr_term_printf(stderr, "rollout %s: %s (%d failed)", e->plan->name,
                    failed == 0 ? "succeeded" : "failed", failed);
    return failed == 0 ? ADV_DONE : ADV_FAILED;
}

static advance_result gate(coord_engine *e, int w, bool approved)
{
    if (e->plan->waves[w].manual_approval && !approved) {
        set_wave(e, w, "awaiting_approval", 0);
        pgr_term_printf(
            stderr, "rollout %s: wave %s waits for approval: pgrollout approve %s --wave %s",
            e->plan->name, e->plan->waves[w].name, e->plan->name, e->plan->waves[w].name);
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
static int send_verify(coord_engine *e, int w)
{
    char idx[16];
    PGresult *r = NULL;
    pgr_error err;
    snprintf(idx, sizeof(idx), "%d", w);
    if (pgr_pg_execp(e->c->db,
                     "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 "
                     "AND wave = $2 AND state = 'succeeded' AND job_type = 'apply' AND "
                     "verified_at IS NULL",
                     2, (const char *[]){e->plan->name, idx}, &r, NULL) != PGR_OK)
        return -1;
    int n = PQntuples(r), queued = 0;
    for (int i = 0; i < n; i++) {
        if (coord_outbox_create_job(&e->outbox, PQgetvalue(r, i, 0), "verify", e->plan->target,
                                    &err) == PGR_OK)
            queued++;
        else
            pgr_term_printf(stderr, "pgrollout: verify of %s: %s", PQgetvalue(r, i, 0), err.msg);
    }
    PQclear(r);
    if (queued > 0 && coord_outbox_publish(&e->outbox, &err) != PGR_OK)
        pgr_term_printf(stderr, "pgrollout: %s", err.msg);
    return queued == n ? n : -1;
}

static advance_result soak_or_gate(coord_engine *e, int w, bool approved)
{
    if (e->plan->waves[w].soak_seconds > 0) {
        set_wave(e, w, "soaking", e->plan->waves[w].soak_seconds);
        return ADV_CONTINUE;
    }
    return gate(e, w, approved);
}

static advance_result advance(coord_engine *e, pgr_error *err)
{
    char rstate[32], wstate[32];
    bool approved = false, soak_due = false;
    wave_counts n;
    coord_engine_rollout_state(e, rstate);
    int w = current_wave(e, wstate, &approved, &soak_due);
    if (w == -1)
        return finish(e);
    if (w < 0 || count_wave(e, w, &n, err) != PGR_OK)
        return ADV_CONTINUE; /* the control DB hiccuped: try again on the next round */
    bool over = n.failed > coord_planfile_wave_budget(&e->plan->waves[w]);
    if (over && strcmp(rstate, "running") == 0) {
        over_budget(e, w, &n);
        coord_engine_rollout_state(e, rstate);
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
            pgr_term_printf(stderr, "rollout %s: wave %s rolled back", e->plan->name,
                            e->plan->waves[w].name);
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
            pgr_term_printf(stderr, "pgrollout: %s", err->msg);
        if (n.pending > 0 || n.inflight > 0)
            return ADV_CONTINUE;
        int verifies =
            strcmp(e->plan->type, "apply") == 0 && n.succeeded > 0 ? send_verify(e, w) : 0;
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

/* Stores one event (coord_ctldb_consume commits its offset after). A result frees a place in
 * the wave: fill it within milliseconds, not at the next 250 ms tick (with short jobs the tick,
 * not the tenants, set the pace). */
static void store_event(coord *c, const rd_kafka_message_t *m, void *user)
{
    coord_engine *e = user;
    json_t *ev = coord_event_ingest(c, m);
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
static coord_ctldb_consumed consume(coord_engine *e, rd_kafka_message_t **held_ev,
                                    rd_kafka_message_t **held_audit)
{
    coord_ctldb_consumed got = coord_ctldb_consume(e->c, &e->ctldb, e->c->consumer, held_ev,
                                                   e->slot_freed ? 10 : 200, true, store_event, e);
    for (int k = 0; e->audit != NULL && k < 100; k++) {
        if (coord_ctldb_consume(e->c, &e->ctldb, e->audit, held_audit, 0, false, store_audit,
                                NULL) != COORD_CTLDB_CONSUMED_STORED)
            break;
    }
    return got;
}

/* advance(), repeated at once while waves pass (the next wave, or the end, need not wait for
 * the next round: 200 ms each). */
static advance_result advance_now(coord_engine *e, pgr_error *err)
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

coord_engine_end coord_engine_run(coord_engine *e, int timeout_s, const volatile sig_atomic_t *stop)
{
    pgr_error err;
    time_t deadline = time(NULL) + timeout_s;
    long long last = 0, last_advance = 0;
    advance_result res = ADV_CONTINUE;
    rd_kafka_message_t *held_ev = NULL;
    e->stop = stop;
    coord_ctldb_init(&e->ctldb, e->plan->name);
    e->slot_freed = false;
    /* the first jobs go out now, not after the first wait for an event */
    if (coord_ctldb_ready(e->c, &e->ctldb)) {
        res = advance_now(e, &err);
        coord_live_show(&e->live, e->c, e->plan->name);
        last = last_advance = pgr_clock_mono_ms();
    }
    while (!*e->stop && res == ADV_CONTINUE && time(NULL) < deadline) {
        PGR_IGNORE(coord_reload_keyring(e->c)); /* SIGHUP: between two messages */
        /* without the control database nothing is read (no offset moves) and nothing decided */
        if (!coord_ctldb_ready(e->c, &e->ctldb)) {
            if (e->ctldb.lock_lost)
                break;
            pgr_clock_sleep_ms(100);
            continue;
        }
        coord_ctldb_consumed got = consume(e, &held_ev, &e->held_audit);
        if (pgr_pg_conn_lost(e->c->db))
            continue;
        long long now = pgr_clock_mono_ms();
        if (now - last >= 250 || got != COORD_CTLDB_CONSUMED_STORED) {
            res = advance_now(e, &err);
            coord_live_show(&e->live, e->c, e->plan->name);
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

    coord_live_free(&e->live);
    if (e->ctldb.lock_lost)
        return COORD_ENGINE_LOCK_LOST;
    if (res == ADV_CONTINUE)
        return *e->stop ? COORD_ENGINE_INTERRUPTED : COORD_ENGINE_TIMED_OUT;
    return res == ADV_DONE     ? COORD_ENGINE_SUCCEEDED
           : res == ADV_PAUSED ? COORD_ENGINE_PAUSED
                               : COORD_ENGINE_FAILED;
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
void coord_engine_drain_audit(coord_engine *e)
{
    rd_kafka_message_t **held = &e->held_audit; /* the loop's, if it left one */
    if (e->audit == NULL || e->stop == NULL || e->ctldb.lock_lost)
        return;
    time_t until = time(NULL) + 15;
    while (!*e->stop && time(NULL) < until) {
        if (!coord_ctldb_ready(e->c, &e->ctldb)) {
            pgr_clock_sleep_ms(100);
            continue;
        }
        if (coord_ctldb_consume(e->c, &e->ctldb, e->audit, held, 200, false, store_audit, NULL) ==
                COORD_CTLDB_CONSUMED_NONE &&
            audit_caught_up(e->audit))
            break;
    }
}

json_t *coord_engine_stored_plan(coord *c, const char *name)
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

void coord_engine_reopen(coord_engine *e)
{
    set_rollout(e, "running");
    /* a wave stopped while verifying runs again for the tenants that get a new job */
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.rollout_waves SET state = 'running' WHERE "
                     "rollout_id = $1 AND state = 'verifying'",
                     1, (const char *[]){e->plan->name}, NULL));
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.tenant_runs SET state = 'pending', job_id = NULL, "
                     "seq = NULL, error = NULL, updated_at = now() WHERE rollout_id = $1 AND state "
                     "IN ('failed', 'rejected') AND wave = (SELECT min(idx) FROM "
                     "pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state <> 'passed')",
                     1, (const char *[]){e->plan->name}, NULL));
    PGR_IGNORE(coord_verbs_log(e->c, e->plan->name, "resume", NULL, e->op, NULL));
}

pgr_code coord_engine_load_migrations(coord_engine *e, pgr_error *err)
{
    pgr_error_clear(err);
    pgr_code rc = pgr_migration_dir_load(e->plan->dir, &e->set, err);
    if (rc != PGR_OK)
        return rc;
    e->outbox.set = e->set;
    if (e->plan->target != NULL && pgr_migration_set_find(e->set, e->plan->target) == NULL)
        return pgr_error_set(err, PGR_ERR_NOTFOUND, "target %s is not one of the migrations",
                             e->plan->target);
    return PGR_OK;
}

pgr_code coord_engine_start_rollback(coord_engine *e, const char *wave, pgr_error *err)
{
    int w = -1;
    for (size_t i = 0; i < e->plan->wave_count; i++) {
        if (strcmp(e->plan->waves[i].name, wave) == 0)
            w = (int)i;
    }
    if (w < 0)
        return pgr_error_set(err, PGR_ERR_NOTFOUND, "rollout %s has no wave \"%s\"", e->plan->name,
                             wave);
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", w);
    /* this wave and every later one are no longer passed: nothing after it may proceed */
    PGR_IGNORE(exec1(e->c,
                     "UPDATE pgrollout_control.rollout_waves SET state = 'rolling_back' WHERE "
                     "rollout_id = $1 AND idx >= $2::int AND state = 'passed'",
                     2, (const char *[]){e->plan->name, idx}, NULL));
    set_rollout(e, "rolling_back");
    PGR_IGNORE(coord_verbs_log(e->c, e->plan->name, "rollback", wave, e->op, NULL));
    PGR_IGNORE(rollback_wave(e, w));
    return PGR_OK;
}

void coord_engine_failpoint(coord_engine *e)
{
    pgr_error err;
    const char *fp = getenv("PGR_FAILPOINT");
    if (fp == NULL || strcmp(fp, "coord_after_outbox") != 0)
        return;
    /* crash test: the first wave's jobs written to the outbox, none published */
    wave_counts n;
    if (count_wave(e, 0, &n, &err) == PGR_OK) {
        set_wave(e, 0, "running", 0);
        for (int i = 0; i < n.pending && i < e->plan->waves[0].max_parallel; i++) {
            PGresult *r = NULL;
            if (pgr_pg_execp(e->c->db,
                             "SELECT tenant_id FROM pgrollout_control.tenant_runs WHERE "
                             "rollout_id = $1 AND state = 'pending' AND wave = 0 ORDER "
                             "BY tenant_id LIMIT 1",
                             1, (const char *[]){e->plan->name}, &r, NULL) == PGR_OK &&
                PQntuples(r) == 1)
                PGR_IGNORE(create_job(e, PQgetvalue(r, 0, 0), &err));
            PQclear(r);
        }
    }
    raise(SIGKILL);
}
