/*
 * keys.h - Ed25519 key files.
 *
 * Public key line:  "ed25519 <base64 of 32 bytes> <kid>"
 * Secret key file:  "ed25519-secret <base64 of 64 bytes: seed || public key> <kid>" (mode 0600)
 * kid = lowercase hex of the first 8 bytes of SHA-256 of the 32 public key bytes.
 * Secret key files readable or writable by group or others are refused.
 */
#ifndef PGR_KEYS_H
#define PGR_KEYS_H

#include "pgr/error.h"

#include <stdint.h>

#define PGR_PK_LEN  32
#define PGR_SK_LEN  64
#define PGR_KID_LEN 17 /* 16 hex + NUL */

typedef struct pgr_keypair {
    uint8_t pk[PGR_PK_LEN];
    uint8_t sk[PGR_SK_LEN];
    char kid[PGR_KID_LEN];
} pgr_keypair;

typedef struct pgr_pubkey {
    uint8_t pk[PGR_PK_LEN];
    char kid[PGR_KID_LEN];
} pgr_pubkey;

/* Computes the kid of a public key. */
void pgr_key_kid(const uint8_t pk[PGR_PK_LEN], char kid[PGR_KID_LEN]);

/* Generates a key pair and writes DIR/NAME.key (0600) and DIR/NAME.pub. Refuses (PGR_ERR_EXISTS)
 * when either file exists; NAME must be [A-Za-z0-9_.-], 1..64 characters. */
pgr_code pgr_keys_generate(const char *dir, const char *name, pgr_keypair *out,
                           pgr_error *err) PGR_MUSTCHECK;

/* Loads a secret key file; refuses group/other permission bits (PGR_ERR_PERM), malformed
 * content, a kid that does not match, or a secret key whose public half does not match. */
pgr_code pgr_keys_load_secret(const char *path, pgr_keypair *out, pgr_error *err) PGR_MUSTCHECK;

/* Parses one public key line (without newline); checks the kid matches the key. */
pgr_code pgr_keys_parse_public(const char *line, pgr_pubkey *out, pgr_error *err) PGR_MUSTCHECK;

/* Loads a .pub file holding one public key line. */
pgr_code pgr_keys_load_public(const char *path, pgr_pubkey *out, pgr_error *err) PGR_MUSTCHECK;

/* Formats the public line (no newline) into out (at least 128 bytes). */
void pgr_keys_format_public(const uint8_t pk[PGR_PK_LEN], char *out, size_t outlen);

#endif
