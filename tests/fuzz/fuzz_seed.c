/*
 * fuzz_seed.c - writes seed inputs for the corpora (tests/fuzz/make_corpus.sh) with the product's
 * own builders, so that seeds carry real checksums, hashes and signatures:
 *
 *   fuzz_seed seal job|event|audit KEY-INDEX < payload     envelope signed by a fixed fuzz key
 *   fuzz_seed job TYPE TARGET|- TENANT MIGRATION.sql...    job payload (pgr_job_build)
 *   fuzz_seed audit TENANT SEQ PREV-HASH < record          audit payload with its chain hash
 */
#include "fuzz_common.h"

#include "pgr/crypto.h"
#include "pgr/envelope.h"
#include "pgr/job.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char input[1 << 20];

/* Prints s (malloc'd, may be NULL) and frees it; the exit code. */
static int emit(char *s)
{
    if (s == NULL)
        return 1;
    fputs(s, stdout);
    free(s);
    return 0;
}

static int seal(const char *domain, const char *key)
{
    static const char *const domains[] = {"job", "event", "audit"};
    int d = -1, k = (int)strtol(key, NULL, 10);
    for (int i = 0; i < 3; i++) {
        if (strcmp(domain, domains[i]) == 0)
            d = i;
    }
    if (d < 0 || k < 0 || k >= FUZZ_KEY_COUNT)
        return 2;
    size_t len = fread(input, 1, sizeof(input), stdin);
    pgr_keypair kp;
    fuzz_keypair(k, &kp);
    return emit(pgr_envelope_seal((pgr_domain)d, &kp, input, len));
}

static int job(int argc, char **argv)
{
    pgr_job j;
    pgr_error err;
    memset(&j, 0, sizeof(j));
    snprintf(j.type, sizeof(j.type), "%s", argv[0]);
    snprintf(j.job_id, sizeof(j.job_id), "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f");
    j.target = strcmp(argv[1], "-") != 0 ? argv[1] : NULL;
    j.tenant_id = argv[2];
    j.rollout_id = "fuzz-rollout";
    j.wave = "canary";
    j.operator_name = "alice@example.org";
    j.seq = 1;
    j.issued_at = 1762430400; /* 2025-11-06T12:00:00Z */
    j.expires_at = j.issued_at + 3600;
    j.options.lock_timeout_ms = 5000;
    j.options.retries = 5;
    snprintf(j.options.orphans, sizeof(j.options.orphans), "abort");
    pgr_migration_set *set = pgr_migration_set_new();
    for (int i = 3; set != NULL && i < argc; i++) {
        pgr_migration *m = NULL;
        if (pgr_migration_load(argv[i], &m, &err) != PGR_OK ||
            pgr_migration_set_add(set, m, &err) != PGR_OK) {
            fprintf(stderr, "fuzz_seed: %s\n", err.msg);
            pgr_migration_free(m);
            pgr_migration_set_free(set);
            return 1;
        }
    }
    char *s = set != NULL ? pgr_job_build(&j, set) : NULL;
    pgr_migration_set_free(set);
    return emit(s);
}

static int audit(const char *tenant, const char *seq, const char *prev)
{
    uint8_t p[PGR_SHA256_LEN], d[PGR_SHA256_LEN];
    char hash[PGR_SHA256_HEX_LEN];
    size_t len = fread(input, 1, sizeof(input) - 1, stdin);
    input[len] = '\0';
    if (pgr_crypto_hex_decode(prev, p, sizeof(p)) != PGR_OK)
        return 2;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, p, sizeof(p));
    crypto_hash_sha256_update(&st, (const unsigned char *)input, len);
    crypto_hash_sha256_final(&st, d);
    pgr_crypto_hex_encode(d, sizeof(d), hash);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", "audit", "tenant_id", tenant,
                          "seq", (json_int_t)strtoll(seq, NULL, 10), "prev_hash", prev, "hash",
                          hash, "record", input);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return emit(s);
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (sodium_init() < 0)
        return 1;
    if (argc == 4 && strcmp(argv[1], "seal") == 0)
        rc = seal(argv[2], argv[3]);
    else if (argc >= 5 && strcmp(argv[1], "job") == 0)
        rc = job(argc - 2, argv + 2);
    else if (argc == 5 && strcmp(argv[1], "audit") == 0)
        rc = audit(argv[2], argv[3], argv[4]);
    if (rc == 2)
        fprintf(stderr, "usage: fuzz_seed seal job|event|audit KEY-INDEX < payload\n"
                        "       fuzz_seed job TYPE TARGET|- TENANT MIGRATION.sql...\n"
                        "       fuzz_seed audit TENANT SEQ PREV-HASH < record\n");
    return rc;
}
