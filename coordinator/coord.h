/*
 * coord.h - the coordinator's shared state: configuration, signing key, trusted agent keys,
 * control database connection and Kafka clients.
 */
#ifndef COORD_H
#define COORD_H

#include "pgr/config.h"
#include "pgr/envelope.h"
#include "pgr/kafka.h"

#include <jansson.h>
#include <libpq-fe.h>

typedef struct coord {
    pgr_config *cfg;
    pgr_keypair key;
    pgr_keyring *agents;
    PGconn *db;
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    int delivery_errors;
    char topic_jobs[256];
    char topic_events[256];
} coord;

/* Loads config (and, when `signing`, the secret key and agent keyring), connects to the control
 * database and installs its schema. Returns an exit code (0 = ok) after printing the error. */
int coord_open(coord *c, const char *config_path, const char *cmd, bool signing);
void coord_close(coord *c);

/* Creates the Kafka clients and the topics when missing. Returns an exit code. */
int coord_kafka(coord *c, const char *cmd);

/* Verifies one event message with the agent keyring, records it once in the control database and
 * updates the tenant run it concerns. Returns the parsed payload (caller decrefs) or NULL when
 * refused or already stored (a redelivery). */
json_t *coord_ingest_event(coord *c, const rd_kafka_message_t *m);

/* The audit collector's consumer (its own group, subscribed to the audit topic), or NULL. */
rd_kafka_t *coord_audit_consumer(coord *c);

/* Verifies and stores one audit message (or records an alert). */
void coord_audit_ingest(coord *c, const rd_kafka_message_t *m);

int coord_run_main(int argc, char **argv);
int coord_resume_main(int argc, char **argv);
int coord_pause_main(int argc, char **argv);
int coord_abort_main(int argc, char **argv);
int coord_approve_main(int argc, char **argv);
int coord_rollback_main(int argc, char **argv);

/* Records an operator action on a rollout (append-only operator_log). */
pgr_code coord_operator_log(coord *c, const char *rollout, const char *action, const char *wave,
                            const char *op, const char *detail);
int coord_status_main(int argc, char **argv);
int coord_tenants_main(int argc, char **argv);

#endif
