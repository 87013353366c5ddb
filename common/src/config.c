/* config.c - table-driven INI loading through libinih with file:line: key errors. */
#include "pgr/config.h"
#include "pgr/log.h"
#include "pgr/parse.h"
#include "pgr/str.h"
#include "pgr/file.h"
#include "pgr/dsn.h"

#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1024 * 1024)
#define OFF(f)           offsetof(pgr_config, f)

static const pgr_config_key config_keys[] = {
    {"agent.id", PGR_CF_STRING, OFF(agent_id), NULL, 0, 0, NULL, "agent identity in events"},
    {"agent.secret_key", PGR_CF_STRING, OFF(secret_key), NULL, 0, 0, NULL,
     "Ed25519 secret key file (mode 0600)"},
    {"agent.keyring", PGR_CF_STRING, OFF(keyring), NULL, 0, 0, NULL,
     "trusted coordinator public keys"},
    {"agent.state_dir", PGR_CF_STRING, OFF(state_dir), NULL, 0, 0, NULL,
     "directory for backups and local state"},
    {"agent.owner_role", PGR_CF_STRING, OFF(owner_role), NULL, 0, 0, NULL,
     "role the migration author's SQL runs as (SET ROLE; none: the agent's own)"},
    {"agent.lock_timeout_ms", PGR_CF_INT, OFF(lock_timeout_ms),
     PGR_CONFIG_STR(PGR_DEFAULT_LOCK_TIMEOUT_MS), 1, 600000, NULL,
     "lock_timeout of every migration session"},
    {"agent.statement_timeout_ms", PGR_CF_INT, OFF(statement_timeout_ms),
     PGR_CONFIG_STR(PGR_DEFAULT_STATEMENT_TIMEOUT_MS), 0, 86400000, NULL,
     "statement_timeout of every migration session (0 = none)"},
    {"agent.retries", PGR_CF_INT, OFF(retries), PGR_CONFIG_STR(PGR_DEFAULT_RETRIES), 0, 100, NULL,
     "retries of a step after lock timeout, deadlock or lost connection"},
    {"agent.heartbeat_ms", PGR_CF_INT, OFF(heartbeat_ms), "5000", 100, 3600000, NULL,
     "interval of heartbeat events"},
    {"agent.verify_interval_ms", PGR_CF_INT, OFF(verify_interval_ms), "10000", 100, 3600000, NULL,
     "interval of verify runs on soaking tenants"},
    {"agent.max_job_bytes", PGR_CF_INT, OFF(max_job_bytes), "4194304", 1024, 67108864, NULL,
     "largest accepted job envelope"},
    {"agent.max_parallel", PGR_CF_INT, OFF(max_parallel), "4", 1, 256, NULL,
     "tenants migrated at the same time by one agent"},
    {"agent.pool", PGR_CF_STRING, OFF(pool), NULL, 0, 0, NULL,
     "pool name: agents with the same pool and [tenants] share them (consumer group)"},
    {"agent.takeover_ms", PGR_CF_INT, OFF(takeover_ms), "30000", 1000, 3600000, NULL,
     "pool: wait for a tenant's previous agent to let go before ending its session"},
    {"agent.discover_interval_ms", PGR_CF_INT, OFF(discover_interval_ms), "60000", 1000, 86400000,
     NULL, "[tenant_sources]: how often their databases are listed again (also on SIGHUP)"},
    {"agent.max_tenants", PGR_CF_INT, OFF(max_tenants), "10000", 1, 1000000, NULL,
     "tenants one agent holds at most, typed and found"},
    {"agent.key_tenants", PGR_CF_STRING, OFF(key_tenants), NULL, 0, 0, NULL,
     "the tenants= of this agent's key (ids, prefix*): found tenants outside are not served"},
    {"coordinator.id", PGR_CF_STRING, OFF(coordinator_id), "coordinator", 0, 0, NULL,
     "coordinator identity"},
    {"coordinator.control_dsn", PGR_CF_STRING, OFF(control_dsn), NULL, 0, 0, NULL,
     "libpq connection string of the control database"},
    {"coordinator.secret_key", PGR_CF_STRING, OFF(secret_key), NULL, 0, 0, NULL,
     "Ed25519 secret key that signs jobs (mode 0600)"},
    {"coordinator.agent_keyring", PGR_CF_STRING, OFF(agent_keyring), NULL, 0, 0, NULL,
     "trusted agent public keys"},
    {"topics.prefix", PGR_CF_STRING, OFF(topic_prefix), "pgrollout.", 0, 0, NULL,
     "prefix of the jobs, events and audit topics"},
    {"topics.partitions", PGR_CF_INT, OFF(topic_partitions), "12", 1, 10000, NULL,
     "partitions of each topic the coordinator creates"},
    {"topics.replication", PGR_CF_INT, OFF(topic_replication), "-1", -1, 32, NULL,
     "copies of each topic the coordinator creates (-1: the cluster's default)"},
    {"release.keyring", PGR_CF_STRING, OFF(release_keyring), NULL, 0, 0, NULL,
     "release keys' public keys: set, every migration must be in a manifest they signed"},
    {"release.threshold", PGR_CF_INT, OFF(release_threshold), "2", 1, 16, NULL,
     "distinct release keys that must have signed a manifest (with release.keyring)"},
    {"metrics.listen", PGR_CF_STRING, OFF(metrics_listen), NULL, 0, 0, NULL,
     "HOST:PORT (IPv4) serving Prometheus metrics on GET /metrics; unset: off"},
    {"log.level", PGR_CF_ENUM, OFF(log_level), "info", 0, 0, "error|warn|info|debug", "log level"},
    {"log.format", PGR_CF_ENUM, OFF(log_format), "text", 0, 0, "text|json", "log line format"},
    {NULL, PGR_CF_STRING, 0, NULL, 0, 0, NULL, NULL},
};

