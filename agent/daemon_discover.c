/*
 * daemon_discover.c - tenants found on tenant sources (daemon_discover.h). Runs on the main
 * thread only: it is the one writer of the tenant slots and of tenant_count.
 */
#include "daemon_discover.h"
#include "daemon_intake.h"
#include "daemon_pool.h"
#include "daemon_tenant.h"

#include "pgr/clock.h"
#include "pgr/keyring.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool daemon_discover_init(agent_daemon *d)
{
    const pgr_config *cfg = d->cfg;
    size_t cap = cfg->tenant_count;
    if (cfg->source_count > 0)
        cap = cfg->tenant_count > (size_t)cfg->max_tenants ? cfg->tenant_count
                                                           : (size_t)cfg->max_tenants;
    /* calloc: pages of slots never used are never touched, so room costs no resident memory */
    d->tenants = calloc(cap > 0 ? cap : 1, sizeof(*d->tenants));
    d->discover_warned = json_object();
    d->source_conns = calloc(cfg->source_count > 0 ? cfg->source_count : 1, sizeof(PGconn *));
    if (d->tenants == NULL || d->discover_warned == NULL || d->source_conns == NULL)
        return false;
    d->tenant_cap = cap;
    for (size_t i = 0; i < cfg->tenant_count; i++) {
        d->tenants[i].conf = &cfg->tenants[i];
        d->tenants[i].owned = d->tenants[i].taken = cfg->pool == NULL;
        agent_connpool_init(&d->tenants[i].pool);
    }
    d->tenant_count = cfg->tenant_count;
    return true;
}

/* Logs a warning the first time only (a refresh a minute repeats every finding). */
static void warn_once(agent_daemon *d, const char *tenant, const char *fmt, ...) PGR_PRINTF(3, 4);
static void warn_once(agent_daemon *d, const char *tenant, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (json_object_get(d->discover_warned, msg) != NULL)
        return;
    json_object_set_new(d->discover_warned, msg, json_true());
    pgr_log_ctx ctx = {"discover", tenant, NULL};
    pgr_log_warn(&ctx, "%s", msg);
}

/* A tenant starts being served while the daemon runs: recorded in its chain and resumed as a
 * restarted agent does (its database may hold unfinished jobs); in a pool, the take-over does
 * both once the group gives this agent its partition. */
static void serve(agent_daemon *d, daemon_tenant *t, bool starting)
{
    daemon_pool_place(d, t);
    if (starting || d->cfg->pool != NULL)
        return; /* at start: daemon_main resumes every tenant and records agent_start */
    json_t *extra = json_pack("{s:s}", "source", t->source->name);
    daemon_tenant_audit(d, t, "tenant_found", extra);
    json_decref(extra);
    daemon_intake_resume_tenant(d, t);
}

static void add(agent_daemon *d, const pgr_tenantsrc *src, const char *id, const char *dbname,
                bool starting)
{
    if (d->tenant_count >= d->tenant_cap) {
        warn_once(d, id,
                  "tenant %s not served: this agent holds agent.max_tenants = %d tenants already "
                  "(gone ones count until a restart; raise it, or split the source among agents)",
                  id, d->cfg->max_tenants);
        return;
    }
    daemon_tenant *t = &d->tenants[d->tenant_count];
    t->found.id = strdup(id);
    t->found.dsn = pgr_tenantsrc_dsn(src, dbname);
    t->found.tags = src->tags != NULL ? strdup(src->tags) : NULL;
    if (t->found.id == NULL || t->found.dsn == NULL || (src->tags != NULL && !t->found.tags)) {
        free(t->found.id);
        free(t->found.dsn);
        free(t->found.tags);
        memset(&t->found, 0, sizeof(t->found));
        return; /* out of memory: the next refresh tries again */
    }
    t->conf = &t->found;
    t->source = src;
    t->seen = true;
    agent_connpool_init(&t->pool);
    d->tenant_count = d->tenant_count + 1; /* the slot is complete before it is counted */
    pgr_log_ctx ctx = {"discover", id, NULL};
    pgr_log_info(&ctx, "found database %s on tenant source %s", dbname, src->name);
    serve(d, t, starting);
}

static void mark_gone(daemon_tenant *t)
{
    pgr_log_ctx ctx = {"discover", t->conf->id, NULL};
    pgr_log_warn(&ctx,
                 "the tenant's database is no longer on tenant source %s: marked gone, not "
                 "served (reported in heartbeats; served again if it comes back)",
                 t->source->name);
    t->gone = 1;
    daemon_pool_let_go(t);
}

/* One database of a source's listing. */
static void found(agent_daemon *d, const pgr_tenantsrc *src, const char *dbname, bool starting)
{
    char id[129];
    pgr_tenantsrc_match m = pgr_tenantsrc_id(src, dbname, id, sizeof(id));
    if (m == PGR_TENANTSRC_BAD_ID)
        warn_once(d, NULL,
                  "tenant source %s: database %s matches, but the id it makes is not a "
                  "tenant id (letters, digits, '_', '-', '.'; at most 128): not served",
                  src->name, dbname);
    if (m != PGR_TENANTSRC_MATCH)
        return;
    pgr_keyring_entry scope = {.tenants = d->cfg->key_tenants};
    if (!pgr_keyring_allows_tenant(&scope, id)) {
        warn_once(d, id,
                  "tenant source %s: database %s is outside agent.key_tenants (%s): not served",
                  src->name, dbname, d->cfg->key_tenants);
        return;
    }
    daemon_tenant *t = daemon_tenant_find(d, id);
    if (t != NULL && t->source != src) {
        warn_once(d, id,
                  "tenant source %s: database %s: the tenant is %s already; that one is "
                  "served",
                  src->name, dbname,
                  t->source == NULL ? "a [tenants] line" : "found on another source");
        return;
    }
    if (t == NULL) {
        add(d, src, id, dbname, starting);
        return;
    }
    t->seen = true;
    if (t->gone != 0) {
        pgr_log_ctx ctx = {"discover", id, NULL};
        pgr_log_info(&ctx, "database %s is back on tenant source %s: served again", dbname,
                     src->name);
        t->gone = 0;
        serve(d, t, false);
    }
}

