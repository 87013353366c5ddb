/*
 * run.c - `pgrollout run --config FILE --plan FILE`: one flat rollout (waves come later). For
 * every tenant of the plan: a signed job is written to the job outbox together with the tenant
 * run (one transaction), then published, then marked sent; events are followed until every
 * tenant has a result. A crash anywhere is resumed by running the same command again.
 */
#include "coord.h"
#include "coord_cli.h"

#include "pgr/job.h"
#include "pgr/log.h"
#include "pgr/parse.h"
#include "pgr/pg.h"

#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t run_stop = 0;

static void on_signal(int sig)
{
    PGR_UNUSED(sig);
    run_stop = 1;
}

typedef struct run_plan {
    json_t *doc;
    const char *name;
    const char *dir;
    const char *target;
    const char *type;
    json_t *tenants; /* array of strings */
    pgr_job_options options;
    int ttl_seconds;
} run_plan;

static int plan_error(const char *path, const char *field, const char *why)
{
    fprintf(stderr, "pgrollout run: plan \"%s\": %s: %s\n", path, field, why);
    return COORD_EXIT_USAGE;
}

static int plan_load(const char *path, run_plan *p)
{
    json_error_t je;
    memset(p, 0, sizeof(*p));
    p->doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (p->doc == NULL) {
        fprintf(stderr, "pgrollout run: plan \"%s\":%d: %s\n", path, je.line, je.text);
        return COORD_EXIT_USAGE;
    }
    p->name = json_string_value(json_object_get(p->doc, "name"));
    p->dir = json_string_value(json_object_get(p->doc, "migrations"));
    p->target = json_string_value(json_object_get(p->doc, "target"));
    p->type = json_string_value(json_object_get(p->doc, "type"));
    p->tenants = json_object_get(p->doc, "tenants");
    json_t *o = json_object_get(p->doc, "options");
    json_t *ttl = json_object_get(p->doc, "job_ttl_seconds");
    if (p->name == NULL || *p->name == '\0' || strlen(p->name) > 100)
        return plan_error(path, "name", "a non-empty string is required");
    if (p->dir == NULL)
        return plan_error(path, "migrations", "a directory is required");
    if (!json_is_array(p->tenants) || json_array_size(p->tenants) == 0)
        return plan_error(path, "tenants", "a non-empty array of tenant ids is required");
    p->type = p->type != NULL ? p->type : "apply";
    if (strcmp(p->type, "apply") != 0 && strcmp(p->type, "rollback") != 0)
        return plan_error(path, "type", "expected apply or rollback");
    p->ttl_seconds = ttl != NULL ? (int)json_integer_value(ttl) : 3600;
    if (p->ttl_seconds < 60 || p->ttl_seconds > 7 * 86400)
        return plan_error(path, "job_ttl_seconds", "expected 60 to 604800");
    p->options.lock_timeout_ms = 5000;
    p->options.retries = 5;
    if (o != NULL) {
        json_t *lt = json_object_get(o, "lock_timeout_ms"), *re = json_object_get(o, "retries");
        json_t *st = json_object_get(o, "statement_timeout_ms"), *bk = json_object_get(o, "backup");
        const char *orph = json_string_value(json_object_get(o, "orphans"));
        p->options.lock_timeout_ms = lt != NULL ? (int)json_integer_value(lt) : 5000;
        p->options.statement_timeout_ms = st != NULL ? (int)json_integer_value(st) : 0;
        p->options.retries = re != NULL ? (int)json_integer_value(re) : 5;
        p->options.backup = json_is_true(bk);
        if (orph != NULL && strcmp(orph, "abort") != 0 && strcmp(orph, "quarantine") != 0)
            return plan_error(path, "options.orphans", "expected abort or quarantine");
        snprintf(p->options.orphans, sizeof(p->options.orphans), "%s", orph != NULL ? orph : "");
        if (p->options.lock_timeout_ms < 1 || p->options.lock_timeout_ms > 600000)
            return plan_error(path, "options.lock_timeout_ms", "expected 1 to 600000");
        if (p->options.retries < 0 || p->options.retries > 100)
            return plan_error(path, "options.retries", "expected 0 to 100");
    }
    size_t i;
    json_t *t;
    json_array_foreach(p->tenants, i, t)
    {
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 128)
            return plan_error(path, "tenants", "every tenant id is a non-empty string");
    }
    return 0;
}

static int atoi_checked_positive(const char *s)
{
    int64_t v = 0;
    return pgr_parse_int64(s, 1, 86400 * 7, &v, NULL) == PGR_OK ? (int)v : -1;
}

