/*
 * envelope.h - signed messages (docs/PROTOCOL.md). An envelope is exactly
 *   {"v":1,"kid":"<16 hex>","payload":"<base64>","sig":"<base64>"}
 * where payload is the exact bytes of a JSON document and sig is the Ed25519 signature
 * (crypto_sign_detached) of "<domain>" || 0x00 || payload bytes, domain being
 * "pgrollout/job/v1", "pgrollout/event/v1" or "pgrollout/audit/v1". Receivers verify before
 * they parse the payload.
 */
#ifndef PGR_ENVELOPE_H
#define PGR_ENVELOPE_H

#include "pgr/keyring.h"
#include "pgr/keys.h"

typedef enum pgr_domain {
    PGR_DOMAIN_JOB = 0,
    PGR_DOMAIN_EVENT,
    PGR_DOMAIN_AUDIT,
    PGR_DOMAIN_RELEASE /* release manifests (release.h): never an envelope */
} pgr_domain;

#define PGR_ENVELOPE_MAX_DEFAULT (4 * 1024 * 1024)

const char *pgr_envelope_domain_prefix(pgr_domain d);

/* The Ed25519 signature of "<domain>" || 0x00 || payload: the one place a secret key signs (a
 * hardware token would take its place here). False when out of memory. */
bool pgr_envelope_sign_detached(pgr_domain d, const pgr_keypair *kp, const char *payload,
                                size_t len, uint8_t sig[64]);
/* Whether sig is pk's signature of "<domain>" || 0x00 || payload. */
bool pgr_envelope_verify_detached(pgr_domain d, const uint8_t pk[PGR_PK_LEN], const char *payload,
                                  size_t len, const uint8_t sig[64]);

/* Signs payload and returns the envelope text (malloc'd, NUL-terminated), NULL on OOM. */
char *pgr_envelope_seal(pgr_domain d, const pgr_keypair *kp, const char *payload, size_t len);

/* Why an envelope was refused (for security events). */
typedef enum pgr_envelope_reject {
    PGR_REJECT_NONE = 0,
    PGR_REJECT_MALFORMED,
    PGR_REJECT_OVERSIZED,
    PGR_REJECT_UNKNOWN_KEY,
    PGR_REJECT_REVOKED_KEY,
    PGR_REJECT_BAD_SIGNATURE,
} pgr_envelope_reject;

const char *pgr_envelope_reject_name(pgr_envelope_reject r);

/* Checks an envelope of at most max_len bytes against a keyring; on success *payload (malloc'd,
 * NUL-terminated, owned by the caller) holds the verified bytes and *entry the signing key.
 * On failure *reason says why (kid_out names the claimed key when one could be read). */
pgr_code pgr_envelope_open(const char *buf, size_t len, size_t max_len, pgr_domain d,
                           const pgr_keyring *kr, char **payload, size_t *payload_len,
                           const pgr_keyring_entry **entry, char kid_out[PGR_KID_LEN],
                           pgr_envelope_reject *reason, pgr_error *err) PGR_MUSTCHECK;

#endif