/* Runs sql on the source's kept session (opened when there is none; closed after a failure, so
 * that the next call connects again). */
static pgr_code source_query(agent_daemon *d, size_t i, const char *sql, int n,
                             const char *const *params, PGresult **r, pgr_error *err)
{
    const pgr_tenantsrc *src = &d->cfg->sources[i];
    pgr_code rc = PGR_OK;
    if (d->source_conns[i] == NULL) {
        char *dsn = pgr_tenantsrc_dsn(src, src->list_db);
        rc = dsn == NULL ? pgr_error_set(err, PGR_ERR_NOMEM, "out of memory")
                         : pgr_pg_connect(dsn, "pgrollout-discover", &d->source_conns[i], err);
        free(dsn);
    }
    if (rc == PGR_OK)
        rc = pgr_pg_execp(d->source_conns[i], sql, n, params, r, err);
    if (rc != PGR_OK && d->source_conns[i] != NULL) {
        PQfinish(d->source_conns[i]);
        d->source_conns[i] = NULL;
    }
    return rc;
}

static bool refresh_source(agent_daemon *d, size_t si, bool starting)
{
    const pgr_tenantsrc *src = &d->cfg->sources[si];
    pgr_log_ctx ctx = {"discover", NULL, NULL};
    pgr_error err;
    PGresult *r = NULL;
    const char *params[] = {src->prefix, src->suffix};
    pgr_code rc = source_query(d, si, PGR_TENANTSRC_LIST_SQL, 2, params, &r, &err);
    if (rc != PGR_OK) {
        pgr_metrics_add(d->metrics, "pgrollout_agent_source_list_failures_total",
                        "tenant source listings that failed", NULL, 1);
        pgr_log_warn(&ctx,
                     "tenant source %s: could not list its databases (its tenants stay as "
                     "they are): %s",
                     src->name, err.msg);
        return false;
    }
    for (size_t i = 0; i < d->tenant_count; i++) {
        if (d->tenants[i].source == src)
            d->tenants[i].seen = false;
    }
    for (int row = 0; row < PQntuples(r); row++)
        found(d, src, PQgetvalue(r, row, 0), starting);
    PQclear(r);
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        if (t->source == src && !t->seen && t->gone == 0)
            mark_gone(t);
    }
    return true;
}

void daemon_discover_refresh(agent_daemon *d, bool starting)
{
    for (size_t i = 0; i < d->cfg->source_count; i++)
        (void)refresh_source(d, i, starting);
    /* from the end: slow listings (a source that does not answer) do not follow each other */
    d->discover_next_ms = pgr_clock_mono_ms() + d->cfg->discover_interval_ms;
}

daemon_discover_lookup_result daemon_discover_lookup(agent_daemon *d, const char *id)
{
    bool unsure = false;
    for (size_t i = 0; i < d->cfg->source_count; i++) {
        const pgr_tenantsrc *src = &d->cfg->sources[i];
        char db[PGR_TENANTSRC_DBNAME_MAX + 1];
        if (!pgr_tenantsrc_dbname(src, id, db, sizeof(db)))
            continue; /* no database of this source has that id */
        pgr_error err;
        PGresult *r = NULL;
        const char *params[] = {db};
        if (source_query(d, i,
                         "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1 AND "
                         "datallowconn AND NOT datistemplate AND datconnlimit <> -2",
                         1, params, &r, &err) != PGR_OK) {
            pgr_log_ctx ctx = {"discover", id, NULL};
            pgr_log_warn(&ctx,
                         "tenant source %s: could not look for database %s (its jobs wait): %s",
                         src->name, db, err.msg);
            unsure = true;
            continue;
        }
        bool there = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
        PQclear(r);
        if (there && refresh_source(d, i, false))
            return DAEMON_DISCOVER_LISTED;
        unsure = unsure || there;
    }
    return unsure ? DAEMON_DISCOVER_UNSURE : DAEMON_DISCOVER_NOT_OURS;
}

json_t *daemon_discover_gone(agent_daemon *d)
{
    json_t *ids = json_array();
    /* bounded: a heartbeat must stay far below the 1 MB event limit (the rest on later runs) */
    for (size_t i = 0; ids != NULL && i < d->tenant_count && json_array_size(ids) < 1000; i++) {
        if (d->tenants[i].gone != 0)
            json_array_append_new(ids, json_string(d->tenants[i].conf->id));
    }
    return ids;
}

void daemon_discover_free(agent_daemon *d)
{
    for (size_t i = 0; d->tenants != NULL && i < d->tenant_count; i++) {
        free(d->tenants[i].found.id);
        free(d->tenants[i].found.dsn);
        free(d->tenants[i].found.tags);
    }
    for (size_t i = 0; d->source_conns != NULL && i < d->cfg->source_count; i++) {
        if (d->source_conns[i] != NULL)
            PQfinish(d->source_conns[i]);
    }
    free(d->source_conns);
    json_decref(d->discover_warned);
    free(d->held);
}
