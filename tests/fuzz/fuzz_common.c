/* fuzz_common.c - fixed keys and keyring of the fuzz targets (see fuzz_common.h). */
#include "fuzz_common.h"

#include "pgr/crypto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz: property violated: %s\n", what);
    abort();
}

void fuzz_keypair(int i, pgr_keypair *kp)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    for (size_t k = 0; k < sizeof(seed); k++)
        seed[k] = (uint8_t)(i * 32 + (int)k);
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    pgr_keys_kid(kp->pk, kp->kid);
}

static pgr_keyring *build_keyring(void)
{
    static const char *const attrs[FUZZ_KEY_COUNT] = {
        "name=fuzz-any", "tenants=district-001,district-002 name=fuzz-restricted", "revoked"};
    char text[1024];
    size_t used = 0;
    pgr_keyring *kr = NULL;
    pgr_error err;

    if (sodium_init() < 0)
        fuzz_fail("libsodium does not initialise");
    for (int i = 0; i < FUZZ_KEY_COUNT; i++) {
        pgr_keypair kp;
        fuzz_keypair(i, &kp);
        char *b64 = pgr_crypto_base64_encode(kp.pk, sizeof(kp.pk));
        if (b64 == NULL)
            fuzz_fail("out of memory");
        used += (size_t)snprintf(text + used, sizeof(text) - used, "ed25519 %s %s %s\n", b64,
                                 kp.kid, attrs[i]);
        free(b64);
    }
    if (pgr_keyring_parse(text, used, "fuzz-keyring", &kr, &err) != PGR_OK) {
        fprintf(stderr, "fuzz: keyring: %s\n", err.msg);
        fuzz_fail("the fixed keyring does not parse");
    }
    return kr;
}

const pgr_keyring *fuzz_keyring(void)
{
    static pgr_keyring *kr = NULL;
    if (kr == NULL)
        kr = build_keyring();
    return kr;
}
