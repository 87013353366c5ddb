/*
 * daemon_rejections.c - counted, coalesced records of unauthenticated job messages
 * (daemon_rejections.h). The intake thread only counts under d->rejections_mu; the recorder thread
 * takes a tenant's window when it is due and writes it with the tenant's own session. A tenant
 * database that is slow or down delays only this thread, never the intake of another tenant. What
 * is counted but not recorded when the agent is killed (at most one interval) is lost; a clean stop
 * records it.
 */
#include "daemon_rejections.h"
#include "daemon_events.h"
#include "daemon_tenant.h"

#include "pgr/clock.h"
#include "pgr/log.h"

#include <string.h>
#include <time.h>

static const char *const REASONS[DAEMON_REJECTION_REASONS] = {
    "malformed", "oversized", "unknown_key", "revoked_key", "bad_signature"};

static int reason_slot(const char *reason)
{
    for (int i = 0; i < DAEMON_REJECTION_REASONS; i++) {
        if (strcmp(reason, REASONS[i]) == 0)
            return i;
    }
    return 0; /* anything else of step 2 is a malformed envelope */
}

void daemon_rejections_note(agent_daemon *d, daemon_tenant *t, const char *reason, const char *kid,
                            const char *detail, const char *digest)
{
    int slot = reason_slot(reason);
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", REASONS[slot]);
    pgr_metrics_add(d->metrics, "pgrollout_agent_rejections_total",
                    "job messages refused, by reason (docs/PROTOCOL.md 8.1)", labels, 1);
    pthread_mutex_lock(&d->rejections_mu);
    daemon_rejection_window *w = &t->rejected[slot];
    if (w->count++ == 0) {
        snprintf(w->reason, sizeof(w->reason), "%s", REASONS[slot]);
        snprintf(w->kid, sizeof(w->kid), "%s", kid != NULL ? kid : "");
        snprintf(w->detail, sizeof(w->detail), "%s", detail);
        snprintf(w->first, sizeof(w->first), "%s", digest);
    }
    snprintf(w->last, sizeof(w->last), "%s", digest);
    pthread_mutex_unlock(&d->rejections_mu);
}

/* Takes the tenant's window of this reason when it is due (or always, at the end). */
static bool take_due(agent_daemon *d, daemon_tenant *t, int slot, bool all, long long now,
                     daemon_rejection_window *out)
{
    bool due = false;
    pthread_mutex_lock(&d->rejections_mu);
    daemon_rejection_window *w = &t->rejected[slot];
    if (w->count > 0 && (all || w->last_record_ms == 0 ||
                         now - w->last_record_ms >= DAEMON_REJECTIONS_INTERVAL_MS)) {
        *out = *w;
        long long kept = now;
        memset(w, 0, sizeof(*w));
        w->last_record_ms = kept;
        due = true;
    }
    pthread_mutex_unlock(&d->rejections_mu);
    return due;
}

/* A window that could not be recorded goes back, merged with what was counted meanwhile (it
 * holds the older first message), to be tried at the next interval. */
static void put_back(agent_daemon *d, daemon_tenant *t, int slot, const daemon_rejection_window *w)
{
    pthread_mutex_lock(&d->rejections_mu);
    daemon_rejection_window *cur = &t->rejected[slot];
    long long since = cur->last_record_ms, more = cur->count;
    char last[PGR_SHA256_HEX_LEN];
    snprintf(last, sizeof(last), "%s", more > 0 ? cur->last : w->last);
    *cur = *w;
    cur->count += more;
    snprintf(cur->last, sizeof(cur->last), "%s", last);
    cur->last_record_ms = since;
    pthread_mutex_unlock(&d->rejections_mu);
}

static void record_due(agent_daemon *d, bool all)
{
    long long now = pgr_clock_mono_ms();
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        for (int slot = 0; slot < DAEMON_REJECTION_REASONS; slot++) {
            daemon_rejection_window w;
            if (take_due(d, t, slot, all, now, &w) &&
                !daemon_rejections_record(d, t, w.reason, w.kid, w.detail, w.count, w.first,
                                          w.last))
                put_back(d, t, slot, &w);
        }
    }
}

static void *recorder_main(void *arg)
{
    agent_daemon *d = arg;
    while (!d->rejections_stop) {
        pgr_clock_sleep_ms(200);
        record_due(d, false);
    }
    record_due(d, true);
    return NULL;
}

bool daemon_rejections_start(agent_daemon *d)
{
    pthread_mutex_init(&d->rejections_mu, NULL);
    d->rejections_stop = 0;
    d->rejections_running = pthread_create(&d->rejections_thread, NULL, recorder_main, d) == 0;
    return d->rejections_running;
}

void daemon_rejections_stop(agent_daemon *d)
{
    if (!d->rejections_running)
        return;
    d->rejections_stop = 1;
    pthread_join(d->rejections_thread, NULL);
    d->rejections_running = false;
    pthread_mutex_destroy(&d->rejections_mu);
}

bool daemon_rejections_record(agent_daemon *d, daemon_tenant *t, const char *reason,
                              const char *kid, const char *detail, long long count,
                              const char *first, const char *last)
{
    if (!daemon_tenant_record_rejection(d, t, t->conf->id, NULL, reason, kid,
                                        json_pack("{s:I, s:s, s:s}", "count", (json_int_t)count,
                                                  "first_envelope_sha256", first,
                                                  "last_envelope_sha256", last)))
        return false;
    pgr_log_ctx ctx = {"intake", t->conf->id, NULL};
    pgr_log_warn(&ctx, "%lld job message(s) rejected (%s): %s", count, reason, detail);
    t->audit_dirty = 1; /* after the commit, as daemon_events.c marks */
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "reason", reason, "kid", kid,
                             "detail", detail, "envelope_sha256", first, "count", (json_int_t)count,
                             "last_envelope_sha256", last);
    daemon_events_send(d, "security", t->conf->id, NULL, body);
    return true;
}
