/*
 * keyring.h - files of trusted Ed25519 public keys, one per line:
 *   ed25519 <base64 of 32 bytes> <kid> [revoked] [tenants=t1,t2] [name=label]
 * '#' starts a comment. Several keys may be trusted at once (rotation); a revoked key stays
 * listed so that messages signed with it are rejected with that reason. `tenants=` limits an
 * agent key to the tenants it may speak for (coordinator side).
 */
#ifndef PGR_KEYRING_H
#define PGR_KEYRING_H

#include "pgr/keys.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct pgr_keyring_entry {
    pgr_pubkey key;
    bool revoked;
    char *tenants; /* comma-separated, NULL = any */
    char *name;
} pgr_keyring_entry;

typedef struct pgr_keyring {
    pgr_keyring_entry *items;
    size_t count;
} pgr_keyring;

/* Parses a keyring buffer; errors name "<name>:<line>". */
pgr_code pgr_keyring_parse(const char *buf, size_t len, const char *name, pgr_keyring **out,
                           pgr_error *err) PGR_MUSTCHECK;
/* Loads a keyring file after the checks of keys.h (regular file owned by the effective user or
 * root, not writable by group or others, not a symbolic link). */
pgr_code pgr_keyring_load(const char *path, pgr_keyring **out, pgr_error *err) PGR_MUSTCHECK;
void pgr_keyring_free(pgr_keyring *kr);

/* The entry for kid, or NULL. */
const pgr_keyring_entry *pgr_keyring_find(const pgr_keyring *kr, const char *kid);

/* True when the entry may speak for tenant (no tenants= restriction, or listed). */
bool pgr_keyring_allows_tenant(const pgr_keyring_entry *e, const char *tenant);

#endif
