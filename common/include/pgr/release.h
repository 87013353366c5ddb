/*
 * release.h - release manifests (docs/PROTOCOL.md section 14): which migration files, by the
 * SHA-256 of their exact bytes, may be applied to which tenants until when, signed by release
 * keys apart from the coordinator's. A manifest file is exactly
 *   {"v":1,"payload":"<base64>","signatures":[{"kid":"<16 hex>","sig":"<base64>"},...]}
 * followed by one LF; each sig is the Ed25519 signature of "pgrollout/release/v1" || 0x00 ||
 * the payload bytes. Signatures are added one by one (sign, then cosign by a second person), and
 * the payload never changes once written.
 */
#ifndef PGR_RELEASE_H
#define PGR_RELEASE_H

#include "pgr/error.h"
#include "pgr/keyring.h"
#include "pgr/keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PGR_RELEASE_MAX_BYTES   (1024 * 1024)
#define PGR_RELEASE_MAX_SIGS    16
#define PGR_RELEASE_MAX_ENTRIES 10000

typedef struct pgr_release_entry {
    char version[15];
    char sha256[65]; /* lowercase hex of the file's exact bytes */
    char *name;
} pgr_release_entry;

typedef struct pgr_release_sig {
    char kid[PGR_KID_LEN];
    unsigned char sig[64];
} pgr_release_sig;

typedef struct pgr_release {
    char *payload; /* the signed bytes, as written */
    size_t payload_len;
    char release_id[37];
    time_t created_at, expires_at;
    char from[15], to[15]; /* versions; from "0": from the first */
    /* scope: exactly one of all, tenants (comma-separated ids and prefix*), tags ("k:v,k:v") */
    bool scope_all;
    char *scope_tenants;
    char *scope_tags;
    pgr_release_entry *entries; /* ascending versions */
    size_t entry_count;
    pgr_release_sig sigs[PGR_RELEASE_MAX_SIGS];
    size_t sig_count;
    char digest[65]; /* SHA-256 of the payload: names the manifest in records */
} pgr_release;

/* What a new manifest says; entries in ascending version order. */
typedef struct pgr_release_spec {
    const char *release_id; /* NULL: a new UUID */
    time_t created_at, expires_at;
    const char *from, *to;
    bool scope_all;
    const char *scope_tenants, *scope_tags;
    const pgr_release_entry *entries;
    size_t entry_count;
} pgr_release_spec;

/* A new, unsigned manifest from spec (checked as the parser checks it). */
pgr_code pgr_release_new(const pgr_release_spec *spec, pgr_release **out,
                         pgr_error *err) PGR_MUSTCHECK;

/* Parses a manifest file strictly (every member, type and bound; the payload too). Signatures are
 * not verified here (pgr_release_check). */
pgr_code pgr_release_parse(const char *buf, size_t len, pgr_release **out,
                           pgr_error *err) PGR_MUSTCHECK;
pgr_code pgr_release_load(const char *path, pgr_release **out, pgr_error *err) PGR_MUSTCHECK;
void pgr_release_free(pgr_release *r);

/* Adds kp's signature; refuses a key that signed already. */
pgr_code pgr_release_sign(pgr_release *r, const pgr_keypair *kp, pgr_error *err) PGR_MUSTCHECK;

/* The manifest file's text (malloc'ed, ends in LF). */
char *pgr_release_text(const pgr_release *r);

/* The signers that count: distinct kids of kr, not revoked, whose signature verifies (written to
 * kids, comma-separated, when not NULL). Returns PGR_OK when there are at least threshold of them
 * and now is before the expiry; else err says what is missing. */
pgr_code pgr_release_check(const pgr_release *r, const pgr_keyring *kr, int threshold, time_t now,
                           char *kids, size_t kidslen, pgr_error *err) PGR_MUSTCHECK;

/* Whether the scope covers a tenant (its id and its tags, "k:v,k:v" or NULL). */
bool pgr_release_covers_tenant(const pgr_release *r, const char *tenant, const char *tags);

/* The entry of version, or NULL. */
const pgr_release_entry *pgr_release_find(const pgr_release *r, const char *version);

/* SHA-256 (lowercase hex) of bytes, as entries hold it. */
void pgr_release_file_sha256(const char *bytes, size_t len, char out[65]);

#endif
