/*
 * index.c - CREATE INDEX CONCURRENTLY with recovery. Before the build, an INVALID index of the
 * same name (left by a failed or killed build) is dropped concurrently; a VALID one with the
 * same definition means the build already happened (a crash before it was recorded); a VALID
 * one with another definition is drift. While the build runs, a second session polls
 * pg_stat_progress_create_index for the builder's pid and reports phase and percentage. After
 * the build the index must be valid, or it is dropped again and the step fails.
 */
#include "failpoint.h"
#include "index.h"
#include "step.h"

#include "pgr/indexdef.h"
#include "pgr/pg.h"
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#define PROGRESS_INTERVAL_MS 250

/* Schema part of a step's table ("public.users" -> "public"), or NULL. */
static char *table_schema(const pgr_step *s)
{
    const char *dot = strchr(s->table, '.');
    return dot != NULL ? strndup(s->table, (size_t)(dot - s->table)) : NULL;
}

pgr_code agent_index_lookup(agent_exec *x, const pgr_step *s, bool *found, bool *valid, char **def,
                            pgr_error *err)
{
    PGresult *r = NULL;
    pgr_buf table;
    pgr_buf_init(&table);
    /* An index always lives in its table's schema: look it up there, not in current_schema(). */
    pgr_code rc = pgr_sqlgen_qualified(x->conn, &table, s->table, err);
    const char *params[] = {s->name, table.data};
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn,
                          "SELECT i.indisvalid AND i.indisready, pg_get_indexdef(i.indexrelid) "
                          "FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                          "WHERE c.relname = $1 AND c.relnamespace = (SELECT relnamespace FROM "
                          "pg_class WHERE oid = to_regclass($2))",
                          2, params, &r, err);
    pgr_buf_free(&table);
    if (rc != PGR_OK)
        return rc;
    *found = PQntuples(r) == 1;
    *valid = *found && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (def != NULL)
        *def = *found ? strdup(PQgetvalue(r, 0, 1)) : NULL;
    PQclear(r);
    return PGR_OK;
}

static pgr_code drop_index(agent_exec *x, const pgr_step *s, pgr_error *err)
{
    pgr_buf sql;
    char *schema = table_schema(s);
    pgr_buf_init(&sql);
    pgr_code rc = pgr_buf_appendf(&sql, "DROP INDEX CONCURRENTLY IF EXISTS ");
    if (rc == PGR_OK && schema != NULL) {
        rc = pgr_sqlgen_ident(x->conn, &sql, schema, err);
        if (rc == PGR_OK)
            rc = pgr_buf_append(&sql, ".", 1);
    }
    if (rc == PGR_OK)
        rc = pgr_sqlgen_ident(x->conn, &sql, s->name, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql.data, NULL, err);
    free(schema);
    pgr_buf_free(&sql);
    return rc;
}

/* Phases of CREATE INDEX CONCURRENTLY and the share of the whole build each stands for. */
static double phase_percent(const char *phase, double frac)
{
    static const struct {
        const char *prefix;
        double base, span;
    } map[] = {
        {"initializing", 0, 0},
        {"waiting for writers before build", 0, 2},
        {"building index: scanning table", 2, 48},
        {"building index: sorting live tuples", 50, 5},
        {"building index: loading tuples in tree", 55, 10},
        {"building index", 2, 63},
        {"waiting for writers before validation", 65, 2},
        {"index validation: scanning index", 67, 8},
        {"index validation: sorting tuples", 75, 5},
        {"index validation: scanning table", 80, 15},
        {"waiting for old snapshots", 95, 3},
        {"waiting for readers before marking dead", 98, 1},
        {"waiting for readers before dropping", 99, 1},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strncmp(phase, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].base + map[i].span * (frac < 0 ? 0 : frac > 1 ? 1 : frac);
    }
    return -1;
}

typedef struct progress_state {
    double last_percent;
    long long last_poll;
    long long last_connect;
} progress_state;

static void poll_progress(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                          int pid, progress_state *ps)
{
    char pidbuf[16], obj[AGENT_OBJECT_LEN];
    PGresult *r = NULL;

    /* Progress is informational: the build goes on without it. A broken progress session is
     * dropped and reopened at most every 5 s, so it never stalls the build loop for long. */
    if (x->progress_conn == NULL) {
        if (pgr_clock_mono_ms() - ps->last_connect < 5000)
            return;
        ps->last_connect = pgr_clock_mono_ms();
        if (pgr_pg_connect(x->o->dsn, "pgrollout-agent-progress", &x->progress_conn, NULL) !=
                PGR_OK ||
            pgr_pg_exec(x->progress_conn, "SET lock_timeout = 1000; SET statement_timeout = 2000",
                        NULL, NULL) != PGR_OK) {
            PQfinish(x->progress_conn);
            x->progress_conn = NULL;
            return;
        }
    }
    snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
    const char *params[] = {pidbuf};
    if (pgr_pg_execp(x->progress_conn,
                     "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
                     "FROM pg_stat_progress_create_index WHERE pid = $1",
                     1, params, &r, NULL) != PGR_OK) {
        PQfinish(x->progress_conn);
        x->progress_conn = NULL;
        return;
    }
    if (PQntuples(r) == 1) {
        long long bd = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        long long bt = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        long long td = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        long long tt = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
        double frac = bt > 0 ? (double)bd / (double)bt : tt > 0 ? (double)td / (double)tt : 0;
        double pct = phase_percent(PQgetvalue(r, 0, 0), frac);
        /* percentages only move forward, so a phase change never looks like regress */
        if (pct < ps->last_percent)
            pct = ps->last_percent;
        ps->last_percent = pct;
        agent_event ev;
        agent_step_event(&ev, AGENT_EV_STEP_PROGRESS, m, s, count, obj);
        ev.phase = PQgetvalue(r, 0, 0);
        ev.blocks_done = bd;
        ev.blocks_total = bt;
        ev.tuples_done = td;
        ev.tuples_total = tt;
        ev.percent = pct;
        agent_session_emit(x, &ev);
    }
    PQclear(r);
}