const pgr_config_key *pgr_config_keys(void)
{
    return config_keys;
}

typedef struct parse_state {
    pgr_config *cfg;
    const char *name;
    const char *buf;
    size_t len;
    size_t pos;
    int line;
    pgr_error *err;
    pgr_code rc;
} parse_state;

static bool enum_contains(const char *values, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = values; p != NULL && *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = bar != NULL ? bar + 1 : NULL;
    }
    return false;
}

/* Stores value into the field a table row describes. */
static pgr_code config_set(pgr_config *cfg, const pgr_config_key *k, const char *value,
                           pgr_error *err)
{
    char *field = (char *)cfg + k->offset;
    int64_t v = 0;

    switch (k->type) {
    case PGR_CF_INT:
        if (pgr_parse_int64(value, k->min, k->max, &v, err) != PGR_OK)
            return PGR_ERR_CONFIG;
        *(int *)(void *)field = (int)v;
        return PGR_OK;
    case PGR_CF_ENUM:
        if (!enum_contains(k->enum_values, value))
            return pgr_error_set(err, PGR_ERR_CONFIG, "invalid value \"%s\": expected one of %s",
                                 value, k->enum_values);
        break;
    case PGR_CF_STRING:
        if (*value == '\0')
            return pgr_error_set(err, PGR_ERR_CONFIG, "empty value");
        break;
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    char **slot = (char **)(void *)field;
    free(*slot);
    *slot = copy;
    return PGR_OK;
}

static pgr_code add_kv(pgr_kv **arr, size_t *count, const char *key, const char *value)
{
    pgr_kv *n = realloc(*arr, (*count + 1) * sizeof(**arr));
    if (n == NULL)
        return PGR_ERR_NOMEM;
    *arr = n;
    n[*count].key = strdup(key);
    n[*count].value = strdup(value);
    if (n[*count].key == NULL || n[*count].value == NULL) {
        free(n[*count].key);
        free(n[*count].value);
        return PGR_ERR_NOMEM;
    }
    (*count)++;
    return PGR_OK;
}

static pgr_tenant_conf *tenant_find(pgr_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->tenant_count; i++) {
        if (strcmp(cfg->tenants[i].id, id) == 0)
            return &cfg->tenants[i];
    }
    return NULL;
}

