/*
 * fuzz_config.c - the files an operator gives the agent and the coordinator: the INI
 * configuration (common/src/config.c, through libinih) and the keyring (common/src/keyring.c),
 * each from a buffer as their _load functions do after reading the file. An accepted config must
 * hold every integer within its table bounds, every enum within its values, and tenants that
 * can be looked up; each tenant's DSN goes through the log redaction. An accepted keyring's
 * entries must carry the kid of their key and be found by it.
 */
#include "fuzz_common.h"

#include "pgr/config.h"
#include "pgr/keyring.h"
#include "pgr/log.h"
#include "pgr/dsn.h"

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

static void check_keyring(const char *buf, size_t len)
{
    pgr_keyring *kr = NULL;
    pgr_error err;
    char kid[PGR_KID_LEN];
    if (pgr_keyring_parse(buf, len, "fuzz.keyring", &kr, &err) != PGR_OK) {
        if (strncmp(err.msg, "fuzz.keyring", 12) != 0)
            fuzz_fail("a keyring error does not name the file");
        return;
    }
    for (size_t i = 0; i < kr->count; i++) {
        const pgr_keyring_entry *e = &kr->items[i];
        pgr_keys_kid(e->key.pk, kid);
        if (strcmp(kid, e->key.kid) != 0 || pgr_keyring_find(kr, kid) != e)
            fuzz_fail("a keyring entry's kid is not its key's, or another entry has it");
        /* the first tenant of a tenants= list is allowed, and "" is never */
        char *first = e->tenants != NULL ? strndup(e->tenants, strcspn(e->tenants, ",")) : NULL;
        if (e->tenants != NULL &&
            (first == NULL || (*first != '\0' && !pgr_keyring_allows_tenant(e, first))))
            fuzz_fail("a tenants= restriction does not allow its first tenant");
        free(first);
    }
    pgr_keyring_free(kr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgr_config *cfg = NULL;
    pgr_error err;
    char redacted[512];

    check_keyring((const char *)data, size);
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
        pgr_dsn_redact(t->dsn, redacted, sizeof(redacted));
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