static void emit_tick(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count)
{
    char obj[AGENT_OBJECT_LEN];
    agent_event ev;
    agent_step_event(&ev, AGENT_EV_STEP_TICK, m, s, count, obj);
    agent_session_emit(x, &ev);
}

/* Sends the build and waits for it, polling progress every PROGRESS_INTERVAL_MS. */
static pgr_code build_with_progress(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                    int count, pgr_error *err)
{
    /* the first poll after one interval: a build that ends sooner has no progress to show,
     * and costs neither a second session nor a query */
    progress_state ps = {0, pgr_clock_mono_ms(), -10000};
    bool cancel_sent = false;
    int pid = PQbackendPID(x->conn);
    int sock = PQsocket(x->conn);

    if (!PQsendQuery(x->conn, s->sql))
        return pgr_pg_error(x->conn, NULL, "could not send index build", err);
    for (;;) {
        if (!PQconsumeInput(x->conn))
            break;
        if (!PQisBusy(x->conn))
            break;
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(sock, &rd);
        struct timeval tv = {0, PROGRESS_INTERVAL_MS * 1000};
        if (x->o->cancel != NULL && *x->o->cancel == 2 && !cancel_sent) {
            /* abort: cancel the build; the invalid leftover is dropped below */
            PGcancel *pc = PQgetCancel(x->conn);
            char ebuf[256];
            if (pc != NULL)
                PQcancel(pc, ebuf, sizeof(ebuf));
            PQfreeCancel(pc);
            cancel_sent = true;
        }
        if (select(sock + 1, &rd, NULL, NULL, &tv) == 0 ||
            pgr_clock_mono_ms() - ps.last_poll >= PROGRESS_INTERVAL_MS) {
            ps.last_poll = pgr_clock_mono_ms();
            poll_progress(x, m, s, count, pid, &ps);
            emit_tick(x, m, s, count);
        }
    }
    pgr_code rc = PGR_OK;
    PGresult *r;
    while ((r = PQgetResult(x->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rc == PGR_OK && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rc = pgr_pg_error(x->conn, r, "index build failed", err);
        PQclear(r);
    }
    if (rc == PGR_OK && PQstatus(x->conn) != CONNECTION_OK)
        rc = pgr_pg_error(x->conn, NULL, "index build failed", err);
    return rc;
}

/* Drops the index only when it exists and is invalid (never a valid one). */
static pgr_code drop_invalid_leftover(agent_exec *x, const pgr_step *s)
{
    bool found = false, valid = false;
    if (agent_index_lookup(x, s, &found, &valid, NULL, NULL) != PGR_OK || !found || valid)
        return PGR_OK;
    return drop_index(x, s, NULL);
}

static pgr_code audit_index_event(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                  const char *action, pgr_error *err)
{
    json_t *rec = agent_audit_new(x, action);
    agent_audit_step_fields(rec, m, s);
    return agent_audit_append(x, rec, err);
}

/* Looks at what a previous attempt left: drops an invalid leftover, detects drift. Sets *done
 * when a valid index with our definition already exists. */
static pgr_code index_precheck(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                               const char *phase, bool *done, pgr_error *err)
{
    bool found = false, valid = false;
    char *def = NULL;
    *done = false;
    pgr_code rc = agent_index_lookup_first(x, s, &found, &valid, &def, err);
    if (rc != PGR_OK || !found)
        return rc;
    if (!valid) {
        free(def);
        rc = drop_index(x, s, err);
        if (rc == PGR_OK)
            rc = audit_index_event(x, m, s, "invalid_index_dropped", err);
        return rc;
    }
    /* Ours when its definition matches, or when this step had started building it (phase
     * "building" recorded before the build): the server may print a definition differently
     * from how the migration wrote it (IN lists, BETWEEN, storage options). */
    *done = strcmp(phase, "building") == 0 || pgr_indexdef_equal(s->sql, def);
    free(def);
    if (!*done)
        return pgr_error_set(err, PGR_ERR_DRIFT,
                             "drift: index \"%s\" already exists with a different definition; "
                             "drop or rename it, then apply again",
                             s->name);
    return PGR_OK;
}

/* After the build, one statement records the step done and audits it, when the index is valid
 * (the check is part of it). Otherwise the step fails and an invalid leftover is dropped. */
static pgr_code finish_index(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                             long long dur, pgr_error *err)
{
    bool recorded = false, found = false, valid = false;
    agent_step_row row;
    pgr_buf table;
    pgr_buf_init(&table);
    agent_state_step_row(x, m, s, dur, &row);
    pgr_code rc = pgr_sqlgen_qualified(x->conn, &table, s->table, err);
    if (rc == PGR_OK)
        rc = agent_audit_index_done(x, agent_step_done_record(x, m, s, dur, "done"), &row, s->name,
                                    table.data, &recorded, err);
    pgr_buf_free(&table);
    if (rc != PGR_OK || recorded)
        return rc;
    rc = agent_index_lookup(x, s, &found, &valid, NULL, err);
    if (rc == PGR_OK) {
        (void)drop_invalid_leftover(x, s);
        rc = pgr_error_set(err, PGR_ERR_DB, "index \"%s\" is %s after its build", s->name,
                           found && !valid ? "invalid" : "missing");
    }
    return rc;
}

pgr_code agent_index_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                         const char *phase, pgr_error *err)
{
    long long t0 = pgr_clock_mono_ms();
    bool done = false;

    pgr_code rc = index_precheck(x, m, s, phase, &done, err);
    if (rc == PGR_OK && !done)
        rc = agent_state_record_step(x, m, s, "building", 0, err);
    if (rc == PGR_OK && !done)
        rc = build_with_progress(x, m, s, count, err);
    if (rc != PGR_OK) {
        /* A failed concurrent build leaves an INVALID index behind; remove it now (the next
         * attempt would too) so the table carries no dead index meanwhile. */
        if (!pgr_pg_conn_lost(x->conn))
            (void)drop_invalid_leftover(x, s);
        return rc;
    }
    agent_failpoint("index_before_record");
    return finish_index(x, m, s, pgr_clock_mono_ms() - t0, err);
}

/* [[name, qualified table], ...] of the index and drop_index steps, entries in x->index_info. */
static char *prefetch_list(agent_exec *x, const pgr_step *steps, size_t n, bool with_drops)
{
    json_t *list = json_array();
    bool ok = list != NULL && (x->index_info = calloc(n, sizeof(agent_index_info))) != NULL;
    for (size_t k = 0; ok && k < n; k++) {
        const pgr_step *s = &steps[k];
        if (s->kind != PGR_STEP_INDEX && (!with_drops || s->kind != PGR_STEP_DROP_INDEX))
            continue;
        pgr_buf table;
        pgr_buf_init(&table);
        ok = pgr_sqlgen_qualified(x->conn, &table, s->table, NULL) == PGR_OK &&
             json_array_append_new(list, json_pack("[ss]", s->name, table.data)) == 0;
        pgr_buf_free(&table);
        x->index_info[x->index_info_count++].step = s;
    }
    char *text = ok && x->index_info_count > 0 ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    return text;
}

void agent_index_prefetch(agent_exec *x, const pgr_step *steps, size_t n, bool with_drops)
{
    PGresult *r = NULL;
    agent_session_forget_prefetch(x);
    char *list = prefetch_list(x, steps, n, with_drops);
    const char *params[] = {list};
    bool ok = list != NULL &&
              pgr_pg_execp(x->conn,
                           "SELECT e.ord, i.indisvalid AND i.indisready, "
                           "pg_get_indexdef(i.indexrelid) FROM json_array_elements($1::json) WITH "
                           "ORDINALITY AS e(v, ord) JOIN pg_class c ON c.relname = e.v->>0 AND "
                           "c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = "
                           "to_regclass(e.v->>1)) JOIN pg_index i ON i.indexrelid = c.oid",
                           1, params, &r, NULL) == PGR_OK;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        long ord = strtol(PQgetvalue(r, i, 0), NULL, 10);
        agent_index_info *e =
            ord >= 1 && (size_t)ord <= x->index_info_count ? &x->index_info[ord - 1] : NULL;
        ok = e != NULL && !e->found && (e->def = strdup(PQgetvalue(r, i, 2))) != NULL;
        if (ok) {
            e->found = true;
            e->valid = strcmp(PQgetvalue(r, i, 1), "t") == 0;
        }
    }
    PQclear(r);
    free(list);
    if (!ok)
        agent_session_forget_prefetch(x);
}

pgr_code agent_index_lookup_first(agent_exec *x, const pgr_step *s, bool *found, bool *valid,
                                  char **def, pgr_error *err)
{
    for (size_t i = 0; i < x->index_info_count; i++) {
        agent_index_info *e = &x->index_info[i];
        if (e->step != s || e->used)
            continue;
        e->used = true;
        *found = e->found;
        *valid = e->valid;
        if (def != NULL) {
            *def = e->found ? strdup(e->def) : NULL;
            if (e->found && *def == NULL)
                return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        }
        return PGR_OK;
    }
    return agent_index_lookup(x, s, found, valid, def, err);
}
