/*
 * daemon_main.c - the agent daemon's main loop: configuration and keys, Kafka clients, manual
 * assignment of the partitions our tenants hash to, intake, one worker thread per running
 * tenant (up to agent.max_parallel), signed heartbeats, and a clean stop on SIGTERM.
 */
#include "daemon_main.h"
#include "agent_cli.h"
#include "daemon_audit.h"
#include "daemon_discover.h"
#include "daemon_events.h"
#include "daemon_intake.h"
#include "daemon_pool.h"
#include "daemon_release.h"
#include "daemon_rejections.h"
#include "daemon_tenant.h"
#include "daemon_worker.h"

#include "pgr/clock.h"
#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/str.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every tenant's outbox is read this often; tenants with new records of ours each second. */
#define AUDIT_SWEEP_MS 30000

static volatile sig_atomic_t stop_requested = 0;
static volatile sig_atomic_t reload_requested = 0;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
}

static void heartbeat(agent_daemon *d)
{
    json_t *tenants = json_array(), *tags = json_object();
    long long served = 0, gone_count = 0;
    for (size_t i = 0; i < d->tenant_count; i++) {
        gone_count += d->tenants[i].gone != 0;
        if (!daemon_pool_serves(&d->tenants[i])) /* the pool member that holds it reports it */
            continue;
        served++;
        json_array_append_new(tenants, json_string(d->tenants[i].conf->id));
        if (d->tenants[i].conf->tags != NULL)
            json_object_set_new(tags, d->tenants[i].conf->id,
                                json_string(d->tenants[i].conf->tags));
    }
    json_t *beat = json_pack("{s:s, s:o, s:o, s:i}", "kid", d->key.kid, "tenants", tenants, "tags",
                             tags, "running", d->active);
    if (beat != NULL && d->cfg->pool != NULL)
        json_object_set_new(beat, "pool", json_string(d->cfg->pool));
    json_t *gone = daemon_discover_gone(d);
    if (beat != NULL && json_array_size(gone) > 0)
        json_object_set(beat, "gone", gone);
    json_decref(gone);
    daemon_events_send(d, "heartbeat", NULL, NULL, beat);
    pgr_metrics_set(d->metrics, "pgrollout_agent_tenants", "tenants of this agent, by state",
                    "state=\"served\"", served);
    pgr_metrics_set(d->metrics, "pgrollout_agent_tenants", "tenants of this agent, by state",
                    "state=\"gone\"", gone_count);
    pgr_metrics_set(d->metrics, "pgrollout_agent_jobs_running", "jobs executing now", NULL,
                    d->active);
    pgr_metrics_set(d->metrics, "pgrollout_agent_last_heartbeat_timestamp_seconds",
                    "when the last heartbeat was sent (Unix time)", NULL, (long long)time(NULL));
}

/* The partition count of the jobs topic. An agent may be installed before the coordinator's
 * first run creates the topics: it waits (until SIGTERM), saying so now and then, rather than
 * exit and restart in a loop. */
static pgr_code wait_for_topic(agent_daemon *d, int *count, pgr_error *err)
{
    pgr_code rc = PGR_ERR_KAFKA;
    pgr_log_ctx ctx = {"agent", NULL, NULL};
    for (long i = 0; !stop_requested && rc != PGR_OK; i++) {
        rc = pgr_kafka_partitions(d->consumer, d->topic_jobs, 2000, count, err);
        if (rc != PGR_OK)
            rd_kafka_poll(d->producer, 100); /* serves the error callback */
        if (rc != PGR_OK && pgr_kafka_refused(err) != PGR_OK)
            return PGR_ERR_KAFKA; /* waiting would not help */
        if (rc != PGR_OK && i % 60 == 5)
            pgr_log_warn(&ctx, "waiting for the jobs topic (the coordinator creates it): %s",
                         err->msg);
        if (rc != PGR_OK)
            pgr_clock_sleep_ms(1000);
    }
    return rc;
}

