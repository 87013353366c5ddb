/*
 * keys.h - Ed25519 key files.
 *
 * Public key line:  "ed25519 <base64 of 32 bytes> <kid>"
 * Secret key file:  "ed25519-secret <base64 of 64 bytes: seed || public key> <kid>" (mode 0600)
 * kid = lowercase hex of the first 8 bytes of SHA-256 of the 32 public key bytes.
 *
 * Every key and keyring file is opened once, without following a symbolic link, and checked on
 * the open descriptor: a regular file owned by the effective user or root; a secret key with no
 * group or other permission at all (0600 or 0400); a public key or keyring not writable by group
 * or others. Anything else is refused (PGR_ERR_PERM) with the file's name and the reason.
 */
#ifndef PGR_KEYS_H
#define PGR_KEYS_H

#include "pgr/error.h"

#include <stddef.h>
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

/* What a key file holds: it sets the permissions it must have (see above). */
typedef enum pgr_keyfile_kind {
    PGR_KEYFILE_SECRET,
    PGR_KEYFILE_PUBLIC,
    PGR_KEYFILE_KEYRING
} pgr_keyfile_kind;

/* Reads a key or keyring file of at most max bytes after the checks above into a new
 * NUL-terminated buffer (*out, caller frees; *out_len when not NULL). PGR_ERR_NOTFOUND when it
 * does not exist, PGR_ERR_PERM when a check fails, PGR_ERR_INVALID when it is too large. */
pgr_code pgr_keys_file_read(const char *path, pgr_keyfile_kind kind, size_t max, char **out,
                            size_t *out_len, pgr_error *err) PGR_MUSTCHECK;

/* Computes the kid of a public key. */
void pgr_keys_kid(const uint8_t pk[PGR_PK_LEN], char kid[PGR_KID_LEN]);

/* Generates a key pair and writes DIR/NAME.key (0600) and DIR/NAME.pub. Refuses (PGR_ERR_EXISTS)
 * when either file exists; NAME must be [A-Za-z0-9_.-], 1..64 characters. */
pgr_code pgr_keys_generate(const char *dir, const char *name, pgr_keypair *out,
                           pgr_error *err) PGR_MUSTCHECK;

/* Loads a secret key file; refuses a file that fails the checks above (PGR_ERR_PERM), malformed
 * content, a kid that does not match, or a secret key whose public half does not match. */
pgr_code pgr_keys_load_secret(const char *path, pgr_keypair *out, pgr_error *err) PGR_MUSTCHECK;

/* Parses one public key line (without newline); checks the kid matches the key. */
pgr_code pgr_keys_parse_public(const char *line, pgr_pubkey *out, pgr_error *err) PGR_MUSTCHECK;

/* Loads a .pub file holding one public key line. */
pgr_code pgr_keys_load_public(const char *path, pgr_pubkey *out, pgr_error *err) PGR_MUSTCHECK;

/* Formats the public line (no newline) into out (at least 128 bytes). */
void pgr_keys_format_public(const uint8_t pk[PGR_PK_LEN], char *out, size_t outlen);

#endif
