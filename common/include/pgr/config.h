/*
 * config.h - INI configuration of the agent and the coordinator.
 *
 * Every known key is one row of a table (name, type, default, bounds); `[kafka]` keys pass
 * unchanged to librdkafka; `[tenants]` maps tenant ids to libpq connection strings and
 * `[tenant_tags]` gives each tenant comma-separated `key:value` tags; `[tenant_sources]` names
 * servers whose databases are tenants (tenantsrc.h). Errors name the file,
 * the line and the key. Reload parses into a new struct and the caller swaps on success.
 */
#ifndef PGR_CONFIG_H
#define PGR_CONFIG_H

#include "pgr/error.h"
#include "pgr/dsn.h"
#include "pgr/tenantsrc.h"

#include <stdbool.h>
#include <stddef.h>

/* Defaults of the executor's session, shared by the config table, the agent's options and its
 * --help (PGR_CONFIG_STR makes the text form). The retry base delay has no config key. */
#define PGR_DEFAULT_LOCK_TIMEOUT_MS      5000
#define PGR_DEFAULT_STATEMENT_TIMEOUT_MS 0
#define PGR_DEFAULT_RETRIES              5
#define PGR_DEFAULT_RETRY_BASE_MS        200
#define PGR_CONFIG_STR_(x)               #x
#define PGR_CONFIG_STR(x)                PGR_CONFIG_STR_(x)

typedef struct pgr_kv {
    char *key;
    char *value;
} pgr_kv;

typedef struct pgr_tenant_conf {
    char *id;
    char *dsn;  /* may hold a password: never log it, use pgr_dsn_redact */
    char *tags; /* "region:us-east,tier:gold" or NULL */
} pgr_tenant_conf;

typedef struct pgr_config {
    char *path;
    /* [agent] */
    char *agent_id;
    char *secret_key;
    char *keyring;
    char *state_dir;
    char *owner_role; /* NULL: tenant_owner when usable; "none": the agent's own role */
    int lock_timeout_ms;
    int statement_timeout_ms;
    int retries;
    int heartbeat_ms;
    int verify_interval_ms;
    int max_job_bytes;
    int max_parallel;
    char *pool;               /* NULL: no pool, the agent serves every tenant of [tenants] itself */
    int takeover_ms;          /* pool: how long a new owner waits for the old one's runner lock */
    int discover_interval_ms; /* [tenant_sources]: how often their databases are listed */
    int max_tenants;          /* tenants one agent can hold, typed and found */
    char *key_tenants; /* the tenants= of this agent's key: found tenants outside are not served */
    /* [coordinator] */
    char *control_dsn;
    char *agent_keyring;
    char *coordinator_id;
    /* [topics] */
    char *topic_prefix;
    int topic_partitions;  /* of the topics the coordinator creates */
    int topic_replication; /* -1: the cluster's default.replication.factor */
    /* [release] (agent and coordinator): manifests signed apart from dispatch */
    char *release_keyring; /* NULL: no manifests required */
    int release_threshold; /* distinct release keys a migration needs */
    /* [metrics] */
    char *metrics_listen; /* HOST:PORT of GET /metrics, or NULL: off */
    /* [log] */
    char *log_level;
    char *log_format;
    /* [kafka] pass-through, [tenants] */
    pgr_kv *kafka;
    size_t kafka_count;
    pgr_tenant_conf *tenants;
    size_t tenant_count;
    pgr_tenantsrc *sources; /* [tenant_sources] */
    size_t source_count;
} pgr_config;

typedef enum pgr_cf_type { PGR_CF_STRING, PGR_CF_INT, PGR_CF_ENUM } pgr_cf_type;

/* One row per known key; `enum_values` is a '|'-separated list for PGR_CF_ENUM. */
typedef struct pgr_config_key {
    const char *name; /* "section.key" */
    pgr_cf_type type;
    size_t offset;
    const char *default_value; /* NULL: no default (unset) */
    long min;
    long max;
    const char *enum_values;
    const char *help;
} pgr_config_key;

/* The table of every known key, terminated by a row whose name is NULL. */
const pgr_config_key *pgr_config_keys(void);

/* Allocates a config holding every default. */
pgr_config *pgr_config_new(void);
void pgr_config_free(pgr_config *cfg);

/* Loads a file on top of defaults. On success *out is a new config owned by the caller.
 * On failure nothing is allocated and err names "file:line: key: reason". */
pgr_code pgr_config_load(const char *path, pgr_config **out, pgr_error *err) PGR_MUSTCHECK;

/* Parses a buffer; `name` is used in messages. Fuzz-friendly entry point. */
pgr_code pgr_config_parse(const char *buf, size_t len, const char *name, pgr_config **out,
                          pgr_error *err) PGR_MUSTCHECK;

/* Looks a tenant up by id; NULL if not configured. */
const pgr_tenant_conf *pgr_config_tenant(const pgr_config *cfg, const char *id);

#endif