/* A pool: the group shares the jobs partitions among its members (daemon_pool.c). */
static pgr_code join_pool(agent_daemon *d, pgr_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, d->topic_jobs, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(d->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return pgr_error_set(err, PGR_ERR_KAFKA, "could not join pool %s: %s", d->cfg->pool,
                             rd_kafka_err2str(e));
    return PGR_OK;
}

/* Without a pool: assigns exactly the partitions of the jobs topic that our tenants' ids hash
 * to (all of them with tenant sources: a tenant found later may hash to any), from the committed
 * offsets of this agent's group (earliest when none). */
static pgr_code assign_partitions(agent_daemon *d, pgr_error *err)
{
    int count = 0;
    pgr_code rc = wait_for_topic(d, &count, err);
    if (rc != PGR_OK)
        return rc;
    if (!daemon_pool_init(d, count))
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (d->cfg->pool != NULL)
        return join_pool(d, err);
    pgr_log_ctx ctx = {"agent", NULL, NULL};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(count);
    for (int p = 0; p < count; p++) {
        bool ours = d->cfg->source_count > 0;
        for (size_t i = 0; i < d->tenant_count && !ours; i++)
            ours = pgr_kafka_partition_for(d->tenants[i].conf->id, count) == p;
        if (ours)
            rd_kafka_topic_partition_list_add(l, d->topic_jobs, p)->offset =
                RD_KAFKA_OFFSET_INVALID;
    }
    /* The committed offsets are read here, retried until the broker answers, and assigned as
     * concrete positions: left to librdkafka (2.0.2), a lookup that met a broker outage right
     * at assignment never started fetching after the broker returned. */
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TRANSPORT;
    while (!stop_requested && (e = rd_kafka_committed(d->consumer, l, 5000)) != 0) {
        pgr_log_warn(&ctx, "reading this agent's committed offsets: %s (retrying)",
                     rd_kafka_err2str(e));
        pgr_clock_sleep_ms(1000);
    }
    for (int i = 0; i < l->cnt; i++) {
        if (l->elems[i].offset < 0) /* nothing committed yet: from the start */
            l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_assign(d->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return pgr_error_set(err, PGR_ERR_KAFKA, "could not assign partitions: %s",
                             rd_kafka_err2str(e));
    return PGR_OK;
}

/* Commits the offset after m: only called once its job is durably recorded (or refused). */
static void commit_after(agent_daemon *d, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_commit(d->consumer, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pgr_log_ctx ctx = {"intake", NULL, NULL};
        pgr_log_warn(&ctx,
                     "offset commit failed (%s): the job will be redelivered and "
                     "recognised as a duplicate",
                     rd_kafka_err2str(e));
    }
}

/* The kids of kr, trusted and revoked (comma-separated: audit values stay flat), for the
 * reload's audit record and event. */
static json_t *keyring_summary(const pgr_keyring *kr, size_t *revoked)
{
    /* each kid with its comma fits in PGR_KID_LEN: the lists are never cut short */
    size_t cap = kr->count * PGR_KID_LEN + 1;
    char *trusted = calloc(1, cap), *gone = calloc(1, cap);
    json_t *out = NULL;
    *revoked = 0;
    for (size_t i = 0; trusted != NULL && gone != NULL && i < kr->count; i++) {
        char *list = kr->items[i].revoked ? gone : trusted;
        size_t used = strlen(list);
        snprintf(list + used, cap - used, "%s%s", used > 0 ? "," : "", kr->items[i].key.kid);
        *revoked += kr->items[i].revoked ? 1 : 0;
    }
    if (trusted != NULL && gone != NULL)
        out = json_pack("{s:s, s:s}", "trusted_kids", trusted, "revoked_kids", gone);
    free(trusted);
    free(gone);
    return out;
}

/* SIGHUP: read the keyring file again (key rotation and revocation without a restart). Only
 * this thread verifies envelopes, so the swap needs no lock. A file that does not parse changes
 * nothing: the previous keyring stays in force and the failure is logged and audited. */
/* Loads the release keyring (NULL when release.keyring is unset): refused when it shares a key
 * with the coordinators' keyring kr. */
static pgr_code load_releases(const pgr_config *cfg, const pgr_keyring *kr, pgr_keyring **out,
                              pgr_error *err)
{
    *out = NULL;
    if (cfg->release_keyring == NULL)
        return PGR_OK;
    pgr_code rc = pgr_keyring_load(cfg->release_keyring, out, err);
    const char *shared = rc == PGR_OK ? daemon_release_shared_key(kr, *out) : NULL;
    if (shared != NULL) {
        rc = pgr_error_set(err, PGR_ERR_CONFIG,
                           "release.keyring %s holds key %s of agent.keyring: release keys must "
                           "not be coordinator keys",
                           cfg->release_keyring, shared);
        pgr_keyring_free(*out);
        *out = NULL;
    }
    return rc;
}

static void reload_keyring(agent_daemon *d)
{
    pgr_log_ctx ctx = {"keyring", NULL, NULL};
    pgr_keyring *kr = NULL, *rel = NULL;
    pgr_error err;
    pgr_error_clear(&err);
    if (pgr_keyring_load(d->cfg->keyring, &kr, &err) != PGR_OK ||
        load_releases(d->cfg, kr, &rel, &err) != PGR_OK) {
        pgr_keyring_free(kr);
        pgr_log_error(&ctx, "reload refused, the previous keyring stays in force: %s", err.msg);
        pgr_metrics_add(d->metrics, "pgrollout_agent_key_reloads_total",
                        "SIGHUP keyring reloads, by result", "result=\"refused\"", 1);
        json_t *why = json_pack("{s:s}", "error", err.msg);
        daemon_tenant_audit_all(d, "keyring_reload_failed", why);
        json_decref(why);
        return;
    }
    size_t revoked = 0;
    json_t *summary = keyring_summary(kr, &revoked);
    pgr_keyring_free(d->coordinators);
    d->coordinators = kr;
    pgr_keyring_free(d->releases); /* the workers read none: their jobs' releases are copied */
    d->releases = rel;
    pgr_log_info(&ctx, "reloaded %s: %zu key(s), %zu revoked", d->cfg->keyring, kr->count, revoked);
    pgr_metrics_add(d->metrics, "pgrollout_agent_key_reloads_total",
                    "SIGHUP keyring reloads, by result", "result=\"ok\"", 1);
    daemon_tenant_audit_all(d, "keyring_reload", summary);
    daemon_events_send(d, "keyring_reloaded", NULL, NULL, summary); /* consumes summary */
    daemon_intake_recheck_queued(d);
}

/* With tenant sources, a job for a tenant id this agent does not know is not skipped (and its
 * offset committed) before the source that could hold its database was asked (daemon_discover.c);
 * false: the source could not be asked, read the message again in a moment. */
static bool tenant_known_or_not_ours(agent_daemon *d, const rd_kafka_message_t *m)
{
    char tenant[129];
    if (d->cfg->source_count == 0)
        return true;
    pgr_kafka_message_key(m, tenant, sizeof(tenant));
    return daemon_tenant_find(d, tenant) != NULL ||
           daemon_discover_lookup(d, tenant) != DAEMON_DISCOVER_UNSURE;
}

static void loop(agent_daemon *d)
{
    long long next_beat = 0, next_audit = 0, next_sweep = 0;
    while (!stop_requested) {
        bool reload = reload_requested != 0;
        if (reload)
            reload_requested = 0;
        long long ms = pgr_clock_mono_ms();
        /* the sources first: a keyring reload records itself in the tenants served after it */
        if (d->cfg->source_count > 0 && (reload || ms >= d->discover_next_ms))
            daemon_discover_refresh(d, false);
        if (reload)
            reload_keyring(d);
        if (ms >= next_beat) {
            heartbeat(d);
            next_beat = ms + d->cfg->heartbeat_ms;
        }
        if (ms >= next_audit) {
            daemon_audit_publish(d, ms >= next_sweep, ms);
            if (ms >= next_sweep)
                next_sweep = ms + AUDIT_SWEEP_MS;
            next_audit = ms + 1000;
            for (size_t i = 0; i < d->tenant_count; i++)
                agent_connpool_expire(&d->tenants[i].pool, AGENT_CONNPOOL_IDLE_MS);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, 200);
        if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (tenant_known_or_not_ours(d, m) && daemon_intake_message(d, m)) {
                daemon_worker_dispatch(
                    d, !stop_requested); /* the job starts before the commit's broker round trip */
                commit_after(d, m);
            } else {
                /* not recorded (tenant database unreachable): read it again in a moment,
                 * never commit past a job that is not durably recorded */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)
                    ->offset = m->offset;
                rd_kafka_error_t *e = rd_kafka_seek_partitions(d->consumer, l, 5000);
                if (e != NULL)
                    rd_kafka_error_destroy(e);
                rd_kafka_topic_partition_list_destroy(l);
                pgr_clock_sleep_ms(1000);
            }
        }
        if (m != NULL)
            rd_kafka_message_destroy(m);
        /* after the poll, which runs the rebalance callback: a tenant is taken over only while
         * the group still gives this agent its partition */
        daemon_pool_take(d, pgr_clock_mono_ms());
        daemon_worker_dispatch(d, !stop_requested);
        rd_kafka_poll(d->producer, 0);
    }
}

/* SIGTERM: no new jobs; running executors stop before their next step (a transactional step
 * commits or rolls back, a concurrent build is left for resumption); events are flushed. */
static void shutdown_workers(agent_daemon *d)
{
    d->cancel = 1;
    for (size_t i = 0; i < d->tenant_count; i++) {
        if (d->tenants[i].cancel == 0)
            d->tenants[i].cancel = 1;
    }
    while (d->active > 0) {
        daemon_worker_dispatch(d, !stop_requested);
        rd_kafka_poll(d->producer, 100);
    }
    daemon_rejections_stop(d); /* what is still counted, recorded before agent_stop */
    daemon_tenant_audit_all(d, "agent_stop", NULL);
    daemon_audit_publish(d, true, pgr_clock_mono_ms()); /* the last steps' records, before we go */
    rd_kafka_flush(d->producer, 10000);
    pthread_mutex_lock(&d->mu);
    daemon_eventseq_stop(&d->event_seq);
    pthread_mutex_unlock(&d->mu);
}

static int setup_error(const char *what, const pgr_error *err)
{
    fprintf(stderr, "pgrollout-agent run: %s: %s\n", what, err->msg);
    return PGR_EXIT_USAGE;
}

static int check_required(const pgr_config *cfg)
{
    const char *missing = cfg->agent_id == NULL     ? "agent.id"
                          : cfg->secret_key == NULL ? "agent.secret_key"
                          : cfg->keyring == NULL    ? "agent.keyring"
                          : cfg->tenant_count == 0 && cfg->source_count == 0
                              ? "[tenants] or [tenant_sources] (at least one)"
                              : NULL;
    if (missing == NULL && cfg->pool != NULL && !pgr_str_is_simple_ident(cfg->pool)) {
        fprintf(stderr,
                "pgrollout-agent run: %s: agent.pool \"%s\" is not a simple name (letters, "
                "digits, _)\n",
                cfg->path, cfg->pool);
        return PGR_EXIT_USAGE;
    }
    if (missing == NULL)
        return 0;
    fprintf(stderr, "pgrollout-agent run: %s: %s is required\n", cfg->path, missing);
    return PGR_EXIT_USAGE;
}

static int daemon_setup(agent_daemon *d, const char *path)
{
    pgr_error err;
    pgr_error_clear(&err);
    if (pgr_config_load(path, &d->cfg, &err) != PGR_OK)
        return setup_error("configuration", &err);
    int rc = check_required(d->cfg);
    if (rc != 0)
        return rc;
    if (pgr_crypto_init(&err) != PGR_OK || pgr_keys_load_secret(d->cfg->secret_key, &d->key, &err))
        return setup_error("agent key", &err);
    if (pgr_keyring_load(d->cfg->keyring, &d->coordinators, &err) != PGR_OK)
        return setup_error("keyring", &err);
    if (load_releases(d->cfg, d->coordinators, &d->releases, &err) != PGR_OK)
        return setup_error("release keyring", &err);
    pgr_kafka_topic_name(d->cfg, PGR_TOPIC_JOBS, d->topic_jobs, sizeof(d->topic_jobs));
    pgr_kafka_topic_name(d->cfg, PGR_TOPIC_EVENTS, d->topic_events, sizeof(d->topic_events));
    pgr_kafka_topic_name(d->cfg, PGR_TOPIC_AUDIT, d->topic_audit, sizeof(d->topic_audit));
    char group[256];
    if (d->cfg->pool != NULL)
        snprintf(group, sizeof(group), "pgrollout-pool-%s", d->cfg->pool);
    else
        snprintf(group, sizeof(group), "pgrollout-agent-%s", d->cfg->agent_id);
    if (pgr_kafka_producer_new(d->cfg, &d->producer, NULL, &err) != PGR_OK ||
        (d->cfg->pool != NULL
             ? pgr_kafka_group_consumer_new(d->cfg, group, daemon_pool_rebalance, d, &d->consumer,
                                            &err)
             : pgr_kafka_consumer_new(d->cfg, group, &d->consumer, &err)) != PGR_OK)
        return setup_error("kafka", &err);
    if (!daemon_discover_init(d)) {
        pgr_error_set(&err, PGR_ERR_NOMEM, "out of memory");
        return setup_error("tenants", &err);
    }
    pthread_mutex_init(&d->mu, NULL);
    if (daemon_eventseq_start(&d->event_seq, d->cfg->state_dir, &err) != PGR_OK)
        return setup_error("agent.state_dir", &err);
    if (d->cfg->state_dir == NULL) {
        pgr_log_ctx ctx = {"agent", NULL, NULL};
        pgr_log_warn(&ctx, "agent.state_dir is not set: replay protection rests on "
                           "pgrollout.jobs alone, which migration SQL can change");
    }
    return 0;
}

static void daemon_teardown(agent_daemon *d)
{
    if (d->consumer != NULL) {
        rd_kafka_consumer_close(d->consumer);
        rd_kafka_destroy(d->consumer);
    }
    if (d->producer != NULL)
        rd_kafka_destroy(d->producer);
    for (size_t i = 0; d->tenants != NULL && i < d->tenant_count; i++) {
        while (d->tenants[i].queue != NULL) {
            daemon_job *j = d->tenants[i].queue;
            d->tenants[i].queue = j->next;
            daemon_tenant_job_free(j);
        }
        agent_connpool_free(&d->tenants[i].pool);
    }
    daemon_discover_free(d);
    free(d->tenants);
    pgr_keyring_free(d->coordinators);
    pgr_keyring_free(d->releases);
    pgr_metrics_free(d->metrics); /* stops the scrape thread, which reads only its table */
    pgr_config_free(d->cfg);
}

static void configure_logging(const pgr_config *cfg)
{
    pgr_log_level level = PGR_LOG_INFO;
    PGR_IGNORE(pgr_log_level_parse(cfg->log_level, &level, NULL));
    pgr_log_setup(level, strcmp(cfg->log_format, "json") == 0 ? PGR_LOG_JSON : PGR_LOG_TEXT,
                  stderr);
}

int daemon_main_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    agent_daemon d;
    int c;

    memset(&d, 0, sizeof(d));
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'h') {
            printf("usage: pgrollout-agent run --config FILE\n\n"
                   "Serves the tenants of FILE ([tenants], and the databases of each\n"
                   "[tenant_sources] server that match its pattern): consumes signed jobs from\n"
                   "Kafka, verifies and records them, applies them, streams signed events.\n"
                   "SIGTERM/SIGINT stop it cleanly; unfinished jobs resume at the next start.\n"
                   "SIGHUP reloads agent.keyring (add or revoke coordinator keys without a\n"
                   "restart; a keyring that does not parse is refused and the old one kept) and\n"
                   "lists the tenant sources' databases again.\n\n");
            pgr_exitcode_print_table(stdout);
            return PGR_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout-agent run: unknown or incomplete option \"%s\"\n",
                    argv[optind - 1]);
            return PGR_EXIT_USAGE;
        }
    }
    if (path == NULL || optind != argc) {
        fprintf(stderr, "pgrollout-agent run: --config FILE is required\n");
        return PGR_EXIT_USAGE;
    }
    int rc = daemon_setup(&d, path);
    if (rc == 0) {
        pgr_error err;
        configure_logging(d.cfg);
        if (d.cfg->metrics_listen != NULL &&
            ((d.metrics = pgr_metrics_new()) == NULL ||
             pgr_metrics_serve(d.metrics, d.cfg->metrics_listen, &err) != PGR_OK)) {
            fprintf(stderr, "pgrollout-agent run: %s\n",
                    d.metrics == NULL ? "out of memory" : err.msg);
            daemon_teardown(&d);
            return PGR_EXIT_USAGE;
        }
        if (d.cfg->source_count > 0) /* before the resumption and agent_start of every tenant */
            daemon_discover_refresh(&d, true);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        if (!daemon_rejections_start(&d)) {
            fprintf(stderr, "pgrollout-agent run: could not start the rejections thread\n");
            daemon_teardown(&d);
            return PGR_EXIT_FAIL;
        }
        if (d.cfg->pool == NULL) /* a pool's tenants resume when taken over (daemon_pool.c) */
            daemon_intake_resume(&d);
        daemon_tenant_audit_all(&d, "agent_start", NULL);
        pgr_code assigned = assign_partitions(&d, &err);
        if (assigned != PGR_OK && !stop_requested) {
            fprintf(stderr, "pgrollout-agent run: %s\n", err.msg);
            rc = PGR_EXIT_FAIL;
        } else if (assigned == PGR_OK) { /* else stopped while waiting for the topic */
            pgr_log_ctx ctx = {"agent", NULL, NULL};
            pgr_log_info(&ctx, "agent %s (key %s) serving %zu tenant(s)", d.cfg->agent_id,
                         d.key.kid, d.tenant_count);
            loop(&d);
            pgr_log_info(&ctx, "stopping: waiting for running steps");
        }
        shutdown_workers(&d);
    }
    daemon_teardown(&d);
    return rc;
}