const pgr_tenant_conf *pgr_config_tenant(const pgr_config *cfg, const char *id)
{
    return tenant_find((pgr_config *)(uintptr_t)cfg, id);
}

static pgr_code config_tenant(pgr_config *cfg, const char *id, const char *value, bool tags,
                              pgr_error *err)
{
    if (!pgr_str_is_tenant_id(id))
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "invalid tenant id: use letters, digits, '_', '-' or '.'");
    if (!tags && !pgr_dsn_valid(value))
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "tenant \"%s\": invalid connection string (not shown: it may hold "
                             "a password)",
                             id);
    pgr_tenant_conf *t = tenant_find(cfg, id);
    if (t == NULL && tags)
        return pgr_error_set(err, PGR_ERR_CONFIG, "tags for tenant \"%s\" not in [tenants]", id);
    if (t != NULL && !tags)
        return pgr_error_set(err, PGR_ERR_CONFIG, "tenant \"%s\" is listed twice", id);
    if (t == NULL) {
        pgr_tenant_conf *n = realloc(cfg->tenants, (cfg->tenant_count + 1) * sizeof(*n));
        if (n == NULL)
            return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        cfg->tenants = n;
        t = &n[cfg->tenant_count++];
        memset(t, 0, sizeof(*t));
        t->id = strdup(id);
    }
    char **slot = tags ? &t->tags : &t->dsn;
    free(*slot);
    *slot = strdup(value);
    if (t->id == NULL || *slot == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    return PGR_OK;
}

