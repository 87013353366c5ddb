/*
 * coord.h - the coordinator's session: configuration, signing key, trusted agent keys, control
 * database connection and Kafka clients.
 */
#ifndef COORD_H
#define COORD_H

#include "pgr/config.h"
#include "pgr/metrics.h"
#include "pgr/envelope.h"
#include "pgr/kafka.h"

#include <jansson.h>
#include <libpq-fe.h>

typedef struct coord {
    pgr_config *cfg;
    pgr_keypair key;
    pgr_keyring *agents;
    PGconn *db;
    int event_stmt_pid; /* backend that has the event statement prepared (event_ingest.c) */
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    int delivery_errors;
    char topic_jobs[256];
    char topic_events[256];
    pgr_metrics *metrics; /* metrics.listen, or NULL: off (coord_metrics_start) */
} coord;

/* Loads config (and, when `signing`, the secret key and agent keyring), connects to the control
 * database and installs its schema. err's message names what failed ("configuration: ...",
 * "control database: ..."). The code is PGR_ERR_CONFIG when the configuration, a required
 * setting, the coordinator key or the agent keyring is wrong (the operator's to fix), else
 * PGR_ERR_CRYPTO or PGR_ERR_DB. coord_close is due either way. */
pgr_code coord_open(coord *c, const char *config_path, bool signing, pgr_error *err) PGR_MUSTCHECK;
void coord_close(coord *c);

/* With metrics.listen: serves this process's metrics (run, resume, rollback, audit collect). */
pgr_code coord_metrics_start(coord *c, pgr_error *err) PGR_MUSTCHECK;

/* Creates the Kafka clients and the topics when missing, and subscribes to the events topic.
 * err's message starts with "kafka: ". */
pgr_code coord_kafka(coord *c, pgr_error *err) PGR_MUSTCHECK;

/* The audit collector's consumer (its own group, subscribed to the audit topic) in *out; the
 * caller closes and destroys it. */
pgr_code coord_audit_consumer(coord *c, rd_kafka_t **out, pgr_error *err) PGR_MUSTCHECK;

/* SIGHUP asks the long-running commands (run, resume, audit collect) to read
 * coordinator.agent_keyring again; installs the handler. */
void coord_reload_on_sighup(void);

/* When SIGHUP arrived since the last call: reads the agent keyring again and swaps it in (keys
 * added, revoked or removed take effect for the next message). A file that does not load
 * changes nothing and is logged. Call only where no message is being verified. Returns whether
 * a new keyring is in force. */
bool coord_reload_keyring(coord *c);

#endif
