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
    int event_stmt_pid; /* backend that has the event statement prepared (control.c) */
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

/* SIGHUP asks the long-running commands (run, resume, audit collect) to read
 * coordinator.agent_keyring again; installs the handler. */
void coord_reload_on_sighup(void);

/* When SIGHUP arrived since the last call: reads the agent keyring again and swaps it in (keys
 * added, revoked or removed take effect for the next message). A file that does not load
 * changes nothing and is logged. Call only where no message is being verified. Returns whether
 * a new keyring is in force. */
bool coord_reload_keyring(coord *c);

/* Creates the Kafka clients and the topics when missing. Returns an exit code. */
int coord_kafka(coord *c, const char *cmd);

/* Verifies one event message with the agent keyring, records it once in the control database and
 * updates the tenant run it concerns. Returns the parsed payload (caller decrefs) or NULL when
 * refused or already stored (a redelivery). */
json_t *coord_ingest_event(coord *c, const rd_kafka_message_t *m);

/* Parses a verified event payload signed by key e. Returns the document (caller decrefs), or NULL
 * unless it keeps every rule of coord_event_rule_broken and its "tenant_id", when a string, is
 * one e may speak for; *why (may be NULL) then says which member broke a rule. */
json_t *coord_event_parse(const char *payload, size_t len, const pgr_keyring_entry *e,
                          const char **why);

/* The member of an event that breaks its rule (docs/PROTOCOL.md 9.7: enumerated members in their
 * lists, versions and job ids in their shape, tenant_id on every event about a tenant, seq >= 1),
 * or NULL when none does. */
const char *coord_event_rule_broken(json_t *ev);

/* What an accepted event writes into its job's tenant run (docs/PROTOCOL.md 9.7); the strings
 * point into the event. */
typedef struct coord_run_update {
    const char *job_id, *state, *version, *object, *error, *agent_id, *from_version;
    char step[24], steps[24], percent[32];
    bool has_percent;
    bool verified; /* a succeeded apply whose agent checked its objects in the job (9.5) */
} coord_run_update;

/* Fills u from an event that coord_event_parse accepted. */
void coord_event_run_update(json_t *ev, coord_run_update *u);

/* The audit collector's consumer (its own group, subscribed to the audit topic), or NULL. */
rd_kafka_t *coord_audit_consumer(coord *c);

/* Verifies and stores one audit message (or records an alert). */
void coord_audit_ingest(coord *c, const rd_kafka_message_t *m);

/* An audit payload's members; the strings belong to doc. */
typedef struct coord_audit_msg {
    json_t *doc;
    const char *tenant_id, *prev_hash, *hash, *record;
    long long seq;
} coord_audit_msg;

/* Checks a verified audit payload that arrived under the Kafka key tenant, signed by key e: its
 * members, the key's right to speak for the tenant, and hash = SHA-256(prev_hash || record) with
 * the record naming the same chain position. Returns NULL when it may be stored, else the alert
 * kind ("malformed", "untrusted_key", "broken_hash") with *detail saying why. msg->doc is set
 * either way (possibly NULL) and the caller decrefs it. */
const char *coord_audit_check(const char *payload, size_t len, const char *tenant,
                              const pgr_keyring_entry *e, coord_audit_msg *msg,
                              const char **detail);

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
