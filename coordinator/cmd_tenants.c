/* cmd_tenants.c - `pgrollout tenants [list]`: the tenants known from agent heartbeats;
 * `pgrollout tenants refresh`: reads the agents' events sent since the last coordinator read
 * them (heartbeats name new and gone tenants) and stores them as a run does. */
#include "cmd_tenants.h"
#include "cmd_common.h"
#include "ctldb.h"
#include "event_ingest.h"

#include "pgr/clock.h"
#include "pgr/exitcode.h"
#include "pgr/keyring.h"
#include "pgr/parse.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char REFRESH_USAGE[] =
    "usage: pgrollout tenants refresh --config FILE [--wait SECONDS]\n"
    "Reads the agents' signed events sent since a coordinator last read them (heartbeats\n"
    "name the tenants each agent serves and those it found gone) and stores them as\n"
    "`pgrollout run` does, until it has read what was on the topic when it started\n"
    "(exit 0) or SECONDS (default 30) pass (exit 1: the list may be stale).\n"
    "Run it before a plan without a tenant list, so that tenants found since the last run\n"
    "are in it. Safe beside a running rollout (the same events, stored once).\n\n";

typedef struct refresh_counts {
    long events, heartbeats;
} refresh_counts;

static void store(coord *c, const rd_kafka_message_t *m, void *user)
{
    refresh_counts *n = user;
    json_t *ev = coord_event_ingest(c, m);
    const char *type = json_string_value(json_object_get(ev, "type"));
    n->events += ev != NULL ? 1 : 0;
    n->heartbeats += type != NULL && strcmp(type, "heartbeat") == 0 ? 1 : 0;
    json_decref(ev);
}

/* The end of every partition assigned now (high watermark when this is called), or NULL while
 * the group has given this process none. */
static rd_kafka_topic_partition_list_t *ends(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l->cnt == 0) {
        if (l != NULL)
            rd_kafka_topic_partition_list_destroy(l);
        return NULL;
    }
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, l->elems[i].topic, l->elems[i].partition, &lo, &hi,
                                             5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            hi = -1; /* unknown: not caught up until it is known */
        l->elems[i].offset = hi > lo ? hi : (hi < 0 ? -1 : 0); /* 0: nothing to read there */
    }
    return l;
}

/* Caught up: every partition's next offset to read, or the group's committed offset when
 * nothing was read from it, is at or past its end taken at the start. */
static bool caught_up(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *end)
{
    rd_kafka_topic_partition_list_t *at = rd_kafka_topic_partition_list_copy(end);
    bool done = rd_kafka_position(rk, at) == RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(end);
    bool have_committed = done && rd_kafka_committed(rk, committed, 5000) == 0;
    for (int i = 0; done && i < at->cnt; i++) {
        int64_t pos = at->elems[i].offset;
        if (pos < 0 && have_committed)
            pos = committed->elems[i].offset;
        int64_t want = end->elems[i].offset;
        done = want >= 0 && (want == 0 || pos >= want);
    }
    rd_kafka_topic_partition_list_destroy(at);
    rd_kafka_topic_partition_list_destroy(committed);
    return done;
}

/* Consumes the events topic until caught up or wait_s passed; returns an exit code. */
static int refresh(coord *c, int wait_s)
{
    coord_ctldb g;
    refresh_counts n = {0, 0};
    rd_kafka_message_t *held = NULL;
    rd_kafka_topic_partition_list_t *end = NULL;
    coord_ctldb_init(&g, NULL);
    long long deadline = pgr_clock_mono_ms() + (long long)wait_s * 1000, next_check = 0;
    bool done = false;
    while (!done && pgr_clock_mono_ms() < deadline) {
        if (!coord_ctldb_ready(c, &g)) {
            pgr_clock_sleep_ms(100); /* the control database is away: reconnect with backoff */
            continue;
        }
        coord_ctldb_consumed got =
            coord_ctldb_consume(c, &g, c->consumer, &held, 200, false, store, &n);
        if (end == NULL)
            end = ends(c->consumer); /* once the group gave this process its partitions */
        long long now = pgr_clock_mono_ms();
        if (end != NULL && got == COORD_CTLDB_CONSUMED_NONE && now >= next_check) {
            done = caught_up(c->consumer, end);
            next_check = now + 500;
        }
    }
    if (held != NULL)
        rd_kafka_message_destroy(held); /* not committed: read again next time */
    if (end != NULL)
        rd_kafka_topic_partition_list_destroy(end);
    coord_ctldb_flush(&g);
    printf("stored %ld event(s), %ld heartbeat(s)\n", n.events, n.heartbeats);
    if (done)
        return PGR_EXIT_OK;
    fprintf(stderr,
            "pgrollout tenants refresh: not caught up after %d s (events still waiting, or no "
            "partitions from the group): the tenant list may be stale; run it again or raise "
            "--wait\n",
            wait_s);
    return PGR_EXIT_FAIL;
}

static int refresh_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int64_t wait_s = 30;
    pgr_error err;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') {
            coord_cmd_common_usage(stdout, REFRESH_USAGE, true);
            return PGR_EXIT_OK;
        }
        if (o == 'c') {
            config = optarg;
        } else if (o != 'w' || pgr_parse_int64(optarg, 1, 3600, &wait_s, &err) != PGR_OK) {
            fprintf(stderr, "pgrollout tenants refresh: %s \"%s\"\n",
                    o == 'w' ? "--wait: expected 1 to 3600 seconds, not" : "unknown option",
                    o == 'w' ? optarg : argv[optind - 1]);
            return PGR_EXIT_USAGE;
        }
    }
    if (config == NULL || optind != argc) {
        fprintf(stderr, "pgrollout tenants refresh: --config FILE is required\n%s", REFRESH_USAGE);
        return PGR_EXIT_USAGE;
    }
    coord c;
    int rc = coord_cmd_common_open(&c, config, "tenants refresh", false);
    /* events are verified against the agents' keys; the coordinator's own key signs nothing here */
    if (rc == PGR_EXIT_OK && c.cfg->agent_keyring == NULL) {
        fprintf(stderr, "pgrollout tenants refresh: %s: coordinator.agent_keyring is required\n",
                config);
        rc = PGR_EXIT_USAGE;
    }
    if (rc == PGR_EXIT_OK && pgr_keyring_load(c.cfg->agent_keyring, &c.agents, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout tenants refresh: agent keyring: %s\n", err.msg);
        rc = PGR_EXIT_USAGE;
    }
    if (rc == PGR_EXIT_OK)
        rc = coord_cmd_common_kafka(&c, "tenants refresh");
    if (rc == PGR_EXIT_OK)
        rc = refresh(&c, (int)wait_s);
    coord_close(&c);
    return rc;
}

int coord_cmd_tenants_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "refresh") == 0)
        return refresh_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        argc--;
        argv++;
    }
    return coord_cmd_common_query_main(
        argc, argv,
        "usage: pgrollout tenants [list] --config FILE [--json]\n"
        "       pgrollout tenants refresh --config FILE [--wait SECONDS]\n"
        "Tenants known from signed agent heartbeats, with last-seen time; gone_at is\n"
        "set when the agent no longer finds the tenant's database on its tenant source\n"
        "(new rollouts leave such a tenant out). Heartbeats are stored while a rollout\n"
        "runs, and by `tenants refresh` (see its --help).\n",
        "SELECT tenant_id, agent_id, agent_kid, to_char(last_seen AT TIME ZONE "
        "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_seen, next_seq AS "
        "last_seq, coalesce(to_char(gone_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') AS gone_at FROM pgrollout_control.tenants "
        "ORDER BY tenant_id",
        false);
}
