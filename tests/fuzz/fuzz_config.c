/*
 * fuzz_config.c - the INI configuration parser (common/src/config.c, through libinih) from a
 * buffer, as pgr_config_load does after reading the file. An accepted config must hold every
 * integer within its table bounds, every enum within its values, and tenants that can be looked
 * up; each tenant's DSN goes through the log redaction.
 */
#include "fuzz_common.h"

#include "pgr/config.h"
#include "pgr/log.h"

#include <stdlib.h>
#include <string.h>

static void check_table(const pgr_config *cfg)
{
    for (const pgr_config_key *k = pgr_config_keys(); k->name != NULL; k++) {
        const char *field = (const char *)cfg + k->offset;
        if (k->type == PGR_CF_INT) {
            int v = *(const int *)(const void *)field;
            if (v < k->min || v > k->max)
                fuzz_fail("an accepted integer is out of its bounds");
        } else if (k->type == PGR_CF_ENUM) {
            const char *v = *(const char *const *)(const void *)field;
            if (v == NULL || *v == '\0' || strchr(v, '|') != NULL ||
                strstr(k->enum_values, v) == NULL)
                fuzz_fail("an accepted enum is not one of its values");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgr_config *cfg = NULL;
    pgr_error err;
    char redacted[512];

    if (pgr_config_parse((const char *)data, size, "fuzz.ini", &cfg, &err) != PGR_OK) {
        if (strncmp(err.msg, "fuzz.ini", 8) != 0)
            fuzz_fail("a config error does not name the file");
        return 0;
    }
    check_table(cfg);
    for (size_t i = 0; i < cfg->tenant_count; i++) {
        const pgr_tenant_conf *t = &cfg->tenants[i];
        if (pgr_config_tenant(cfg, t->id) != t || t->dsn == NULL)
            fuzz_fail("a configured tenant cannot be looked up or has no DSN");
        pgr_log_redact_dsn(t->dsn, redacted, sizeof(redacted));
        if (strlen(redacted) >= sizeof(redacted))
            fuzz_fail("a redacted DSN overran its buffer");
    }
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (cfg->kafka[i].key == NULL || cfg->kafka[i].value == NULL)
            fuzz_fail("a kafka pass-through entry lost its key or value");
    }
    pgr_config_free(cfg);
    return 0;
}
