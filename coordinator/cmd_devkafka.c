/*
 * cmd_devkafka.c - `pgrollout dev-kafka`: an embedded, in-memory Kafka for demos on a machine
 * without a broker. It is librdkafka's mock cluster (rdkafka_mock.h) listening on 127.0.0.1:
 * real TCP, the Kafka protocol, but nothing is durable and it is NOT for production. It
 * pre-creates the pgrollout topics and runs until SIGTERM/SIGINT.
 */
#include "cmd_devkafka.h"

#include "pgr/clock.h"
#include "pgr/exitcode.h"
#include "pgr/parse.h"

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t dev_stop = 0;

static void on_signal(int sig)
{
    PGR_UNUSED(sig);
    dev_stop = 1;
}

int coord_cmd_devkafka_main(int argc, char **argv)
{
    static const struct option opts[] = {{"prefix", required_argument, NULL, 'p'},
                                         {"partitions", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *prefix = "pgrollout.";
    int64_t partitions = 6;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'p') {
            prefix = optarg;
        } else if (c == 'n') {
            if (pgr_parse_int64(optarg, 1, 256, &partitions, NULL) != PGR_OK) {
                fprintf(stderr, "pgrollout dev-kafka: --partitions: expected 1 to 256\n");
                return PGR_EXIT_USAGE;
            }
        } else if (c == 'h') {
            printf("usage: pgrollout dev-kafka [--prefix PREFIX] [--partitions N]\n\n"
                   "Runs librdkafka's in-memory mock cluster (one broker on 127.0.0.1) for\n"
                   "demos, prints its bootstrap address on stdout, and serves until SIGTERM.\n"
                   "Nothing is durable: never use it for real tenants.\n");
            return PGR_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout dev-kafka: unknown or incomplete option \"%s\"\n",
                    argv[optind - 1]);
            return PGR_EXIT_USAGE;
        }
    }
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* this client only hosts the mock cluster: it never connects, so keep it quiet */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "pgrollout dev-kafka: %s\n", errstr);
        return PGR_EXIT_FAIL;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (mc == NULL) {
        fprintf(stderr, "pgrollout dev-kafka: could not start the mock cluster\n");
        rd_kafka_destroy(rk);
        return PGR_EXIT_FAIL;
    }
    static const char *const names[] = {"jobs", "events", "audit"};
    for (int i = 0; i < 3; i++) {
        char topic[256];
        snprintf(topic, sizeof(topic), "%s%s", prefix, names[i]);
        rd_kafka_mock_topic_create(mc, topic, (int)partitions, 1);
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!dev_stop)
        pgr_clock_sleep_ms(200);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return PGR_EXIT_OK;
}