static pgr_code config_source(pgr_config *cfg, const char *name, const char *value, pgr_error *err)
{
    for (size_t i = 0; i < cfg->source_count; i++) {
        if (strcmp(cfg->sources[i].name, name) == 0)
            return pgr_error_set(err, PGR_ERR_CONFIG, "tenant source \"%s\" is listed twice", name);
    }
    pgr_tenantsrc s;
    if (pgr_tenantsrc_parse(name, value, &s, err) != PGR_OK)
        return PGR_ERR_CONFIG;
    pgr_tenantsrc *n = realloc(cfg->sources, (cfg->source_count + 1) * sizeof(*n));
    if (n == NULL) {
        pgr_tenantsrc_clear(&s);
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    cfg->sources = n;
    n[cfg->source_count++] = s;
    return PGR_OK;
}

static pgr_code config_entry(pgr_config *cfg, const char *section, const char *key,
                             const char *value, pgr_error *err)
{
    char full[256];

    if (strcmp(section, "kafka") == 0) {
        if (add_kv(&cfg->kafka, &cfg->kafka_count, key, value) != PGR_OK)
            return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        return PGR_OK;
    }
    if (strcmp(section, "tenants") == 0 || strcmp(section, "tenant_tags") == 0)
        return config_tenant(cfg, key, value, strcmp(section, "tenant_tags") == 0, err);
    if (strcmp(section, "tenant_sources") == 0)
        return config_source(cfg, key, value, err);
    snprintf(full, sizeof(full), "%s.%s", section, key);
    for (const pgr_config_key *k = config_keys; k->name != NULL; k++) {
        if (strcmp(k->name, full) == 0)
            return config_set(cfg, k, value, err);
    }
    if (*section == '\0')
        return pgr_error_set(err, PGR_ERR_CONFIG, "key outside of any section");
    return pgr_error_set(err, PGR_ERR_CONFIG, "unknown key");
}

static int config_ini_handler(void *user, const char *section, const char *key, const char *value)
{
    parse_state *st = user;
    pgr_error e;

    pgr_error_clear(&e);
    if (key == NULL) /* inih reports a new section this way when INI_CALL_HANDLER_ON_NEW_SECTION */
        return 1;
    if (config_entry(st->cfg, section, key, value, &e) != PGR_OK) {
        char k[128];
        snprintf(k, sizeof(k), "%s%s%s", section, *section != '\0' ? "." : "", key);
        st->rc = PGR_ERR_CONFIG;
        pgr_error_set(st->err, PGR_ERR_CONFIG, "%s:%d: %s: %s", st->name, st->line, k, e.msg);
        return 0;
    }
    return 1;
}

/* inih reader over a buffer that also counts lines, so errors can name the line of each key. */
static char *config_ini_reader(char *str, int num, void *stream)
{
    parse_state *st = stream;
    int n = 0;

    if (st->pos >= st->len || num <= 1)
        return NULL;
    while (st->pos < st->len && n < num - 1) {
        char c = st->buf[st->pos++];
        if (c == '\0') {
            st->rc = pgr_error_set(st->err, PGR_ERR_CONFIG, "%s:%d: line contains a NUL byte",
                                   st->name, st->line + 1);
            return NULL;
        }
        str[n++] = c;
        if (c == '\n')
            break;
    }
    str[n] = '\0';
    st->line++;
    /* inih's line buffer is fixed; a longer line would silently be split in two. */
    if (n == num - 1 && str[n - 1] != '\n' && st->pos < st->len) {
        st->rc = pgr_error_set(st->err, PGR_ERR_CONFIG, "%s:%d: line is longer than %d characters",
                               st->name, st->line, num - 2);
        return NULL;
    }
    return str;
}

pgr_code pgr_config_parse(const char *buf, size_t len, const char *name, pgr_config **out,
                          pgr_error *err)
{
    parse_state st = {pgr_config_new(), name, buf, len, 0, 0, err, PGR_OK};

    if (st.cfg == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    int r = ini_parse_stream(config_ini_reader, &st, config_ini_handler, &st);
    if (st.rc == PGR_OK && r > 0)
        st.rc = pgr_error_set(err, PGR_ERR_CONFIG,
                              "%s:%d: syntax error: expected \"[section]\" or \"key = value\"",
                              name, r);
    if (st.rc == PGR_OK && r < 0)
        st.rc = pgr_error_set(err, PGR_ERR_CONFIG, "%s: could not parse", name);
    if (st.rc != PGR_OK) {
        pgr_config_free(st.cfg);
        return st.rc;
    }
    st.cfg->path = strdup(name);
    *out = st.cfg;
    return PGR_OK;
}

pgr_code pgr_config_load(const char *path, pgr_config **out, pgr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    pgr_code rc = pgr_file_read(path, CONFIG_MAX_BYTES, &buf, &len, err);

    if (rc != PGR_OK) {
        if (err != NULL)
            err->code = PGR_ERR_CONFIG;
        return PGR_ERR_CONFIG;
    }
    rc = pgr_config_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

pgr_config *pgr_config_new(void)
{
    pgr_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return NULL;
    for (const pgr_config_key *k = config_keys; k->name != NULL; k++) {
        if (k->default_value != NULL && config_set(cfg, k, k->default_value, NULL) != PGR_OK) {
            pgr_config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

void pgr_config_free(pgr_config *cfg)
{
    if (cfg == NULL)
        return;
    for (const pgr_config_key *k = config_keys; k->name != NULL; k++) {
        if (k->type != PGR_CF_INT) {
            char **slot = (char **)(void *)((char *)cfg + k->offset);
            free(*slot);
            *slot = NULL; /* two rows may share a field (agent/coordinator secret_key) */
        }
    }
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    for (size_t i = 0; i < cfg->tenant_count; i++) {
        free(cfg->tenants[i].id);
        free(cfg->tenants[i].dsn);
        free(cfg->tenants[i].tags);
    }
    for (size_t i = 0; i < cfg->source_count; i++)
        pgr_tenantsrc_clear(&cfg->sources[i]);
    free(cfg->sources);
    free(cfg->kafka);
    free(cfg->tenants);
    free(cfg->path);
    free(cfg);
}
