/*
 * fuzz_common.h - shared by the libFuzzer targets: fixed Ed25519 keys and the keyring built from
 * them, so that seed envelopes signed by fuzz_seal verify inside the targets.
 *
 * Key 0 (seed bytes 0x00..0x1f, the test key of docs/PROTOCOL.md): trusted for every tenant.
 * Key 1 (seed bytes 0x20..0x3f): trusted only for tenants district-001 and district-002.
 * Key 2 (seed bytes 0x40..0x5f): listed but revoked.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "pgr/keyring.h"
#include "pgr/keys.h"

#include <stddef.h>
#include <stdint.h>

#define FUZZ_KEY_COUNT 3

/* The tenant the restricted key speaks for, used as the Kafka key of audit messages. */
#define FUZZ_TENANT "district-001"

/* Derives fixed key i (0..FUZZ_KEY_COUNT-1). */
void fuzz_keypair(int i, pgr_keypair *kp);

/* The keyring of the three fixed keys, parsed from its text form once; aborts on failure (the
 * harness is broken, not the input). Never freed: it lives as long as the process. */
const pgr_keyring *fuzz_keyring(void);

/* Stops the process with a message: a property of the code under test does not hold. */
void fuzz_fail(const char *what) __attribute__((noreturn));

/* libFuzzer's entry point (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