static void uuid4(char out[37])
{
    uint8_t b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* One tenant's job: next seq, signed envelope, outbox row and tenant run, one transaction. */
static pgr_code create_job(coord *c, const run_plan *p, const pgr_migration_set *set,
                           const char *tenant, const char *op, pgr_error *err)
{
    pgr_job job;
    PGresult *r = NULL;
    const char *k[] = {p->name, tenant};
    memset(&job, 0, sizeof(job));
    pgr_code rc = pgr_pg_exec(c->db, "BEGIN", NULL, err);
    if (rc == PGR_OK)
        rc = pgr_pg_execp(c->db,
                          "SELECT 1 FROM pgrollout_control.tenant_runs WHERE rollout_id = $1 AND "
                          "tenant_id = $2",
                          2, k, &r, err);
    bool exists = rc == PGR_OK && PQntuples(r) > 0;
    PQclear(r);
    r = NULL;
    if (rc == PGR_OK && !exists)
        rc = pgr_pg_execp(c->db,
                          "INSERT INTO pgrollout_control.tenants (tenant_id) VALUES ($1) ON "
                          "CONFLICT DO NOTHING",
                          1, (const char *[]){tenant}, NULL, err);
    if (rc == PGR_OK && !exists)
        rc = pgr_pg_execp(c->db,
                          "UPDATE pgrollout_control.tenants SET next_seq = next_seq + 1 WHERE "
                          "tenant_id = $1 RETURNING next_seq",
                          1, (const char *[]){tenant}, &r, err);
    char *payload = NULL, *env = NULL;
    if (rc == PGR_OK && !exists) {
        snprintf(job.type, sizeof(job.type), "%s", p->type);
        uuid4(job.job_id);
        job.rollout_id = (char *)(uintptr_t)p->name;
        job.wave = (char *)(uintptr_t) "all";
        job.tenant_id = (char *)(uintptr_t)tenant;
        job.seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        job.issued_at = time(NULL);
        job.expires_at = job.issued_at + p->ttl_seconds;
        job.operator_name = (char *)(uintptr_t)op;
        job.target = (char *)(uintptr_t)p->target;
        job.options = p->options;
        payload = pgr_job_build(&job, set);
        env = payload != NULL ? pgr_envelope_seal(PGR_DOMAIN_JOB, &c->key, payload, strlen(payload))
                              : NULL;
        if (env == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    char seq[32];
    snprintf(seq, sizeof(seq), "%lld", job.seq);
    const char *params[] = {job.job_id, tenant, env, p->name, seq};
    if (rc == PGR_OK && !exists)
        rc = pgr_pg_execp(c->db,
                          "INSERT INTO pgrollout_control.job_outbox (job_id, tenant_id, envelope) "
                          "VALUES ($1, $2, $3)",
                          3, params, NULL, err);
    if (rc == PGR_OK && !exists)
        rc = pgr_pg_execp(c->db,
                          "INSERT INTO pgrollout_control.tenant_runs (rollout_id, tenant_id, "
                          "job_id, seq, state) VALUES ($1, $2, $3, $4, 'queued')",
                          4, (const char *[]){p->name, tenant, job.job_id, seq}, NULL, err);
    rc = rc == PGR_OK ? pgr_pg_exec(c->db, "COMMIT", NULL, err) : rc;
    if (rc != PGR_OK)
        PGR_IGNORE(pgr_pg_exec(c->db, "ROLLBACK", NULL, NULL));
    free(payload);
    free(env);
    return rc;
}

/* Publishes the rollout's unsent outbox rows, waits for the broker's acknowledgements, then
 * marks them sent. A crash before the mark republishes them; agents absorb the duplicate. */
static pgr_code publish_outbox(coord *c, const char *rollout, int *count, pgr_error *err)
{
    PGresult *r = NULL;
    const char *params[] = {rollout};
    pgr_code rc = pgr_pg_execp(c->db,
                               "SELECT o.job_id, o.tenant_id, o.envelope FROM "
                               "pgrollout_control.job_outbox o JOIN pgrollout_control.tenant_runs "
                               "t USING (job_id) WHERE t.rollout_id = $1 AND o.sent_at IS NULL "
                               "ORDER BY t.seq",
                               1, params, &r, err);
    *count = rc == PGR_OK ? PQntuples(r) : 0;
    int before = c->delivery_errors;
    for (int i = 0; rc == PGR_OK && i < PQntuples(r); i++)
        rc = pgr_kafka_send(c->producer, c->topic_jobs, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                            strlen(PQgetvalue(r, i, 2)), err);
    if (rc == PGR_OK && (rd_kafka_flush(c->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                         c->delivery_errors != before))
        rc = pgr_error_set(err, PGR_ERR_KAFKA,
                           "jobs were not acknowledged by Kafka; they stay in the outbox and are "
                           "sent again by the next run");
    for (int i = 0; rc == PGR_OK && i < PQntuples(r); i++) {
        const char *id[] = {PQgetvalue(r, i, 0)};
        rc = pgr_pg_execp(c->db,
                          "UPDATE pgrollout_control.job_outbox SET sent_at = now() WHERE job_id = "
                          "$1",
                          1, id, NULL, err);
        if (rc == PGR_OK)
            rc = pgr_pg_execp(c->db,
                              "UPDATE pgrollout_control.tenant_runs SET state = 'sent' WHERE "
                              "job_id = $1 AND state = 'queued'",
                              1, id, NULL, err);
    }
    PQclear(r);
    return rc;
}

typedef struct run_view {
    char **last; /* last line printed per tenant */
    size_t count;
} run_view;

/* Prints what changed; returns the number of tenants not yet finished (or -1 on error), and
 * the number that failed in *failed. */
static int show_runs(coord *c, const char *rollout, run_view *v, bool json, int *failed)
{
    PGresult *r = NULL;
    const char *params[] = {rollout};
    if (pgr_pg_execp(c->db,
                     "SELECT tenant_id, state, coalesce(version, ''), coalesce(step, 0), "
                     "coalesce(steps, 0), coalesce(object, ''), coalesce(percent, 0), "
                     "coalesce(error, ''), job_id FROM pgrollout_control.tenant_runs WHERE "
                     "rollout_id = $1 ORDER BY tenant_id",
                     1, params, &r, NULL) != PGR_OK)
        return -1;
    int open = 0;
    *failed = 0;
    if (v->last == NULL) {
        v->count = (size_t)PQntuples(r);
        v->last = calloc(v->count + 1, sizeof(char *));
    }
    for (int i = 0; i < PQntuples(r) && (size_t)i < v->count; i++) {
        const char *state = PQgetvalue(r, i, 1);
        bool done = strcmp(state, "succeeded") == 0;
        bool bad = strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0;
        open += !done && !bad;
        *failed += bad;
        char line[1024];
        if (json)
            snprintf(line, sizeof(line),
                     "{\"tenant_id\":\"%s\",\"state\":\"%s\",\"version\":\"%s\",\"step\":%s,"
                     "\"steps\":%s,\"percent\":%s,\"job_id\":\"%s\"}",
                     PQgetvalue(r, i, 0), state, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                     PQgetvalue(r, i, 4), PQgetvalue(r, i, 6), PQgetvalue(r, i, 8));
        else
            snprintf(line, sizeof(line), "%-24s %-10s %s %s/%s %s %s%s%s", PQgetvalue(r, i, 0),
                     state, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                     PQgetvalue(r, i, 5),
                     strcmp(PQgetvalue(r, i, 6), "0") != 0 ? PQgetvalue(r, i, 6) : "",
                     strcmp(PQgetvalue(r, i, 6), "0") != 0 ? "% " : "", PQgetvalue(r, i, 7));
        if (v->last[i] == NULL || strcmp(v->last[i], line) != 0) {
            printf("%s\n", line);
            free(v->last[i]);
            v->last[i] = strdup(line);
        }
    }
    fflush(stdout);
    PQclear(r);
    return open;
}

/* Consumes events until every tenant of the rollout finished, or timeout, or a signal. */
static int follow(coord *c, const char *rollout, bool json, int timeout_s)
{
    run_view v = {NULL, 0};
    int failed = 0, open = 1;
    time_t deadline = time(NULL) + timeout_s;
    long long last_show = 0;
    while (!run_stop && open > 0 && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->consumer, 200);
        if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            json_t *ev = coord_ingest_event(c, m);
            json_decref(ev);
            /* the event is stored: its offset may be committed */
            rd_kafka_commit_message(c->consumer, m, 1);
        }
        if (m != NULL)
            rd_kafka_message_destroy(m);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (now - last_show >= 250 || m == NULL) {
            open = show_runs(c, rollout, &v, json, &failed);
            last_show = now;
        }
    }
    for (size_t i = 0; i < v.count; i++)
        free(v.last[i]);
    free(v.last);
    if (open != 0) {
        fprintf(stderr, "pgrollout run: %s; run \"pgrollout run\" again to follow it\n",
                run_stop ? "interrupted" : "timed out waiting for results");
        return COORD_EXIT_FAIL;
    }
    const char *params[] = {rollout, failed == 0 ? "succeeded" : "failed"};
    PGR_IGNORE(pgr_pg_execp(c->db,
                            "UPDATE pgrollout_control.rollouts SET state = $2, updated_at = now() "
                            "WHERE rollout_id = $1",
                            2, params, NULL, NULL));
    fprintf(stderr, "rollout %s: %s (%d failed)\n", rollout, params[1], failed);
    return failed == 0 ? COORD_EXIT_OK : COORD_EXIT_FAIL;
}

static int start_rollout(coord *c, const run_plan *p, const char *op, const char *plan_text)
{
    pgr_migration_set *set = NULL;
    pgr_error err;
    pgr_error_clear(&err);
    if (pgr_migration_dir_load(p->dir, &set, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout run: %s\n", err.msg);
        return COORD_EXIT_USAGE;
    }
    if (p->target != NULL && pgr_migration_set_find(set, p->target) == NULL) {
        pgr_migration_set_free(set);
        fprintf(stderr, "pgrollout run: target %s is not one of the migrations\n", p->target);
        return COORD_EXIT_USAGE;
    }
    const char *params[] = {p->name, plan_text, op};
    pgr_code rc = pgr_pg_execp(c->db,
                               "INSERT INTO pgrollout_control.rollouts (rollout_id, plan, state, "
                               "operator) VALUES ($1, $2::jsonb, 'running', $3) ON CONFLICT "
                               "(rollout_id) DO NOTHING",
                               3, params, NULL, &err);
    size_t i;
    json_t *t;
    json_array_foreach(p->tenants, i, t)
    {
        if (rc == PGR_OK)
            rc = create_job(c, p, set, json_string_value(t), op, &err);
    }
    pgr_migration_set_free(set);
    if (rc != PGR_OK) {
        fprintf(stderr, "pgrollout run: %s\n", err.msg);
        return COORD_EXIT_FAIL;
    }
    const char *fp = getenv("PGR_FAILPOINT");
    if (fp != NULL && strcmp(fp, "coord_after_outbox") == 0)
        raise(SIGKILL); /* crash test: jobs written, none published */
    return 0;
}

int coord_run_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"plan", required_argument, NULL, 'p'},
                                         {"operator", required_argument, NULL, 'o'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *plan = NULL, *op = getenv("USER");
    bool json = false;
    int timeout_s = 3600, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'p')
            plan = optarg;
        else if (c == 'o')
            op = optarg;
        else if (c == 't')
            timeout_s = atoi_checked_positive(optarg);
        else if (c == 'j')
            json = true;
        else if (c == 'h') {
            printf("usage: pgrollout run --config FILE --plan FILE [--operator NAME] "
                   "[--timeout SEC] [--json]\n\n"
                   "Signs and publishes one job per tenant of the plan (written to the job "
                   "outbox first),\nthen follows the agents' events until every tenant has a "
                   "result. Running it again\nresumes the same rollout (the plan's name).\n"
                   "exit codes: 0 all succeeded, 1 a tenant failed or the run was interrupted, "
                   "2 usage\n");
            return COORD_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout run: unknown or incomplete option \"%s\"\n",
                    argv[optind - 1]);
            return COORD_EXIT_USAGE;
        }
    }
    if (config == NULL || plan == NULL || optind != argc || timeout_s <= 0) {
        fprintf(stderr, "pgrollout run: --config FILE and --plan FILE are required\n");
        return COORD_EXIT_USAGE;
    }
    run_plan p;
    int rc = plan_load(plan, &p);
    coord co;
    memset(&co, 0, sizeof(co));
    if (rc == 0)
        rc = coord_open(&co, config, "run", true);
    if (rc == 0)
        rc = coord_kafka(&co, "run");
    char *plan_text = rc == 0 ? json_dumps(p.doc, JSON_COMPACT) : NULL;
    if (rc == 0)
        rc = start_rollout(&co, &p, op != NULL ? op : "unknown", plan_text);
    free(plan_text);
    int sent = 0;
    pgr_error err;
    if (rc == 0 && publish_outbox(&co, p.name, &sent, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout run: %s\n", err.msg);
        rc = COORD_EXIT_FAIL;
    }
    if (rc == 0) {
        fprintf(stderr, "rollout %s: %d job(s) published\n", p.name, sent);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        rc = follow(&co, p.name, json, timeout_s);
    }
    coord_close(&co);
    json_decref(p.doc);
    return rc;
}
